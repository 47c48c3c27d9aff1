package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// ErrNotClaimable means the delivery is final, leased by another worker, or not yet due.
var ErrNotClaimable = errors.New("delivery not claimable")

var inFlight = []string{DeliveryPending, DeliveryRetrying}

// RouteEvent creates the event's deliveries (skipping any that exist: routing may run
// twice) and marks the event routed, in one transaction. It returns the deliveries it
// created.
func (s *Store) RouteEvent(ctx context.Context, workspaceID, eventID string, ds []*Delivery) ([]*Delivery, error) {
	var pending []*Delivery
	err := s.InTx(ctx, func(tx *Store) error {
		now := tx.now()
		for _, d := range ds {
			d.ID = NewID(PrefixDelivery)
			d.WorkspaceID, d.EventID = workspaceID, eventID
			d.Status = DeliveryPending
			d.NextAttemptAt = &now
			d.CreatedAt, d.UpdatedAt = now, now
		}
		if len(ds) > 0 {
			// RETURNING lists only the rows this call created: a second routing of the
			// same event queues nothing new (the reconciler covers lost queue entries).
			if err := tx.db.NewInsert().Model(&ds).On("CONFLICT (event_id, rule_action_id) DO NOTHING").
				Returning("id, workspace_id, attempt_count, replay_count").Scan(ctx, &pending); err != nil {
				return fmt.Errorf("create deliveries: %w", translate(err))
			}
		}
		if _, err := tx.db.NewUpdate().Model((*Event)(nil)).Set("routed_at = ?", now).
			Where("workspace_id = ? AND id = ? AND routed_at IS NULL", workspaceID, eventID).Exec(ctx); err != nil {
			return fmt.Errorf("mark event routed: %w", err)
		}
		return nil
	})
	return pending, err
}

// DeliveryByID loads one delivery of the workspace.
func (s *Store) DeliveryByID(ctx context.Context, workspaceID, id string) (*Delivery, error) {
	d := new(Delivery)
	if err := s.db.NewSelect().Model(d).Where("workspace_id = ? AND id = ?", workspaceID, id).Scan(ctx); err != nil {
		return nil, translate(err)
	}
	return d, nil
}

// DeliveryForAttempt loads a delivery with its event, rule action and connection in one
// query. Connection is nil when the connection was deleted.
func (s *Store) DeliveryForAttempt(ctx context.Context, workspaceID, id string) (*Delivery, error) {
	d := new(Delivery)
	err := s.db.NewSelect().Model(d).Relation("Event").Relation("RuleAction").Relation("Connection").
		Where("delivery.workspace_id = ? AND delivery.id = ?", workspaceID, id).Scan(ctx)
	if err != nil {
		return nil, translate(err)
	}
	return d, nil
}

// ClaimDelivery leases an in-flight, due delivery to the caller until leaseUntil, so no
// other worker attempts it meanwhile. A crashed worker's lease simply runs out.
func (s *Store) ClaimDelivery(ctx context.Context, workspaceID, id string, leaseUntil time.Time) (*Delivery, error) {
	now := s.now()
	var claimed []*Delivery
	err := s.db.NewUpdate().Model((*Delivery)(nil)).
		Set("lease_until = ?", leaseUntil.UTC()).
		Where("workspace_id = ? AND id = ?", workspaceID, id).
		Where("status IN (?)", bun.In(inFlight)).
		Where("next_attempt_at IS NOT NULL AND next_attempt_at <= ?", now).
		Where("(lease_until IS NULL OR lease_until < ?)", now).
		Returning("*").
		Scan(ctx, &claimed)
	if err != nil {
		return nil, translate(err)
	}
	if len(claimed) == 0 {
		return nil, ErrNotClaimable
	}
	return claimed[0], nil
}

// RecordAttempt appends the attempt and writes the delivery's new state (status, counts,
// next attempt, last error), releasing the lease, in one transaction.
func (s *Store) RecordAttempt(ctx context.Context, d *Delivery, a *Attempt) error {
	return s.InTx(ctx, func(tx *Store) error {
		if a != nil {
			a.ID = NewID(PrefixAttempt)
			a.WorkspaceID, a.DeliveryID = d.WorkspaceID, d.ID
			if _, err := tx.db.NewInsert().Model(a).Exec(ctx); err != nil {
				return fmt.Errorf("insert attempt: %w", translate(err))
			}
		}
		d.UpdatedAt = tx.now()
		d.LeaseUntil = nil
		res, err := tx.db.NewUpdate().Model(d).
			Column("status", "attempt_count", "failure_count", "next_attempt_at", "lease_until",
				"last_error", "last_error_class", "last_status_code", "updated_at").
			Where("workspace_id = ? AND id = ?", d.WorkspaceID, d.ID).Exec(ctx)
		return affectedOne(res, err)
	})
}

// DeliveryFilter narrows ListDeliveries and ReplayDeliveries.
type DeliveryFilter struct {
	Status       string
	ConnectionID string
	RuleID       string
	EventID      string
	ErrorClass   string
	Since        time.Time
	Until        time.Time
	Page
}

func (f DeliveryFilter) apply(q *bun.SelectQuery) *bun.SelectQuery {
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.ConnectionID != "" {
		q = q.Where("connection_id = ?", f.ConnectionID)
	}
	if f.RuleID != "" {
		q = q.Where("rule_id = ?", f.RuleID)
	}
	if f.EventID != "" {
		q = q.Where("event_id = ?", f.EventID)
	}
	if f.ErrorClass != "" {
		q = q.Where("last_error_class = ?", f.ErrorClass)
	}
	if !f.Since.IsZero() {
		q = q.Where("created_at >= ?", f.Since.UTC())
	}
	if !f.Until.IsZero() {
		q = q.Where("created_at < ?", f.Until.UTC())
	}
	return q
}

// ListDeliveries returns a page of deliveries, newest first, and the next cursor.
func (s *Store) ListDeliveries(ctx context.Context, workspaceID string, f DeliveryFilter) ([]*Delivery, string, error) {
	var ds []*Delivery
	q := f.apply(s.db.NewSelect().Model(&ds).Where("workspace_id = ?", workspaceID))
	if err := applyPage(q, "id", f.Page).Scan(ctx); err != nil {
		return nil, "", translate(err)
	}
	ds, next := nextCursor(ds, f.Page, func(d *Delivery) string { return d.ID })
	return ds, next, nil
}

// EventDeliveries returns an event's deliveries with their attempts, oldest first.
func (s *Store) EventDeliveries(ctx context.Context, workspaceID, eventID string) ([]*Delivery, error) {
	var ds []*Delivery
	err := s.db.NewSelect().Model(&ds).
		Relation("Attempts", func(q *bun.SelectQuery) *bun.SelectQuery { return q.Order("number") }).
		Where("delivery.workspace_id = ? AND delivery.event_id = ?", workspaceID, eventID).
		Order("delivery.id").Scan(ctx)
	return ds, translate(err)
}

// DueDeliveries returns in-flight deliveries whose next attempt was due before cutoff and
// that no worker holds: work whose queue entry was lost.
func (s *Store) DueDeliveries(ctx context.Context, cutoff time.Time, limit int) ([]*Delivery, error) {
	var ds []*Delivery
	err := s.db.NewSelect().Model(&ds).
		Column("id", "workspace_id", "connection_id", "attempt_count", "replay_count").
		Where("status IN (?)", bun.In(inFlight)).
		Where("next_attempt_at < ?", cutoff.UTC()).
		Where("(lease_until IS NULL OR lease_until < ?)", s.now()).
		Order("next_attempt_at").Limit(int64(limit)).Scan(ctx)
	return ds, translate(err)
}

// ReplayDelivery sends a delivery back to work now, keeping its attempt history. It
// returns the updated delivery.
func (s *Store) ReplayDelivery(ctx context.Context, workspaceID, id string) (*Delivery, error) {
	now := s.now()
	res, err := s.db.NewUpdate().Model((*Delivery)(nil)).
		Set("status = CASE WHEN status IN (?) THEN status ELSE ? END", bun.In(inFlight), DeliveryPending).
		Set("failure_count = 0, replay_count = replay_count + 1").
		Set("next_attempt_at = ?, updated_at = ?", now, now).
		Where("workspace_id = ? AND id = ?", workspaceID, id).Exec(ctx)
	if err := affectedOne(res, err); err != nil {
		return nil, err
	}
	return s.DeliveryByID(ctx, workspaceID, id)
}

// DeliveryIDs returns the ids of every delivery that matches f (no paging), oldest first,
// at most limit.
func (s *Store) DeliveryIDs(ctx context.Context, workspaceID string, f DeliveryFilter, limit int) ([]string, error) {
	var ids []string
	q := f.apply(s.db.NewSelect().Model((*Delivery)(nil)).Column("id").Where("workspace_id = ?", workspaceID))
	err := q.Order("id").Limit(int64(limit)).Scan(ctx, &ids)
	return ids, translate(err)
}

// ParkDelivery makes a delivery wait (no next attempt) until its connection
// is usable again; it does not count as an attempt.
func (s *Store) ParkDelivery(ctx context.Context, d *Delivery, reason, class string) error {
	d.NextAttemptAt = nil
	d.Status = DeliveryRetrying
	d.LastError, d.LastErrorClass = reason, class
	return s.RecordAttempt(ctx, d, nil)
}

// ResumeConnectionDeliveries schedules every parked delivery of a connection now and
// returns them, so the caller can enqueue them.
func (s *Store) ResumeConnectionDeliveries(ctx context.Context, workspaceID, connectionID string) ([]*Delivery, error) {
	now := s.now()
	var ds []*Delivery
	err := s.InTx(ctx, func(tx *Store) error {
		if _, err := tx.db.NewUpdate().Model((*Delivery)(nil)).
			Set("next_attempt_at = ?, updated_at = ?", now, now).
			Where("workspace_id = ? AND connection_id = ? AND status IN (?) AND next_attempt_at IS NULL",
				workspaceID, connectionID, bun.In(inFlight)).Exec(ctx); err != nil {
			return err
		}
		return tx.db.NewSelect().Model(&ds).Column("id", "workspace_id", "attempt_count", "replay_count").
			Where("workspace_id = ? AND connection_id = ? AND status IN (?) AND next_attempt_at = ?",
				workspaceID, connectionID, bun.In(inFlight), now).Scan(ctx)
	})
	return ds, translate(err)
}
