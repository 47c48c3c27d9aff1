package db

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// Session is a signed-in browser. ID is the SHA-256 of the token held in the cookie, so
// the table alone lets nobody sign in. CSRFToken is bound to the session: it changes
// whenever the session does (at sign-in), which also rotates it.
type Session struct {
	bun.BaseModel `bun:"table:sessions,alias:session"`

	ID          string    `bun:"id,pk"`
	UserID      string    `bun:"user_id,notnull"`
	CSRFToken   string    `bun:"csrf_token,notnull"`
	WorkspaceID string    `bun:"workspace_id,notnull"`
	UserAgent   string    `bun:"user_agent,notnull"`
	IP          string    `bun:"ip,notnull"`
	CreatedAt   time.Time `bun:"created_at,notnull"`
	LastSeenAt  time.Time `bun:"last_seen_at,notnull"`
	ExpiresAt   time.Time `bun:"expires_at,notnull"`
}

// Session lifetimes: a session ends after SessionIdle without use, and at the latest
// SessionMaxAge after sign-in.
const (
	SessionIdle   = 7 * 24 * time.Hour
	SessionMaxAge = 30 * 24 * time.Hour
)

// ErrSessionExpired is returned for an unknown or expired session token.
var ErrSessionExpired = errors.New("session expired")

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// CreateSession starts a session for a user and returns the token for the cookie.
func (s *Store) CreateSession(ctx context.Context, userID, userAgent, ip string) (string, *Session, error) {
	token := RandomSecret(32)
	now := s.now()
	if len(userAgent) > 300 {
		userAgent = userAgent[:300]
	}
	sess := &Session{
		ID: hashToken(token), UserID: userID, CSRFToken: RandomSecret(32), UserAgent: userAgent, IP: ip,
		CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(SessionMaxAge),
	}
	if _, err := s.db.NewInsert().Model(sess).Exec(ctx); err != nil {
		return "", nil, fmt.Errorf("create session: %w", translate(err))
	}
	return token, sess, nil
}

// SessionByToken loads a live session and its user. It refreshes LastSeenAt at most once
// a minute, to spare writes.
func (s *Store) SessionByToken(ctx context.Context, token string) (*Session, *User, error) {
	if token == "" || len(token) > 100 {
		return nil, nil, ErrSessionExpired
	}
	sess := new(Session)
	if err := s.db.NewSelect().Model(sess).Where("id = ?", hashToken(token)).Scan(ctx); err != nil {
		if errors.Is(translate(err), ErrNotFound) {
			return nil, nil, ErrSessionExpired
		}
		return nil, nil, err
	}
	now := s.now()
	if now.After(sess.ExpiresAt) || now.Sub(sess.LastSeenAt) > SessionIdle {
		_ = s.deleteSessionByID(ctx, sess.ID)
		return nil, nil, ErrSessionExpired
	}
	u, err := s.UserByID(ctx, sess.UserID)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, nil, ErrSessionExpired
		}
		return nil, nil, err
	}
	if now.Sub(sess.LastSeenAt) > time.Minute {
		sess.LastSeenAt = now
		if _, err := s.db.NewUpdate().Model(sess).Column("last_seen_at").WherePK().Exec(ctx); err != nil {
			return nil, nil, fmt.Errorf("touch session: %w", err)
		}
	}
	return sess, u, nil
}

// SetSessionWorkspace remembers the workspace the session last opened.
func (s *Store) SetSessionWorkspace(ctx context.Context, sessionID, workspaceID string) error {
	_, err := s.db.NewUpdate().Model((*Session)(nil)).Set("workspace_id = ?", workspaceID).
		Where("id = ?", sessionID).Exec(ctx)
	return err
}

// DeleteSession ends the session of a cookie token.
func (s *Store) DeleteSession(ctx context.Context, token string) error {
	return s.deleteSessionByID(ctx, hashToken(token))
}

func (s *Store) deleteSessionByID(ctx context.Context, id string) error {
	_, err := s.db.NewDelete().Model((*Session)(nil)).Where("id = ?", id).Exec(ctx)
	return err
}

// DeleteUserSessions ends every session of a user (password change, removal).
func (s *Store) DeleteUserSessions(ctx context.Context, userID string) error {
	_, err := s.db.NewDelete().Model((*Session)(nil)).Where("user_id = ?", userID).Exec(ctx)
	return err
}

// PruneSessions deletes expired sessions and old login failures.
func (s *Store) PruneSessions(ctx context.Context) error {
	now := s.now()
	if _, err := s.db.NewDelete().Model((*Session)(nil)).
		Where("expires_at < ? OR last_seen_at < ?", now, now.Add(-SessionIdle)).Exec(ctx); err != nil {
		return fmt.Errorf("prune sessions: %w", err)
	}
	if _, err := s.db.NewDelete().TableExpr("login_failures").
		Where("failed_at < ?", now.Add(-24*time.Hour)).Exec(ctx); err != nil {
		return fmt.Errorf("prune login failures: %w", err)
	}
	return nil
}

// loginFailure is one failed sign-in, keyed by "email:…" or "ip:…".
type loginFailure struct {
	bun.BaseModel `bun:"table:login_failures"`

	Key      string    `bun:"key,notnull"`
	FailedAt time.Time `bun:"failed_at,notnull"`
}

// RecordLoginFailure notes a failed sign-in under each key.
func (s *Store) RecordLoginFailure(ctx context.Context, keys ...string) error {
	now := s.now()
	rows := make([]loginFailure, 0, len(keys))
	for _, k := range keys {
		rows = append(rows, loginFailure{Key: k, FailedAt: now})
	}
	if len(rows) == 0 {
		return nil
	}
	_, err := s.db.NewInsert().Model(&rows).Exec(ctx)
	return err
}

// LoginFailures returns how many sign-ins failed under key since a time, and the last.
func (s *Store) LoginFailures(ctx context.Context, key string, since time.Time) (int, time.Time, error) {
	var row struct {
		N    int
		Last *time.Time
	}
	err := s.db.NewSelect().Model((*loginFailure)(nil)).
		ColumnExpr("COUNT(*) AS n").ColumnExpr("MAX(failed_at) AS last").
		Where("key = ? AND failed_at >= ?", key, since.UTC()).Scan(ctx, &row.N, &row.Last)
	if err != nil {
		return 0, time.Time{}, translate(err)
	}
	if row.Last == nil {
		return row.N, time.Time{}, nil
	}
	return row.N, *row.Last, nil
}

// ClearLoginFailures forgets the failures under key (after a successful sign-in).
func (s *Store) ClearLoginFailures(ctx context.Context, key string) error {
	_, err := s.db.NewDelete().Model((*loginFailure)(nil)).Where("key = ?", key).Exec(ctx)
	return err
}
