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
	client    *asynq.Client
	inspector *asynq.Inspector
}

// NewQueue wraps an asynq client and an inspector of the same Redis.
func NewQueue(client *asynq.Client, inspector *asynq.Inspector) *Queue {
	return &Queue{client: client, inspector: inspector}
}

// EnqueueRoute queues the routing of an event.
func (q *Queue) EnqueueRoute(ctx context.Context, workspaceID, eventID string) error {
	return q.enqueue(ctx, NewRouteTask(workspaceID, eventID))
}

// EnqueueDelivery queues the next attempt of d at the given time.
func (q *Queue) EnqueueDelivery(ctx context.Context, d *db.Delivery, at time.Time, queue string) error {
	return q.enqueue(ctx, NewDeliverTask(d.WorkspaceID, d.ID, d.AttemptCount, d.ReplayCount, queue, at, maxAttemptTimeout))
}

func (q *Queue) enqueue(ctx context.Context, t *asynq.Task, opts ...asynq.Option) error {
	_, err := q.client.EnqueueContext(ctx, t, opts...)
	if err == nil || errors.Is(err, asynq.ErrTaskIDConflict) || errors.Is(err, asynq.ErrDuplicateTask) {
		return nil
	}
	return fmt.Errorf("enqueue %s: %w", t.Type(), err)
}

// requeue enqueues lost work for the reconciler. When a task of the same id is still
// "active" in Redis although the database says nobody holds the work, the worker that
// ran it died: asynq would only recover it after its lease and recoverer period (up to
// 90 s), so a second task is queued beside it, at most one a minute. Running both is
// harmless: the database lease lets one attempt through.
func (q *Queue) requeue(ctx context.Context, t *asynq.Task, queue, id string) error {
	_, err := q.client.EnqueueContext(ctx, t)
	if !errors.Is(err, asynq.ErrTaskIDConflict) {
		return q.enqueue(ctx, t)
	}
	info, err := q.inspector.GetTaskInfo(queue, id)
	if err != nil || info.State != asynq.TaskStateActive {
		return nil
	}
	return q.enqueue(ctx, t, asynq.TaskID(fmt.Sprintf("%s:r%d", id, time.Now().Unix()/60)))
}

// RequeueRoute re-enqueues the routing of an event the database says was never routed.
func (q *Queue) RequeueRoute(ctx context.Context, workspaceID, eventID string) error {
	return q.requeue(ctx, NewRouteTask(workspaceID, eventID), QueueCritical, eventID)
}

// RequeueDelivery re-enqueues an overdue delivery that no worker holds.
func (q *Queue) RequeueDelivery(ctx context.Context, d *db.Delivery) error {
	t := NewDeliverTask(d.WorkspaceID, d.ID, d.AttemptCount, d.ReplayCount, QueueDefault, time.Time{}, maxAttemptTimeout)
	return q.requeue(ctx, t, QueueDefault, deliverTaskID(d.ID, d.AttemptCount, d.ReplayCount))
}

// Latency is how long the oldest task of a queue has waited (0 when empty or unknown).
func (q *Queue) Latency(queue string) time.Duration {
	info, err := q.inspector.GetQueueInfo(queue)
	if err != nil {
		return 0
	}
	return info.Latency
}
