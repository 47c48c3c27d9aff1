package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// InviteTTL is how long an invitation link stays valid.
const InviteTTL = 7 * 24 * time.Hour

// ErrInviteUsed means the link was already used, revoked or has expired.
var ErrInviteUsed = errors.New("this invitation was already used or has expired")

// Invite is a one-time link that makes whoever opens it (signed in) a member with Role.
// Only the SHA-256 of its token is stored.
type Invite struct {
	bun.BaseModel `bun:"table:invites,alias:invite"`

	ID          string     `bun:"id,pk"`
	WorkspaceID string     `bun:"workspace_id,notnull"`
	TokenHash   string     `bun:"token_hash,notnull"`
	Role        string     `bun:"role,notnull"`
	Note        string     `bun:"note,notnull"`
	CreatedBy   string     `bun:"created_by,notnull"`
	CreatedAt   time.Time  `bun:"created_at,notnull"`
	ExpiresAt   time.Time  `bun:"expires_at,notnull"`
	AcceptedAt  *time.Time `bun:"accepted_at"`
	AcceptedBy  string     `bun:"accepted_by,notnull"`
}

// CreateInvite makes a one-time invitation and returns its token (shown once).
func (s *Store) CreateInvite(ctx context.Context, workspaceID, role, note, createdBy string) (string, *Invite, error) {
	if !ValidRole(role) {
		return "", nil, fmt.Errorf("role %q: must be owner, admin or viewer", role)
	}
	token := RandomSecret(24)
	now := s.now()
	inv := &Invite{
		ID: NewID(PrefixInvite), WorkspaceID: workspaceID, TokenHash: hashToken(token), Role: role,
		Note: note, CreatedBy: createdBy, CreatedAt: now, ExpiresAt: now.Add(InviteTTL),
	}
	if _, err := s.db.NewInsert().Model(inv).Exec(ctx); err != nil {
		return "", nil, fmt.Errorf("create invite: %w", translate(err))
	}
	return token, inv, nil
}

// InviteByToken loads a pending, unexpired invitation; ErrInviteUsed otherwise.
func (s *Store) InviteByToken(ctx context.Context, token string) (*Invite, error) {
	if token == "" || len(token) > 100 {
		return nil, ErrInviteUsed
	}
	inv := new(Invite)
	err := s.db.NewSelect().Model(inv).Where("token_hash = ?", hashToken(token)).Scan(ctx)
	if errors.Is(translate(err), ErrNotFound) {
		return nil, ErrInviteUsed
	}
	if err != nil {
		return nil, err
	}
	if inv.AcceptedAt != nil || s.now().After(inv.ExpiresAt) {
		return nil, ErrInviteUsed
	}
	return inv, nil
}

// AcceptInvite uses the invitation once: the user becomes a member with its role. A user
// already in the workspace keeps the higher of the two roles.
func (s *Store) AcceptInvite(ctx context.Context, token, userID string) (*Invite, error) {
	var inv *Invite
	err := s.InTx(ctx, func(tx *Store) error {
		var err error
		if inv, err = tx.InviteByToken(ctx, token); err != nil {
			return err
		}
		now := tx.now()
		res, err := tx.db.NewUpdate().Model((*Invite)(nil)).Set("accepted_at = ?, accepted_by = ?", now, userID).
			Where("id = ? AND accepted_at IS NULL", inv.ID).Exec(ctx)
		if err := affectedOne(res, err); err != nil {
			return ErrInviteUsed
		}
		m, err := tx.MembershipOf(ctx, inv.WorkspaceID, userID)
		switch {
		case errors.Is(err, ErrNotFound):
			return tx.AddMember(ctx, inv.WorkspaceID, userID, inv.Role)
		case err != nil:
			return err
		case RoleRank(inv.Role) > RoleRank(m.Role):
			return tx.SetMemberRole(ctx, inv.WorkspaceID, userID, inv.Role)
		}
		return nil
	})
	return inv, err
}

// ListInvites returns a workspace's pending invitations, newest first.
func (s *Store) ListInvites(ctx context.Context, workspaceID string) ([]*Invite, error) {
	var out []*Invite
	err := s.db.NewSelect().Model(&out).
		Where("workspace_id = ? AND accepted_at IS NULL AND expires_at > ?", workspaceID, s.now()).
		Order("created_at DESC").Scan(ctx)
	return out, translate(err)
}

// RevokeInvite deletes a pending invitation.
func (s *Store) RevokeInvite(ctx context.Context, workspaceID, id string) error {
	res, err := s.db.NewDelete().Model((*Invite)(nil)).
		Where("workspace_id = ? AND id = ? AND accepted_at IS NULL", workspaceID, id).Exec(ctx)
	return affectedOne(res, err)
}
