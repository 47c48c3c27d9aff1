package db

import (
	"context"
	"fmt"
	"time"
)

// Bucket is one slice of the overview chart.
type Bucket struct {
	Start    time.Time
	Events   int
	Failures int // failed attempts
}

// ConnectionHealth is one destination's recent record. Succeeded and Dead count
// deliveries that reached that state since the window's start; Retrying and Pending are
// the deliveries in flight now.
type ConnectionHealth struct {
	ConnectionID   string     `bun:"id"`
	LastSuccessAt  *time.Time `bun:"last_success_at"`
	LastDeadAt     *time.Time `bun:"last_dead_at"`
	LastDeadError  *string    `bun:"last_dead_error"`
	LastRetryAt    *time.Time `bun:"last_retry_at"`
	LastRetryError *string    `bun:"last_retry_error"`
	Succeeded      int        `bun:"succeeded"`
	Dead           int        `bun:"dead"`
	Retrying       int        `bun:"retrying"`
	Pending        int        `bun:"pending"`
}

// LastError returns the most recent failure of the destination: its time and message.
func (h *ConnectionHealth) LastError() (*time.Time, string) {
	switch {
	case h.LastDeadAt != nil && (h.LastRetryAt == nil || h.LastDeadAt.After(*h.LastRetryAt)):
		return h.LastDeadAt, deref(h.LastDeadError)
	case h.LastRetryAt != nil:
		return h.LastRetryAt, deref(h.LastRetryError)
	}
	return nil, ""
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// ConnectionHealth returns, for every connection of the workspace, its recent record
// since the given time, keyed by connection id. It is one statement whose correlated
// subqueries are index seeks or index-only range counts on
// deliveries (workspace_id, connection_id, status, updated_at).
func (s *Store) ConnectionHealth(ctx context.Context, workspaceID string, since time.Time) (map[string]*ConnectionHealth, error) {
	since = since.UTC()
	sub := func(expr, status, extra string) string {
		return "(SELECT " + expr + " FROM deliveries AS d WHERE d.workspace_id = c.workspace_id AND d.connection_id = c.id AND d.status = '" + status + "'" + extra + ")"
	}
	latest := func(col, status string) string {
		return "(SELECT d." + col + " FROM deliveries AS d WHERE d.workspace_id = c.workspace_id AND d.connection_id = c.id AND d.status = '" + status + "' ORDER BY d.updated_at DESC LIMIT 1)"
	}
	var rows []*ConnectionHealth
	err := s.db.NewSelect().TableExpr("connections AS c").
		ColumnExpr("c.id").
		ColumnExpr(sub("MAX(d.updated_at)", DeliverySucceeded, "")+" AS last_success_at").
		ColumnExpr(sub("MAX(d.updated_at)", DeliveryDead, "")+" AS last_dead_at").
		ColumnExpr(latest("last_error", DeliveryDead)+" AS last_dead_error").
		ColumnExpr(sub("MAX(d.updated_at)", DeliveryRetrying, "")+" AS last_retry_at").
		ColumnExpr(latest("last_error", DeliveryRetrying)+" AS last_retry_error").
		ColumnExpr(sub("COUNT(*)", DeliverySucceeded, " AND d.updated_at >= ?0")+" AS succeeded", since).
		ColumnExpr(sub("COUNT(*)", DeliveryDead, " AND d.updated_at >= ?0")+" AS dead", since).
		ColumnExpr(sub("COUNT(*)", DeliveryRetrying, "")+" AS retrying").
		ColumnExpr(sub("COUNT(*)", DeliveryPending, "")+" AS pending").
		Where("c.workspace_id = ?", workspaceID).
		Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("connection health: %w", translate(err))
	}
	out := make(map[string]*ConnectionHealth, len(rows))
	for _, r := range rows {
		out[r.ConnectionID] = r
	}
	return out, nil
}

// CountEventsSince counts the workspace's events received since a time.
func (s *Store) CountEventsSince(ctx context.Context, workspaceID string, since time.Time) (int, error) {
	n, err := s.db.NewSelect().Model((*Event)(nil)).
		Where("workspace_id = ? AND received_at >= ?", workspaceID, since.UTC()).Count(ctx)
	return int(n), translate(err)
}

// Timeline counts events received and failed attempts in n equal buckets from since to
// until. It is one statement of 2n scalar subqueries, each an index-only range count on
// events (workspace_id, received_at) or attempts (workspace_id, started_at, outcome):
// no per-row expression, the same SQL on both dialects.
func (s *Store) Timeline(ctx context.Context, workspaceID string, since, until time.Time, n int) ([]Bucket, error) {
	since, until = since.UTC(), until.UTC()
	step := until.Sub(since) / time.Duration(n)
	out := make([]Bucket, n)
	q := s.db.NewSelect()
	for i := range out {
		out[i].Start = since.Add(time.Duration(i) * step)
		lo, hi := out[i].Start, since.Add(time.Duration(i+1)*step)
		if i == n-1 {
			hi = until
		}
		q = q.ColumnExpr("(SELECT COUNT(*) FROM events WHERE workspace_id = ? AND received_at >= ? AND received_at < ?)", workspaceID, lo, hi).
			ColumnExpr("(SELECT COUNT(*) FROM attempts WHERE workspace_id = ? AND started_at >= ? AND started_at < ? AND outcome <> 'succeeded')", workspaceID, lo, hi)
	}
	dest := make([]any, 0, 2*n)
	for i := range out {
		dest = append(dest, &out[i].Events, &out[i].Failures)
	}
	if err := q.Scan(ctx, dest...); err != nil {
		return nil, fmt.Errorf("timeline: %w", translate(err))
	}
	return out, nil
}
