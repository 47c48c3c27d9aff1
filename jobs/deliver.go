package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/jobs/connectors"
	"github.com/fanout-dev/fanout/jobs/rules"
	"github.com/hibiken/asynq"
)

// errConnectionBusy asks asynq to try the task again shortly: the connection already has
// its share of workers. It is not a failure (see IsFailure) and costs no attempt.
var errConnectionBusy = errors.New("connection busy")

// leaseGrace is how long past its timeout an attempt may take to be recorded before
// another worker may take the delivery over (a crashed worker's deliveries wait this long).
const leaseGrace = 15 * time.Second

// maxRateLimitedAttempts stops a destination that answers 429 forever from keeping a
// delivery alive forever: past this many attempts, a 429 counts as a failure.
const maxRateLimitedAttempts = 200

// HandleDeliver makes one attempt of a delivery and records it with the delivery's next
// state, in one transaction, before it returns. Stale tasks (the delivery is final, not
// yet due, or held by another worker) are no-ops.
func (e *Engine) HandleDeliver(ctx context.Context, t *asynq.Task) error {
	var p DeliverPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("decode delivery payload: %v: %w", err, asynq.SkipRetry)
	}
	d, err := e.Store.DeliveryForAttempt(ctx, p.WorkspaceID, p.DeliveryID)
	if errors.Is(err, db.ErrNotFound) {
		return fmt.Errorf("delivery %s: %w", p.DeliveryID, asynq.SkipRetry)
	}
	if err != nil {
		return fmt.Errorf("load delivery %s: %w", p.DeliveryID, err)
	}
	if d.IsFinal() || d.RuleAction == nil || d.Event == nil {
		// Rule actions and events are never deleted while their deliveries exist.
		return nil
	}
	release, ok := e.slots.acquire(d.ConnectionID)
	if !ok {
		return errConnectionBusy
	}
	defer release()

	timeout := attemptTimeout(d.RuleAction)
	claimed, err := e.Store.ClaimDelivery(ctx, d.WorkspaceID, d.ID, e.Store.Now().Add(timeout+leaseGrace))
	if errors.Is(err, db.ErrNotClaimable) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("claim delivery %s: %w", p.DeliveryID, err)
	}
	claimed.Event, claimed.RuleAction, claimed.Connection = d.Event, d.RuleAction, d.Connection
	return e.attempt(ctx, claimed, timeout)
}

func attemptTimeout(a *db.RuleAction) time.Duration {
	t := time.Duration(a.TimeoutMS) * time.Millisecond
	switch {
	case t <= 0:
		return DefaultAttemptTimeout
	case t > maxAttemptTimeout:
		return maxAttemptTimeout
	}
	return t
}

// attempt sends the claimed delivery once and records the outcome. d carries its event,
// rule action and connection (nil when deleted).
func (e *Engine) attempt(ctx context.Context, d *db.Delivery, timeout time.Duration) error {
	act, conn, ev := d.RuleAction, d.Connection, d.Event
	policy, err := rules.ParseRetryPolicy(act.Retry)
	if err != nil {
		policy = rules.DefaultRetryPolicy()
	}
	if conn == nil {
		return e.finish(ctx, d, policy, nil, connectors.Result{Outcome: connectors.Permanent, ErrorClass: connectors.ClassConfig, Message: "connection was deleted"})
	}
	if conn.Status != db.ConnectionActive {
		// A disabled or disconnected destination holds its deliveries without using
		// attempts; enabling or reconnecting it resumes them.
		return e.Store.ParkDelivery(ctx, d, "waiting: connection is "+conn.Status, connectors.ClassAuth)
	}
	connector, ok := e.Connectors.Get(conn.Kind)
	if !ok {
		return e.finish(ctx, d, policy, nil, connectors.Result{Outcome: connectors.Permanent, ErrorClass: connectors.ClassConfig, Message: "unknown connector kind " + conn.Kind})
	}
	creds, err := OpenCredentials(e.Keyring, conn)
	if err != nil {
		return e.finish(ctx, d, policy, conn, connectors.Result{Outcome: connectors.AuthFailed, ErrorClass: connectors.ClassAuth, Message: "credentials cannot be decrypted"})
	}
	payload, err := e.Payload(act, ev)
	if err != nil {
		return e.finish(ctx, d, policy, conn, connectors.Result{Outcome: connectors.Permanent, ErrorClass: connectors.ClassMapping, Message: err.Error()})
	}
	req := &connectors.Request{
		DeliveryID: d.ID, Attempt: d.AttemptCount + 1, Action: act.Action,
		Event:   connectors.Event{ID: ev.ID, Type: ev.Type, OccurredAt: ev.OccurredAt, Data: ev.Data},
		Payload: payload, Options: act.Options, Config: conn.Config, Credentials: creds, HTTP: e.HTTP,
	}
	done, ok := e.breakers.allow(conn.ID)
	if !ok {
		return e.postpone(ctx, d, e.BreakerCooldown, "circuit open: the destination failed "+fmt.Sprint(breakerTrips)+" times in a row; trying again after a pause")
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	res := connector.Send(actx, req)
	elapsed := time.Since(start)
	done(res.Outcome == connectors.Retry)
	e.Metrics.observeAttempt(conn.Kind, res, elapsed)
	if res.Credentials != nil {
		if err := e.saveCredentials(ctx, conn, res.Credentials); err != nil {
			e.Log.Error("save refreshed credentials", "connection_id", conn.ID, "err", err)
		}
	}
	att := &db.Attempt{
		Number: d.AttemptCount + 1, StartedAt: start.UTC(), DurationMS: elapsed.Milliseconds(),
		Request: res.Request, StatusCode: res.StatusCode, ResponseExcerpt: res.Response,
		ErrorClass: res.ErrorClass, ErrorMessage: res.Message, Outcome: string(res.Outcome),
		Retryable: res.Outcome == connectors.Retry || res.Outcome == connectors.RateLimited,
	}
	return e.finishWith(ctx, d, policy, conn, res, att)
}

// finish records an outcome reached without sending anything.
func (e *Engine) finish(ctx context.Context, d *db.Delivery, policy rules.RetryPolicy, conn *db.Connection, res connectors.Result) error {
	att := &db.Attempt{
		Number: d.AttemptCount + 1, StartedAt: e.Store.Now(), ErrorClass: res.ErrorClass,
		ErrorMessage: res.Message, Outcome: string(res.Outcome),
	}
	return e.finishWith(ctx, d, policy, conn, res, att)
}

// finishWith moves the delivery to its next state, records the attempt, and queues the
// next attempt when there is one.
func (e *Engine) finishWith(ctx context.Context, d *db.Delivery, policy rules.RetryPolicy, conn *db.Connection, res connectors.Result, att *db.Attempt) error {
	now := e.Store.Now()
	d.AttemptCount++
	d.LastStatusCode, d.LastErrorClass, d.LastError = res.StatusCode, res.ErrorClass, res.Message
	next := e.transition(d, policy, res, now)
	d.NextAttemptAt = next
	if err := e.updateConnection(ctx, conn, res); err != nil {
		return err
	}
	if err := e.Store.RecordAttempt(ctx, d, att); err != nil {
		return fmt.Errorf("record attempt of %s: %w", d.ID, err)
	}
	e.Metrics.deliveryOutcome(d.Status)
	if next != nil {
		if err := e.Queue.EnqueueDelivery(ctx, d, *next, QueueDefault); err != nil {
			e.Log.Warn("enqueue retry", "delivery_id", d.ID, "err", err)
		}
	}
	return nil
}

// transition sets d.Status and returns the time of the next attempt, or nil.
func (e *Engine) transition(d *db.Delivery, policy rules.RetryPolicy, res connectors.Result, now time.Time) *time.Time {
	outcome := res.Outcome
	if outcome == connectors.RateLimited && d.AttemptCount >= maxRateLimitedAttempts {
		outcome = connectors.Retry
	}
	switch outcome {
	case connectors.Succeeded:
		d.Status, d.LastError, d.LastErrorClass = db.DeliverySucceeded, "", ""
		return nil
	case connectors.AuthFailed:
		d.Status = db.DeliveryRetrying // parked until the connection is reconnected
		return nil
	case connectors.Permanent:
		d.Status = db.DeliveryDead
		return nil
	case connectors.RateLimited:
		// Does not use up an attempt: failure_count stays.
	default:
		d.FailureCount++
		if policy.Exhausted(d.FailureCount) {
			d.Status = db.DeliveryDead
			d.LastError = fmt.Sprintf("gave up after %d failed attempts: %s", d.FailureCount, d.LastError)
			return nil
		}
	}
	wait := policy.Delay(max(d.FailureCount, 1), e.rand)
	if res.RetryAfter > 0 {
		// Retry-After is honoured exactly, capped at the schedule's span (at least an
		// hour) so a destination cannot park work forever.
		wait = min(res.RetryAfter, max(policy.Span(), time.Hour))
	}
	next := now.Add(wait)
	if policy.MaxAge > 0 && next.Sub(d.CreatedAt) > policy.MaxAge {
		d.Status = db.DeliveryDead
		d.LastError = "gave up: older than the action's max age: " + d.LastError
		return nil
	}
	d.Status = db.DeliveryRetrying
	return &next
}

func (e *Engine) saveCredentials(ctx context.Context, conn *db.Connection, creds connectors.Credentials) error {
	if err := SealCredentials(e.Keyring, conn, creds); err != nil {
		return err
	}
	return e.Store.UpdateConnection(ctx, conn)
}

// updateConnection changes the connection's status when an answer says it is unusable:
// an auth failure needs a reconnect; 410 Gone disables the endpoint, so its other
// deliveries wait instead of failing one by one.
func (e *Engine) updateConnection(ctx context.Context, conn *db.Connection, res connectors.Result) error {
	if conn == nil {
		return nil
	}
	status, note := "", ""
	switch {
	case res.Outcome == connectors.AuthFailed:
		status, note = db.ConnectionNeedsReconnect, res.Message
	case res.StatusCode == http.StatusGone:
		status, note = db.ConnectionDisabled, "the destination answered 410 Gone; re-enable it once the endpoint exists again"
	default:
		return nil
	}
	if err := e.Store.SetConnectionStatus(ctx, conn.WorkspaceID, conn.ID, status, note); err != nil {
		return fmt.Errorf("mark connection %s: %w", status, err)
	}
	return nil
}

// postpone moves a delivery's next attempt later without making one (and without using
// an attempt). The running task comes back after the wait as an asynq retry that does not
// count as a failure (see retryDelay).
func (e *Engine) postpone(ctx context.Context, d *db.Delivery, wait time.Duration, reason string) error {
	wait += time.Duration(e.rand() * float64(wait) / 5)
	next := e.Store.Now().Add(wait)
	d.NextAttemptAt, d.LastError, d.LastErrorClass = &next, reason, ClassCircuitOpen
	if err := e.Store.RecordAttempt(ctx, d, nil); err != nil {
		return fmt.Errorf("postpone %s: %w", d.ID, err)
	}
	return &postponed{wait: wait}
}

// postponed asks asynq to run the task again after wait, without counting a failure.
type postponed struct{ wait time.Duration }

func (p *postponed) Error() string { return "postponed for " + p.wait.String() }

// ClassCircuitOpen marks a delivery waiting for its destination's circuit to close.
const ClassCircuitOpen = "circuit_open"
