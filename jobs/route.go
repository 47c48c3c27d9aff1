package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/jobs/rules"
	"github.com/hibiken/asynq"
)

// Match is the verdict of one rule on one event.
type Match struct {
	Matched bool
	Reason  string // why not, when not matched
}

// MatchRule decides whether r routes the event. A condition that fails at run time
// (a user expression comparing incompatible types) does not match, with the error as reason.
func (e *Engine) MatchRule(r *db.Rule, eventType string, env map[string]any) Match {
	if !rules.MatchType(r.EventType, eventType) {
		return Match{Reason: fmt.Sprintf("event type %q does not match %q", eventType, r.EventType)}
	}
	if r.Expression == "" {
		return Match{Matched: true}
	}
	prog, err := e.Rules.Program(r.Expression)
	if err != nil {
		return Match{Reason: "condition does not compile: " + err.Error()}
	}
	ok, err := prog.Match(env)
	switch {
	case err != nil:
		return Match{Reason: "condition failed: " + err.Error()}
	case ok:
		return Match{Matched: true}
	case len(r.Condition) > 0:
		return Match{Reason: rules.Explain(r.Condition, env)}
	default:
		return Match{Reason: "expression is false: " + r.Expression}
	}
}

// EventEnv is the rule and mapping environment of an event.
func EventEnv(ev *db.Event) map[string]any {
	return rules.Env(rules.Input{ID: ev.ID, Type: ev.Type, Source: ev.Source, OccurredAt: ev.OccurredAt, Data: ev.Data})
}

// Envelope is the default body sent for an event: what a webhook receiver gets when the
// action has no mapping.
func Envelope(ev *db.Event) json.RawMessage {
	b, _ := json.Marshal(struct {
		ID         string          `json:"id"`
		Type       string          `json:"type"`
		OccurredAt time.Time       `json:"occurred_at"`
		Data       json.RawMessage `json:"data"`
	}{ev.ID, ev.Type, ev.OccurredAt.UTC(), ev.Data})
	return b
}

// Payload builds what an action sends for an event: its mapping applied, or the envelope
// (without decoding the event's data, which only a mapping needs).
func (e *Engine) Payload(a *db.RuleAction, ev *db.Event) (json.RawMessage, error) {
	if isEmptyJSON(a.Mapping) {
		return Envelope(ev), nil
	}
	m, err := e.Rules.Mapping(a.Mapping)
	if err != nil {
		return nil, err
	}
	return m.Apply(EventEnv(ev))
}

func isEmptyJSON(raw json.RawMessage) bool {
	s := string(raw)
	return s == "" || s == "null" || s == "{}"
}

// HandleRoute turns an event into deliveries, one per matching (rule, action), and queues
// their first attempts. Running it twice for one event creates nothing new.
func (e *Engine) HandleRoute(ctx context.Context, t *asynq.Task) error {
	var p RoutePayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("decode route payload: %v: %w", err, asynq.SkipRetry)
	}
	ev, err := e.Store.EventByID(ctx, p.WorkspaceID, p.EventID)
	if errors.Is(err, db.ErrNotFound) {
		return fmt.Errorf("event %s: %w", p.EventID, asynq.SkipRetry)
	}
	if err != nil {
		return fmt.Errorf("load event %s: %w", p.EventID, err)
	}
	ds, err := e.plan(ctx, ev)
	if err != nil {
		return err
	}
	pending, err := e.Store.RouteEvent(ctx, ev.WorkspaceID, ev.ID, ds)
	if err != nil {
		return fmt.Errorf("route event %s: %w", ev.ID, err)
	}
	now := e.Store.Now()
	for _, d := range pending {
		if err := e.Queue.EnqueueDelivery(ctx, d, now, QueueDefault); err != nil {
			// The row is durable; the reconciler enqueues it once the queue is back.
			e.Log.Warn("enqueue delivery", "delivery_id", d.ID, "err", err)
		}
	}
	return nil
}

// plan lists the deliveries an event needs, without storing them.
func (e *Engine) plan(ctx context.Context, ev *db.Event) ([]*db.Delivery, error) {
	rs, err := e.rules.get(ctx, ev.WorkspaceID, func(ctx context.Context) ([]*db.Rule, error) {
		return e.Store.ListRules(ctx, ev.WorkspaceID, db.RuleFilter{EnabledOnly: true})
	})
	if err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	env := EventEnv(ev)
	var ds []*db.Delivery
	for _, r := range rs {
		if !e.MatchRule(r, ev.Type, env).Matched {
			continue
		}
		for _, a := range r.Actions {
			ds = append(ds, &db.Delivery{RuleID: r.ID, RuleActionID: a.ID, ConnectionID: a.ConnectionID})
		}
	}
	return ds, nil
}
