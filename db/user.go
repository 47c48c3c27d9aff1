package db

import (
	"context"
	"fmt"
	"strings"
)

// NormalizeEmail is the form emails are stored and looked up in.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// PromoteUser makes the user with that email an instance administrator.
func (s *Store) PromoteUser(ctx context.Context, email string) error {
	res, err := s.db.NewUpdate().Model((*User)(nil)).Set("is_admin = ?", true).
		Where("email = ?", NormalizeEmail(email)).Exec(ctx)
	if err := affectedOne(res, err); err != nil {
		return fmt.Errorf("promote %s: %w", email, err)
	}
	return nil
}

// CreateUser stores a new account; the email is normalised and must be unused
// (ErrConflict otherwise). passwordHash is already hashed by the caller.
func (s *Store) CreateUser(ctx context.Context, email, passwordHash string) (*User, error) {
	u := &User{ID: NewID(PrefixUser), Email: NormalizeEmail(email), PasswordHash: passwordHash, CreatedAt: s.now()}
	if _, err := s.db.NewInsert().Model(u).Exec(ctx); err != nil {
		return nil, fmt.Errorf("create user: %w", translate(err))
	}
	return u, nil
}

// UserByID loads one user.
func (s *Store) UserByID(ctx context.Context, id string) (*User, error) {
	u := new(User)
	if err := s.db.NewSelect().Model(u).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, translate(err)
	}
	return u, nil
}

// UserByEmail loads the user with that email (case-insensitive).
func (s *Store) UserByEmail(ctx context.Context, email string) (*User, error) {
	u := new(User)
	if err := s.db.NewSelect().Model(u).Where("email = ?", NormalizeEmail(email)).Scan(ctx); err != nil {
		return nil, translate(err)
	}
	return u, nil
}

// SetPasswordHash replaces a user's password hash.
func (s *Store) SetPasswordHash(ctx context.Context, userID, hash string) error {
	res, err := s.db.NewUpdate().Model((*User)(nil)).Set("password_hash = ?", hash).
		Where("id = ?", userID).Exec(ctx)
	return affectedOne(res, err)
}
