package db

import (
	"context"
	"fmt"
	"strings"
)

// PromoteUser makes the user with that email an instance administrator.
func (s *Store) PromoteUser(ctx context.Context, email string) error {
	res, err := s.db.NewUpdate().Model((*User)(nil)).Set("is_admin = ?", true).
		Where("email = ?", strings.ToLower(strings.TrimSpace(email))).Exec(ctx)
	if err := affectedOne(res, err); err != nil {
		return fmt.Errorf("promote %s: %w", email, err)
	}
	return nil
}
