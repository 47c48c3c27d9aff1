package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/jobs"
	"github.com/fanout-dev/fanout/jobs/connectors"
	"github.com/fanout-dev/fanout/jobs/rules"
	"github.com/labstack/echo/v4"
)

const maxActions = 20

// ruleInput is the body of POST and PATCH /v1/rules. Pointers tell "absent" (PATCH keeps
// the stored value) from "empty".
type ruleInput struct {
	Name       *string         `json:"name"`
	EventType  *string         `json:"event_type"`
	Condition  json.RawMessage `json:"condition"`
	Expression *string         `json:"expression"`
	Enabled    *bool           `json:"enabled"`
	Position   *int            `json:"position"`
	Actions    []actionInput   `json:"actions"`
}

type actionInput struct {
	ConnectionID string          `json:"connection_id"`
	Action       string          `json:"action"`
	Options      json.RawMessage `json:"options"`
	Mapping      json.RawMessage `json:"mapping"`
	Retry        json.RawMessage `json:"retry"`
	Timeout      string          `json:"timeout"`
}

// ListRules answers GET /v1/rules, in evaluation order.
func (h *Handlers) ListRules(c echo.Context) error {
	rs, err := h.Store.ListRules(c.Request().Context(), workspaceID(c), db.RuleFilter{})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, list(rs, ""))
}

// GetRule answers GET /v1/rules/:id.
func (h *Handlers) GetRule(c echo.Context) error {
	r, err := h.Store.RuleByID(c.Request().Context(), workspaceID(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r)
}

// CreateRule answers POST /v1/rules. Nothing is stored unless the whole rule is valid.
func (h *Handlers) CreateRule(c echo.Context) error {
	var in ruleInput
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	ctx := c.Request().Context()
	r := &db.Rule{WorkspaceID: workspaceID(c), Enabled: true}
	if err := h.applyRule(ctx, r, &in, true); err != nil {
		return err
	}
	if err := h.Store.CreateRule(ctx, r); err != nil {
		return err
	}
	h.Engine.InvalidateRules(r.WorkspaceID)
	return c.JSON(http.StatusCreated, r)
}

// UpdateRule answers PATCH /v1/rules/:id; given fields replace the stored ones (actions
// as a whole list).
func (h *Handlers) UpdateRule(c echo.Context) error {
	var in ruleInput
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	ctx := c.Request().Context()
	r, err := h.Store.RuleByID(ctx, workspaceID(c), c.Param("id"))
	if err != nil {
		return err
	}
	if err := h.applyRule(ctx, r, &in, false); err != nil {
		return err
	}
	if err := h.Store.UpdateRule(ctx, r); err != nil {
		return err
	}
	h.Engine.InvalidateRules(r.WorkspaceID)
	return c.JSON(http.StatusOK, r)
}

// DeleteRule answers DELETE /v1/rules/:id.
func (h *Handlers) DeleteRule(c echo.Context) error {
	if err := h.Store.DeleteRule(c.Request().Context(), workspaceID(c), c.Param("id")); err != nil {
		return err
	}
	h.Engine.InvalidateRules(workspaceID(c))
	return c.NoContent(http.StatusNoContent)
}

// applyRule validates in and writes it onto r. create requires the fields a new rule needs.
func (h *Handlers) applyRule(ctx context.Context, r *db.Rule, in *ruleInput, create bool) error {
	if in.Name != nil {
		r.Name = strings.TrimSpace(*in.Name)
	}
	switch {
	case r.Name == "":
		return invalid("name", "is required")
	case len(r.Name) > 100:
		return invalid("name", "must be at most 100 characters")
	}
	if in.EventType != nil {
		r.EventType = strings.TrimSpace(*in.EventType)
	}
	if r.EventType == "" {
		return invalid("event_type", "is required: an event type (lead.created) or pattern (lead.*, *)")
	}
	if err := rules.ValidatePattern(r.EventType); err != nil {
		return invalid("event_type", "%s", fieldMessage(err))
	}
	if err := h.applyCondition(r, in); err != nil {
		return err
	}
	if in.Enabled != nil {
		r.Enabled = *in.Enabled
	}
	if in.Position != nil {
		r.Position = *in.Position
	}
	if in.Actions == nil && !create {
		return nil
	}
	if len(in.Actions) == 0 {
		return invalid("actions", "at least one action is required")
	}
	if len(in.Actions) > maxActions {
		return invalid("actions", "at most %d actions per rule", maxActions)
	}
	r.Actions = r.Actions[:0]
	for i := range in.Actions {
		a, err := h.checkAction(ctx, r.WorkspaceID, &in.Actions[i])
		if err != nil {
			return prefixField(err, fmt.Sprintf("actions[%d].", i))
		}
		r.Actions = append(r.Actions, a)
	}
	return nil
}

// applyCondition sets the rule's condition tree and the expression it compiles to, or
// an expression written by hand. A PATCH that gives either replaces both.
func (h *Handlers) applyCondition(r *db.Rule, in *ruleInput) error {
	hasCond := len(in.Condition) > 0 && string(in.Condition) != "null"
	if hasCond && in.Expression != nil && *in.Expression != "" {
		return invalid("expression", "give either a condition or an expression, not both")
	}
	switch {
	case hasCond:
		expr, err := rules.CompileCondition(in.Condition)
		if err != nil {
			return err
		}
		r.Condition, r.Expression = in.Condition, expr
	case in.Expression != nil:
		if _, err := rules.Compile(*in.Expression); err != nil {
			return invalid("expression", "%s", fieldMessage(err))
		}
		r.Condition, r.Expression = nil, *in.Expression
	}
	return nil
}

// checkAction validates one action against its connection's connector.
func (h *Handlers) checkAction(ctx context.Context, workspaceID string, in *actionInput) (*db.RuleAction, error) {
	if in.ConnectionID == "" {
		return nil, invalid("connection_id", "is required")
	}
	conn, err := h.Store.ConnectionByID(ctx, workspaceID, in.ConnectionID)
	if errors.Is(err, db.ErrNotFound) {
		return nil, invalid("connection_id", "no connection %q in this workspace", in.ConnectionID)
	}
	if err != nil {
		return nil, err
	}
	connector, action, ok := h.Connectors.Action(in.Action)
	if !ok || connector.Kind() != conn.Kind {
		return nil, invalid("action", "%s connections offer: %s", conn.Kind, actionNames(h.Connectors, conn.Kind))
	}
	a := &db.RuleAction{ConnectionID: conn.ID, Action: action.Name, Options: nullIfEmpty(in.Options), Mapping: nullIfEmpty(in.Mapping), Retry: nullIfEmpty(in.Retry)}
	if a.Options != nil && !isJSONObject(a.Options) {
		return nil, invalid("options", "must be a JSON object")
	}
	if err := checkMapping(a.Mapping, action); err != nil {
		return nil, err
	}
	if err := checkOptions(a.Options, action); err != nil {
		return nil, err
	}
	if _, err := rules.ParseRetryPolicy(a.Retry); err != nil {
		return nil, err
	}
	timeout := jobs.DefaultAttemptTimeout
	if in.Timeout != "" {
		if timeout, err = time.ParseDuration(in.Timeout); err != nil || timeout < 100*time.Millisecond || timeout > 60*time.Second {
			return nil, invalid("timeout", "must be a duration from 100ms to 60s, like \"10s\"")
		}
	}
	a.TimeoutMS = int(timeout.Milliseconds())
	return a, nil
}

// checkMapping compiles the mapping and checks that required target fields are mapped.
func checkMapping(raw json.RawMessage, action connectors.Action) error {
	targets := map[string]bool{}
	if raw != nil {
		m, err := rules.CompileMapping(raw)
		if err != nil {
			return err
		}
		for _, t := range m.Targets() {
			targets[t] = true
		}
	}
	if action.DefaultsToEnvelope {
		return nil
	}
	for _, f := range action.Fields {
		if f.Required && !targets[f.Name] {
			return invalid("mapping."+f.Name, "is required by %s", action.Name)
		}
	}
	return nil
}

// checkOptions checks that the action's required options are given, as strings or
// numbers, and that no unknown option is.
func checkOptions(raw json.RawMessage, action connectors.Action) error {
	opts := map[string]any{}
	if raw != nil {
		if err := json.Unmarshal(raw, &opts); err != nil {
			return invalid("options", "must be a JSON object")
		}
	}
	known := map[string]bool{}
	for _, f := range action.Options {
		known[f.Name] = true
		if v, ok := opts[f.Name]; f.Required && (!ok || v == nil || v == "") {
			return invalid("options."+f.Name, "is required by %s", action.Name)
		}
	}
	for name := range opts {
		if !known[name] {
			return invalid("options."+name, "is not an option of %s", action.Name)
		}
	}
	return nil
}

func actionNames(reg *connectors.Registry, kind string) string {
	c, ok := reg.Get(kind)
	if !ok {
		return "nothing"
	}
	var names []string
	for _, a := range c.Info().Actions {
		names = append(names, a.Name)
	}
	return strings.Join(names, ", ")
}

func nullIfEmpty(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return raw
}

// prefixField puts a path prefix on the field of a validation error.
func prefixField(err error, prefix string) error {
	e, ok := AsError(err)
	if !ok || e.Field == "" {
		return err
	}
	return &Error{Status: e.Status, Code: e.Code, Message: e.Message, Field: prefix + e.Field}
}

// TestRules answers POST /v1/rules/test {"event": {...}}: for each rule, whether it
// matches the sample event (and why not), and the exact payload each action would send.
func (h *Handlers) TestRules(c echo.Context) error {
	var body struct {
		Event json.RawMessage `json:"event"`
	}
	if err := bindJSON(c, &body); err != nil {
		return err
	}
	if body.Event == nil {
		return invalid("event", "is required: a sample event {\"type\", \"data\"}")
	}
	in, err := parseEvent(body.Event)
	if err != nil {
		return prefixField(err, "event.")
	}
	ev := &db.Event{ID: "evt_sample", Type: in.Type, Data: in.Data, OccurredAt: h.Store.Now()}
	if !in.occurredAt.IsZero() {
		ev.OccurredAt = in.occurredAt
	}
	rs, err := h.Store.ListRules(c.Request().Context(), workspaceID(c), db.RuleFilter{})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"results": h.DryRun(ev, rs)})
}

// DryRunRule is one rule's verdict on a sample event.
type DryRunRule struct {
	RuleID  string         `json:"rule_id"`
	Name    string         `json:"name"`
	Enabled bool           `json:"enabled"`
	Matched bool           `json:"matched"`
	Reason  string         `json:"reason,omitempty"`
	Actions []DryRunAction `json:"actions,omitempty"`
}

// DryRunAction is what one action would send.
type DryRunAction struct {
	ConnectionID string          `json:"connection_id"`
	Action       string          `json:"action"`
	Payload      json.RawMessage `json:"payload,omitempty"`
	Error        string          `json:"error,omitempty"`
}

// DryRun evaluates rules on an event without storing or sending anything.
func (h *Handlers) DryRun(ev *db.Event, rs []*db.Rule) []DryRunRule {
	env := jobs.EventEnv(ev)
	out := make([]DryRunRule, 0, len(rs))
	for _, r := range rs {
		m := h.Engine.MatchRule(r, ev.Type, env)
		res := DryRunRule{RuleID: r.ID, Name: r.Name, Enabled: r.Enabled, Matched: m.Matched, Reason: m.Reason}
		if m.Matched {
			for _, a := range r.Actions {
				da := DryRunAction{ConnectionID: a.ConnectionID, Action: a.Action}
				if p, err := h.Engine.Payload(a, ev); err != nil {
					da.Error = err.Error()
				} else {
					da.Payload = p
				}
				res.Actions = append(res.Actions, da)
			}
		}
		out = append(out, res)
	}
	return out
}
