package db

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// DeliveryDiscarded is the status of a dead delivery an operator set aside: it leaves the
// dead-letter list and keeps its history; replaying it brings it back to work.
const DeliveryDiscarded = "discarded"

// CountDeliveries counts the deliveries matching f (its Page is ignored).
func (s *Store) CountDeliveries(ctx context.Context, workspaceID string, f DeliveryFilter) (int, error) {
	q := f.apply(s.db.NewSelect().Model((*Delivery)(nil)).Where("workspace_id = ?", workspaceID))
	n, err := q.Count(ctx)
	return int(n), translate(err)
}

// DiscardDeliveries sets the given dead deliveries aside and returns how many it changed;
// ids that are not dead deliveries of the workspace are skipped.
func (s *Store) DiscardDeliveries(ctx context.Context, workspaceID string, ids []string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	res, err := s.db.NewUpdate().Model((*Delivery)(nil)).
		Set("status = ?, updated_at = ?", DeliveryDiscarded, s.now()).
		Where("workspace_id = ? AND status = ? AND id IN (?)", workspaceID, DeliveryDead, bun.In(ids)).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("discard deliveries: %w", translate(err))
	}
	n, err := res.RowsAffected()
	return int(n), err
}
