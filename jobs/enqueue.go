package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fanout-dev/fanout/db"
	"github.com/hibiken/asynq"
)

// Enqueuer hands work to the queue. Enqueueing work that is already queued is not an
// error: ids make it idempotent. An error means the queue could not be reached; the
// caller's rows are still durable and the reconciler will enqueue them later.
type Enqueuer interface {
	EnqueueRoute(ctx context.Context, workspaceID, eventID string) error
	EnqueueDelivery(ctx context.Context, d *db.Delivery, at time.Time, queue string) error
}

// Queue is the asynq-backed Enqueuer.
type Queue struct {
	client *asynq.Client
}

// NewQueue wraps an asynq client.
func NewQueue(client *asynq.Client) *Queue { return &Queue{client: client} }

// EnqueueRoute queues the routing of an event.
func (q *Queue) EnqueueRoute(ctx context.Context, workspaceID, eventID string) error {
	return q.enqueue(ctx, NewRouteTask(workspaceID, eventID))
}

// EnqueueDelivery queues the next attempt of d at the given time.
func (q *Queue) EnqueueDelivery(ctx context.Context, d *db.Delivery, at time.Time, queue string) error {
	return q.enqueue(ctx, NewDeliverTask(d.WorkspaceID, d.ID, d.AttemptCount, d.ReplayCount, queue, at, maxAttemptTimeout))
}

func (q *Queue) enqueue(ctx context.Context, t *asynq.Task) error {
	_, err := q.client.EnqueueContext(ctx, t)
	if err == nil || errors.Is(err, asynq.ErrTaskIDConflict) || errors.Is(err, asynq.ErrDuplicateTask) {
		return nil
	}
	return fmt.Errorf("enqueue %s: %w", t.Type(), err)
}
