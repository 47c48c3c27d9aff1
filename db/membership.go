package db

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrLastOwner refuses a change that would leave a workspace without an owner.
var ErrLastOwner = errors.New("a workspace needs at least one owner")

// RoleRank orders roles by power: viewer < admin < owner; unknown roles rank 0.
func RoleRank(role string) int {
	switch role {
	case RoleViewer:
		return 1
	case RoleAdmin:
		return 2
	case RoleOwner:
		return 3
	}
	return 0
}

// ValidRole reports whether role is one of owner, admin, viewer.
func ValidRole(role string) bool { return RoleRank(role) > 0 }

// UserWorkspace is a workspace as seen by one member.
type UserWorkspace struct {
	Workspace
	Role string `bun:"role"`
}

// Member is a user as seen in one workspace.
type Member struct {
	UserID   string    `bun:"user_id"`
	Email    string    `bun:"email"`
	Role     string    `bun:"role"`
	JoinedAt time.Time `bun:"created_at"`
}

// CreateWorkspaceWithOwner creates a workspace and makes userID its owner, in one transaction.
func (s *Store) CreateWorkspaceWithOwner(ctx context.Context, name, userID string) (*Workspace, error) {
	var w *Workspace
	err := s.InTx(ctx, func(tx *Store) error {
		var err error
		if w, err = tx.CreateWorkspace(ctx, name); err != nil {
			return err
		}
		return tx.AddMember(ctx, w.ID, userID, RoleOwner)
	})
	return w, err
}

// AddMember gives a user a role in a workspace; ErrConflict when already a member.
func (s *Store) AddMember(ctx context.Context, workspaceID, userID, role string) error {
	if !ValidRole(role) {
		return fmt.Errorf("role %q: must be owner, admin or viewer", role)
	}
	m := &Membership{WorkspaceID: workspaceID, UserID: userID, Role: role, CreatedAt: s.now()}
	if _, err := s.db.NewInsert().Model(m).Exec(ctx); err != nil {
		return fmt.Errorf("add member: %w", translate(err))
	}
	return nil
}

// MembershipOf loads the user's workspace and role in it; ErrNotFound when the user is
// not a member (or the workspace does not exist).
func (s *Store) MembershipOf(ctx context.Context, workspaceID, userID string) (*UserWorkspace, error) {
	uw := new(UserWorkspace)
	err := s.db.NewSelect().TableExpr("workspaces AS w").
		ColumnExpr("w.id, w.name, w.created_at, m.role").
		Join("JOIN memberships AS m ON m.workspace_id = w.id").
		Where("w.id = ? AND m.user_id = ?", workspaceID, userID).Scan(ctx, uw)
	if err != nil {
		return nil, translate(err)
	}
	return uw, nil
}

// UserWorkspaces lists the workspaces a user belongs to, oldest first.
func (s *Store) UserWorkspaces(ctx context.Context, userID string) ([]UserWorkspace, error) {
	var out []UserWorkspace
	err := s.db.NewSelect().TableExpr("workspaces AS w").
		ColumnExpr("w.id, w.name, w.created_at, m.role").
		Join("JOIN memberships AS m ON m.workspace_id = w.id").
		Where("m.user_id = ?", userID).OrderExpr("w.created_at, w.id").Scan(ctx, &out)
	return out, translate(err)
}

// ListMembers lists a workspace's members, owners first.
func (s *Store) ListMembers(ctx context.Context, workspaceID string) ([]Member, error) {
	var out []Member
	err := s.db.NewSelect().TableExpr("memberships AS m").
		ColumnExpr("m.user_id, u.email, m.role, m.created_at").
		Join("JOIN users AS u ON u.id = m.user_id").
		Where("m.workspace_id = ?", workspaceID).
		OrderExpr("CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, u.email").
		Scan(ctx, &out)
	return out, translate(err)
}

// SetMemberRole changes a member's role; demoting the last owner is ErrLastOwner.
func (s *Store) SetMemberRole(ctx context.Context, workspaceID, userID, role string) error {
	if !ValidRole(role) {
		return fmt.Errorf("role %q: must be owner, admin or viewer", role)
	}
	return s.InTx(ctx, func(tx *Store) error {
		if role != RoleOwner {
			if err := tx.keepAnOwner(ctx, workspaceID, userID); err != nil {
				return err
			}
		}
		res, err := tx.db.NewUpdate().Model((*Membership)(nil)).Set("role = ?", role).
			Where("workspace_id = ? AND user_id = ?", workspaceID, userID).Exec(ctx)
		return affectedOne(res, err)
	})
}

// RemoveMember takes a user out of a workspace; removing the last owner is ErrLastOwner.
func (s *Store) RemoveMember(ctx context.Context, workspaceID, userID string) error {
	return s.InTx(ctx, func(tx *Store) error {
		if err := tx.keepAnOwner(ctx, workspaceID, userID); err != nil {
			return err
		}
		res, err := tx.db.NewDelete().Model((*Membership)(nil)).
			Where("workspace_id = ? AND user_id = ?", workspaceID, userID).Exec(ctx)
		return affectedOne(res, err)
	})
}

// keepAnOwner fails when userID is the workspace's only owner.
func (s *Store) keepAnOwner(ctx context.Context, workspaceID, userID string) error {
	n, err := s.db.NewSelect().Model((*Membership)(nil)).
		Where("workspace_id = ? AND role = ? AND user_id <> ?", workspaceID, RoleOwner, userID).Count(ctx)
	if err != nil {
		return err
	}
	isOwner, err := s.db.NewSelect().Model((*Membership)(nil)).
		Where("workspace_id = ? AND user_id = ? AND role = ?", workspaceID, userID, RoleOwner).Exists(ctx)
	if err != nil {
		return err
	}
	if isOwner && n == 0 {
		return ErrLastOwner
	}
	return nil
}
