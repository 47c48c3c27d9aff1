package handlers

import (
	"errors"
	"net/http"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/views"
	"github.com/labstack/echo/v4"
)

var errOwnersOnly = &Error{Status: http.StatusForbidden, Code: "forbidden", Message: "only owners can change owners or make someone an owner"}

// MembersPage answers GET /w/:workspace/members.
func (d *Dashboard) MembersPage(c echo.Context) error {
	return d.renderMembers(c, http.StatusOK, views.MembersData{})
}

func (d *Dashboard) renderMembers(c echo.Context, status int, data views.MembersData) error {
	ctx := c.Request().Context()
	var err error
	if data.Members, err = d.Store.ListMembers(ctx, workspaceID(c)); err != nil {
		return err
	}
	if RequireRole(c, db.RoleAdmin) == nil {
		if data.Invites, err = d.Store.ListInvites(ctx, workspaceID(c)); err != nil {
			return err
		}
	}
	s, err := d.shell(c, "Members", "members")
	if err != nil {
		return err
	}
	if data.InviteURL != "" {
		return renderSecret(c, status, views.MembersPage(s, data))
	}
	return render(c, status, views.MembersPage(s, data))
}

// checkManage refuses changes an admin may not make: anything about owners.
func checkManage(c echo.Context, targetRole, newRole string) error {
	if err := RequireRole(c, db.RoleAdmin); err != nil {
		return err
	}
	if (targetRole == db.RoleOwner || newRole == db.RoleOwner) && RequireRole(c, db.RoleOwner) != nil {
		return errOwnersOnly
	}
	return nil
}

// CreateInvitePage answers POST /w/:workspace/members/invites: a one-time link, shown once.
func (d *Dashboard) CreateInvitePage(c echo.Context) error {
	role := c.FormValue("role")
	if !db.ValidRole(role) {
		return invalid("role", "must be owner, admin or viewer")
	}
	if err := checkManage(c, "", role); err != nil {
		return err
	}
	token, _, err := d.Store.CreateInvite(c.Request().Context(), workspaceID(c), role, "", userOf(c).ID)
	if err != nil {
		return err
	}
	return d.renderMembers(c, http.StatusCreated, views.MembersData{InviteURL: d.baseURL(c) + "/invite/" + token, InviteRole: role})
}

func (d *Dashboard) memberRole(c echo.Context, userID string) (string, error) {
	m, err := d.Store.MembershipOf(c.Request().Context(), workspaceID(c), userID)
	if err != nil {
		return "", err
	}
	return m.Role, nil
}

// SetMemberRolePage answers POST /w/:workspace/members/:user/role.
func (d *Dashboard) SetMemberRolePage(c echo.Context) error {
	role := c.FormValue("role")
	if !db.ValidRole(role) {
		return invalid("role", "must be owner, admin or viewer")
	}
	current, err := d.memberRole(c, c.Param("user"))
	if err != nil {
		return err
	}
	if err := checkManage(c, current, role); err != nil {
		return err
	}
	err = d.Store.SetMemberRole(c.Request().Context(), workspaceID(c), c.Param("user"), role)
	if errors.Is(err, db.ErrLastOwner) {
		setFlash(c, "error", "A workspace needs at least one owner: make someone else an owner first.")
		return redirect(c, wsPath(c, "/members"))
	}
	if err != nil {
		return err
	}
	setFlash(c, "success", "Role changed to "+role+".")
	return redirect(c, wsPath(c, "/members"))
}

// RemoveMemberPage answers POST /w/:workspace/members/:user/remove.
func (d *Dashboard) RemoveMemberPage(c echo.Context) error {
	current, err := d.memberRole(c, c.Param("user"))
	if err != nil {
		return err
	}
	if err := checkManage(c, current, ""); err != nil {
		return err
	}
	err = d.Store.RemoveMember(c.Request().Context(), workspaceID(c), c.Param("user"))
	if errors.Is(err, db.ErrLastOwner) {
		setFlash(c, "error", "A workspace needs at least one owner.")
		return redirect(c, wsPath(c, "/members"))
	}
	if err != nil {
		return err
	}
	if isPartial(c) {
		toast(c, "success", "Member removed.")
		return c.HTML(http.StatusOK, "")
	}
	setFlash(c, "success", "Member removed.")
	return redirect(c, wsPath(c, "/members"))
}

// RevokeInvitePage answers POST /w/:workspace/members/invites/:id/revoke.
func (d *Dashboard) RevokeInvitePage(c echo.Context) error {
	if err := d.Store.RevokeInvite(c.Request().Context(), workspaceID(c), c.Param("id")); err != nil {
		return err
	}
	setFlash(c, "success", "Invitation revoked.")
	return redirect(c, wsPath(c, "/members"))
}
