package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// IdempotencyWindow is how long an Idempotency-Key keeps answering with its first event.
const IdempotencyWindow = 24 * time.Hour

// ErrIdempotencyMismatch means the key was used within the window for a different body.
var ErrIdempotencyMismatch = errors.New("idempotency key reused with a different request")

// InsertEvent stores e durably. With an idempotency key already used within the window
// for the same request it returns the first event and duplicate=true, for another
// request ErrIdempotencyMismatch. A key older than the window is released and reused.
func (s *Store) InsertEvent(ctx context.Context, e *Event) (stored *Event, duplicate bool, err error) {
	if e.ID == "" {
		e.ID = NewID(PrefixEvent)
	}
	if e.ReceivedAt.IsZero() {
		e.ReceivedAt = s.now()
	}
	if e.OccurredAt.IsZero() {
		e.OccurredAt = e.ReceivedAt
	}
	for try := 0; try < 2; try++ {
		_, err := s.db.NewInsert().Model(e).Exec(ctx)
		if err == nil {
			return e, false, nil
		}
		if !errors.Is(translate(err), ErrConflict) || e.IdempotencyKey == nil {
			return nil, false, fmt.Errorf("insert event: %w", translate(err))
		}
		prev := new(Event)
		if err := s.db.NewSelect().Model(prev).
			Where("workspace_id = ? AND idempotency_key = ?", e.WorkspaceID, *e.IdempotencyKey).
			Scan(ctx); err != nil {
			return nil, false, fmt.Errorf("load event by idempotency key: %w", translate(err))
		}
		if s.now().Sub(prev.ReceivedAt) < IdempotencyWindow {
			if prev.RequestHash != e.RequestHash {
				return nil, false, ErrIdempotencyMismatch
			}
			return prev, true, nil
		}
		if _, err := s.db.NewUpdate().Model((*Event)(nil)).Set("idempotency_key = NULL").
			Where("id = ?", prev.ID).Exec(ctx); err != nil {
			return nil, false, fmt.Errorf("release idempotency key: %w", err)
		}
	}
	return nil, false, fmt.Errorf("insert event: %w", ErrConflict)
}

// EventByID loads one event of the workspace.
func (s *Store) EventByID(ctx context.Context, workspaceID, id string) (*Event, error) {
	e := new(Event)
	if err := s.db.NewSelect().Model(e).Where("workspace_id = ? AND id = ?", workspaceID, id).Scan(ctx); err != nil {
		return nil, translate(err)
	}
	return e, nil
}

// EventFilter narrows ListEvents. Status keeps events with at least one delivery in it.
type EventFilter struct {
	Type   string
	Status string
	Since  time.Time
	Until  time.Time
	Page
}

func (f EventFilter) apply(q *bun.SelectQuery) *bun.SelectQuery {
	if f.Type != "" {
		q = q.Where("event.type = ?", f.Type)
	}
	if !f.Since.IsZero() {
		q = q.Where("event.received_at >= ?", f.Since.UTC())
	}
	if !f.Until.IsZero() {
		q = q.Where("event.received_at < ?", f.Until.UTC())
	}
	if f.Status != "" {
		q = q.Where("EXISTS (SELECT 1 FROM deliveries AS d WHERE d.event_id = event.id AND d.workspace_id = event.workspace_id AND d.status = ?)", f.Status)
	}
	return q
}

// ListEvents returns a page of events, newest first, and the cursor of the next page.
func (s *Store) ListEvents(ctx context.Context, workspaceID string, f EventFilter) ([]*Event, string, error) {
	var es []*Event
	q := f.apply(s.db.NewSelect().Model(&es).Where("event.workspace_id = ?", workspaceID))
	q = applyPage(q, "event.id", f.Page)
	if err := q.Scan(ctx); err != nil {
		return nil, "", translate(err)
	}
	es, next := nextCursor(es, f.Page, func(e *Event) string { return e.ID })
	return es, next, nil
}

// UnroutedEvents returns events received before cutoff that the router has not finished.
func (s *Store) UnroutedEvents(ctx context.Context, cutoff time.Time, limit int) ([]*Event, error) {
	var es []*Event
	err := s.db.NewSelect().Model(&es).Column("id", "workspace_id").
		Where("routed_at IS NULL AND received_at < ?", cutoff.UTC()).
		Order("received_at").Limit(int64(limit)).Scan(ctx)
	return es, translate(err)
}
