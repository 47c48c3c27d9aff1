// Package jobs is Fanout's engine: the asynq tasks that route events to deliveries and
// attempt deliveries, the reconciler that rebuilds lost queue entries from the database,
// and the queue plumbing. Connectors and rule evaluation live in subpackages.
package jobs

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// Task types.
const (
	TypeRoute   = "event:route"
	TypeDeliver = "delivery:attempt"
)

// Queues, by priority: routing first so deliveries get created, replays last so a bulk
// replay never starves live traffic.
const (
	QueueCritical = "critical"
	QueueDefault  = "default"
	QueueReplay   = "replay"
)

// Queues maps each queue to its weight for asynq's weighted priority.
var Queues = map[string]int{QueueCritical: 6, QueueDefault: 3, QueueReplay: 1}

// infraRetries bounds asynq's own retries, used only when the database itself failed
// (the delivery engine schedules destination retries itself).
const infraRetries = 20

// RoutePayload is the payload of TypeRoute: ids only, the handler reloads the rows.
type RoutePayload struct {
	WorkspaceID string `json:"workspace_id"`
	EventID     string `json:"event_id"`
}

// DeliverPayload is the payload of TypeDeliver.
type DeliverPayload struct {
	WorkspaceID string `json:"workspace_id"`
	DeliveryID  string `json:"delivery_id"`
}

// NewRouteTask makes the routing task of an event. Its task id is the event id, so the
// reconciler and the ingest path can both enqueue it without doubling work.
func NewRouteTask(workspaceID, eventID string) *asynq.Task {
	b, _ := json.Marshal(RoutePayload{WorkspaceID: workspaceID, EventID: eventID})
	return asynq.NewTask(TypeRoute, b,
		asynq.Queue(QueueCritical), asynq.MaxRetry(infraRetries), asynq.TaskID(eventID),
		asynq.Timeout(time.Minute))
}

// NewDeliverTask makes the task of one attempt. The task id names the delivery, its
// attempt count and replay count: one queue entry per planned attempt.
func NewDeliverTask(workspaceID, deliveryID string, attempt, replay int, queue string, at time.Time, timeout time.Duration) *asynq.Task {
	b, _ := json.Marshal(DeliverPayload{WorkspaceID: workspaceID, DeliveryID: deliveryID})
	opts := []asynq.Option{
		asynq.Queue(queue), asynq.MaxRetry(infraRetries),
		asynq.TaskID(deliverTaskID(deliveryID, attempt, replay)),
		asynq.Timeout(timeout + 30*time.Second),
	}
	if time.Until(at) > 0 {
		// asynq keeps schedules in whole seconds, rounding down: round up instead, so an
		// attempt never runs before its time (a Retry-After is a promise to the receiver).
		opts = append(opts, asynq.ProcessAt(at.Truncate(time.Second).Add(time.Second)))
	}
	return asynq.NewTask(TypeDeliver, b, opts...)
}

func deliverTaskID(deliveryID string, attempt, replay int) string {
	return fmt.Sprintf("%s:%d:%d", deliveryID, attempt, replay)
}
