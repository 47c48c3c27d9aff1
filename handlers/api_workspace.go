package handlers

import (
	"net/http"
	"strings"
	"time"

	"github.com/fanout-dev/fanout/db"
	"github.com/labstack/echo/v4"
)

// The JSON twins of the dashboard's workspace pages: API keys, members and invites.

// ListAPIKeys answers GET /v1/api-keys: prefixes, scopes and last use, never the keys.
func (h *Handlers) ListAPIKeys(c echo.Context) error {
	ks, err := h.Store.ListAPIKeys(c.Request().Context(), workspaceID(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, list(ks, ""))
}

// CreateAPIKey answers POST /v1/api-keys {"name", "scope"}: the key is in this response
// only.
func (h *Handlers) CreateAPIKey(c echo.Context) error {
	var in struct {
		Name  string `json:"name"`
		Scope string `json:"scope"`
	}
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	in.Name = strings.TrimSpace(in.Name)
	switch {
	case in.Name == "" || len(in.Name) > 100:
		return invalid("name", "is required, at most 100 characters")
	case in.Scope != db.ScopeIngest && in.Scope != db.ScopeAdmin:
		return invalid("scope", "must be ingest or admin")
	}
	plain, k, err := h.Store.CreateAPIKey(c.Request().Context(), workspaceID(c), in.Name, in.Scope)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, struct {
		*db.APIKey
		Key string `json:"key"`
	}{k, plain})
}

// RevokeAPIKey answers DELETE /v1/api-keys/:id; the key stops working at once.
func (h *Handlers) RevokeAPIKey(c echo.Context) error {
	if err := h.Store.RevokeAPIKey(c.Request().Context(), workspaceID(c), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

type memberView struct {
	UserID   string    `json:"user_id"`
	Email    string    `json:"email"`
	Role     string    `json:"role"`
	JoinedAt time.Time `json:"joined_at"`
}

// ListMembers answers GET /v1/members.
func (h *Handlers) ListMembers(c echo.Context) error {
	ms, err := h.Store.ListMembers(c.Request().Context(), workspaceID(c))
	if err != nil {
		return err
	}
	out := make([]memberView, len(ms))
	for i, m := range ms {
		out[i] = memberView{m.UserID, m.Email, m.Role, m.JoinedAt}
	}
	return c.JSON(http.StatusOK, list(out, ""))
}

// UpdateMember answers PATCH /v1/members/:id {"role"}. The last owner stays owner.
func (h *Handlers) UpdateMember(c echo.Context) error {
	var in struct {
		Role string `json:"role"`
	}
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	if !db.ValidRole(in.Role) {
		return invalid("role", "must be owner, admin or viewer")
	}
	if err := h.Store.SetMemberRole(c.Request().Context(), workspaceID(c), c.Param("id"), in.Role); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// RemoveMember answers DELETE /v1/members/:id.
func (h *Handlers) RemoveMember(c echo.Context) error {
	if err := h.Store.RemoveMember(c.Request().Context(), workspaceID(c), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// CreateInvite answers POST /v1/invites {"role", "note"?}: a one-time sign-up link,
// returned once.
func (h *Handlers) CreateInvite(c echo.Context) error {
	var in struct {
		Role string `json:"role"`
		Note string `json:"note"`
	}
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	if !db.ValidRole(in.Role) {
		return invalid("role", "must be owner, admin or viewer")
	}
	if len(in.Note) > 200 {
		return invalid("note", "must be at most 200 characters")
	}
	token, inv, err := h.Store.CreateInvite(c.Request().Context(), workspaceID(c), in.Role, in.Note, "api-key:"+IdentityOf(c).Key.ID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]any{
		"id": inv.ID, "role": inv.Role, "expires_at": inv.ExpiresAt, "path": "/invite/" + token,
	})
}

// DiscardDelivery answers POST /v1/deliveries/:id/discard: a dead delivery leaves the
// dead-letter list, keeping its history (a replay brings it back).
func (h *Handlers) DiscardDelivery(c echo.Context) error {
	ctx := c.Request().Context()
	d, err := h.Store.DeliveryByID(ctx, workspaceID(c), c.Param("id"))
	if err != nil {
		return err
	}
	if d.Status != db.DeliveryDead {
		return newError(http.StatusConflict, "not_dead", "only dead deliveries can be discarded; this one is %s", d.Status)
	}
	if _, err := h.Store.DiscardDeliveries(ctx, d.WorkspaceID, []string{d.ID}); err != nil {
		return err
	}
	d.Status = db.DeliveryDiscarded
	return c.JSON(http.StatusOK, d)
}
