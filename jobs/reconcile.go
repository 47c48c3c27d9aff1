package jobs

import (
	"context"
	"time"
)

// Reconciler rebuilds lost queue entries from the database, which is the source of
// truth: events not yet routed and deliveries whose next attempt is overdue. It is safe
// to run in every worker process at once: task ids make re-enqueueing idempotent.
type Reconciler struct {
	Engine *Engine
	Queue  *Queue
	// Every is the period between passes.
	Every time.Duration
	// Grace is how overdue work must be before it counts as lost.
	Grace time.Duration
	Batch int
}

// Run reconciles at once (everything due: a restart may have lost the whole queue),
// then every period until ctx ends.
func (r *Reconciler) Run(ctx context.Context) {
	r.Pass(ctx, 0)
	t := time.NewTicker(r.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.Pass(ctx, r.Grace)
		}
	}
}

// Pass runs one reconciliation and returns how many tasks it enqueued.
func (r *Reconciler) Pass(ctx context.Context, grace time.Duration) int {
	e := r.Engine
	now := e.Store.Now()
	// Work waiting behind a backlog is late, not lost: only what is overdue by more than
	// the age of the oldest queued task (plus grace) is re-enqueued, so a busy queue is
	// not padded with duplicates.
	n := 0
	events, err := e.Store.UnroutedEvents(ctx, now.Add(-grace-r.Queue.Latency(QueueCritical)), r.Batch)
	if err != nil {
		e.Log.Warn("reconcile: list unrouted events", "err", err)
	}
	for _, ev := range events {
		if err := r.Queue.RequeueRoute(ctx, ev.WorkspaceID, ev.ID); err != nil {
			e.Log.Warn("reconcile: enqueue route", "event_id", ev.ID, "err", err)
			return n
		}
		n++
	}
	ds, err := e.Store.DueDeliveries(ctx, now.Add(-grace-r.Queue.Latency(QueueDefault)), r.Batch)
	if err != nil {
		e.Log.Warn("reconcile: list due deliveries", "err", err)
	}
	for _, d := range ds {
		if err := r.Queue.RequeueDelivery(ctx, d); err != nil {
			e.Log.Warn("reconcile: enqueue delivery", "delivery_id", d.ID, "err", err)
			return n
		}
		n++
	}
	if n > 0 {
		e.Log.Info("reconcile: re-enqueued lost work", "tasks", n)
	}
	return n
}
