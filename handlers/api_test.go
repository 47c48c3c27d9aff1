package handlers_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/handlers/apitest"
	"github.com/fanout-dev/fanout/jobs/jobstest"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// redisDB is this package's database on a real Redis server (see jobstest.Redis).
const redisDB = 1

// publicURL is a destination the SSRF guard accepts without a DNS look-up.
const publicURL = "https://93.184.215.14/hook"

// Shared helpers: every call checks its status and fails the test with the body.

func expect(t *testing.T, r *apitest.Response, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
}

// expectError checks status, the /v1 error shape, and the field when field != "".
func expectError(t *testing.T, r *apitest.Response, status int, code, field string) apitest.APIError {
	t.Helper()
	expect(t, r, status)
	e := r.Error(t)
	if code != "" && e.Code != code {
		t.Errorf("error code %q, want %q (%s)", e.Code, code, r.Body)
	}
	if field != "" && e.Field != field {
		t.Errorf("error field %q, want %q (%s)", e.Field, field, r.Body)
	}
	return e
}

func createWebhook(t *testing.T, env *apitest.Env, key, url string) (id, secret string) {
	t.Helper()
	r := env.Call("POST", "/v1/connections", key, map[string]any{"kind": "webhook", "name": "hook", "config": map[string]any{"url": url}})
	expect(t, r, http.StatusCreated)
	var c struct {
		ID            string `json:"id"`
		SigningSecret string `json:"signing_secret"`
	}
	r.JSON(t, &c)
	return c.ID, c.SigningSecret
}

func createRule(t *testing.T, env *apitest.Env, key string, body map[string]any) string {
	t.Helper()
	r := env.Call("POST", "/v1/rules", key, body)
	expect(t, r, http.StatusCreated)
	return r.Map(t)["id"].(string)
}

// simpleRule is a rule sending every event of eventType to a connection as the envelope.
func simpleRule(name, eventType, connectionID string) map[string]any {
	return map[string]any{"name": name, "event_type": eventType,
		"actions": []any{map[string]any{"connection_id": connectionID, "action": "webhook.post"}}}
}

func ingest(t *testing.T, env *apitest.Env, key string, body any) string {
	t.Helper()
	r := env.Call("POST", "/v1/events", key, body)
	expect(t, r, http.StatusAccepted)
	return r.Map(t)["id"].(string)
}

func count(env *apitest.Env, model any, ws *apitest.Workspace) int { return env.Count(model, ws.ID) }

func TestConnectionsCRUD(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{AllowPrivate: true})
	ws := env.Workspace()
	sink := jobstest.NewSink(t)

	// Create: 201 with id and a signing secret, whsec_ + base64 of 32 bytes.
	r := env.Call("POST", "/v1/connections", ws.Admin, map[string]any{"kind": "webhook", "name": " Orders ", "config": map[string]any{"url": sink.URL + "/hook"}})
	expect(t, r, http.StatusCreated)
	created := r.Map(t)
	id, _ := created["id"].(string)
	secret, _ := created["signing_secret"].(string)
	if !strings.HasPrefix(id, "con_") {
		t.Fatalf("id %q", id)
	}
	raw, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		t.Fatalf("signing_secret %q lacks whsec_", secret)
	}
	if key, err := base64.StdEncoding.DecodeString(raw); err != nil || len(key) != 32 {
		t.Fatalf("signing_secret %q: %d bytes, %v; want base64 of 32 bytes", secret, len(key), err)
	}
	if created["name"] != "Orders" || created["kind"] != "webhook" || created["status"] != "active" {
		t.Errorf("created %v", created)
	}
	if _, ok := created["credentials"]; ok {
		t.Errorf("credentials in response: %s", r.Body)
	}

	// GET, list: never the secret.
	for _, path := range []string{"/v1/connections/" + id, "/v1/connections"} {
		r = env.Call("GET", path, ws.Admin, nil)
		expect(t, r, http.StatusOK)
		if strings.Contains(string(r.Body), raw[:16]) || strings.Contains(string(r.Body), "signing_secret") || strings.Contains(string(r.Body), "credentials") {
			t.Errorf("GET %s leaks the secret: %s", path, r.Body)
		}
		if !strings.Contains(string(r.Body), id) {
			t.Errorf("GET %s lacks the connection: %s", path, r.Body)
		}
	}
	var listed struct {
		Data       []map[string]any `json:"data"`
		NextCursor *string          `json:"next_cursor"`
	}
	r.JSON(t, &listed)
	if len(listed.Data) != 1 || listed.NextCursor == nil {
		t.Errorf("list: %s", r.Body)
	}

	// Test call: signed with the secret the create call returned.
	r = env.Call("POST", "/v1/connections/"+id+"/test", ws.Admin, nil)
	expect(t, r, http.StatusOK)
	tr := r.Map(t)
	if tr["ok"] != true || tr["status_code"] != float64(200) || tr["outcome"] != "succeeded" {
		t.Errorf("test result %s", r.Body)
	}
	got := sink.WaitFor(t, 1, 5e9)
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(got[0].Body, got[0].Header); err != nil {
		t.Errorf("test call signature: %v", err)
	}

	// PATCH: name changes; secret survives (the next test call still verifies).
	r = env.Call("PATCH", "/v1/connections/"+id, ws.Admin, map[string]any{"name": "Renamed"})
	expect(t, r, http.StatusOK)
	if r.Map(t)["name"] != "Renamed" || strings.Contains(string(r.Body), "signing_secret") {
		t.Errorf("patch: %s", r.Body)
	}
	expectError(t, env.Call("PATCH", "/v1/connections/"+id, ws.Admin, map[string]any{"status": "paused"}), 422, "invalid", "status")
	expectError(t, env.Call("PATCH", "/v1/connections/"+id, ws.Admin, map[string]any{"kind": "slack"}), 422, "invalid", "kind")
	expectError(t, env.Call("PATCH", "/v1/connections/"+id, ws.Admin, map[string]any{"config": map[string]any{"url": "ftp://x"}}), 422, "invalid", "config.url")
	r = env.Call("GET", "/v1/connections/"+id, ws.Admin, nil)
	if m := r.Map(t); m["name"] != "Renamed" || !strings.Contains(string(r.Body), sink.URL) {
		t.Errorf("a refused PATCH changed the row: %s", r.Body)
	}
	expect(t, env.Call("POST", "/v1/connections/"+id+"/test", ws.Admin, nil), http.StatusOK)
	got = sink.WaitFor(t, 2, 5e9)
	if err := wh.Verify(got[1].Body, got[1].Header); err != nil {
		t.Errorf("after PATCH the secret changed: %v", err)
	}

	// Rotate: a new secret, returned once; the next call carries both signatures.
	r = env.Call("POST", "/v1/connections/"+id+"/rotate-secret", ws.Admin, nil)
	expect(t, r, http.StatusOK)
	newSecret, _ := r.Map(t)["signing_secret"].(string)
	if !strings.HasPrefix(newSecret, "whsec_") || newSecret == secret {
		t.Fatalf("rotated secret %q", newSecret)
	}
	expect(t, env.Call("POST", "/v1/connections/"+id+"/test", ws.Admin, nil), http.StatusOK)
	got = sink.WaitFor(t, 3, 5e9)
	for _, s := range []string{secret, newSecret} {
		wh, _ := standardwebhooks.NewWebhook(s)
		if err := wh.Verify(got[2].Body, got[2].Header); err != nil {
			t.Errorf("after rotation, signature under %s...: %v", s[:10], err)
		}
	}

	// DELETE: 409 while a rule uses it, 204 after, then 404.
	ruleID := createRule(t, env, ws.Admin, simpleRule("r", "*", id))
	expectError(t, env.Call("DELETE", "/v1/connections/"+id, ws.Admin, nil), http.StatusConflict, "in_use", "")
	expect(t, env.Call("DELETE", "/v1/rules/"+ruleID, ws.Admin, nil), http.StatusNoContent)
	expect(t, env.Call("DELETE", "/v1/connections/"+id, ws.Admin, nil), http.StatusNoContent)
	expectError(t, env.Call("GET", "/v1/connections/"+id, ws.Admin, nil), http.StatusNotFound, "not_found", "")
	expectError(t, env.Call("DELETE", "/v1/connections/"+id, ws.Admin, nil), http.StatusNotFound, "not_found", "")
	expectError(t, env.Call("POST", "/v1/connections/"+id+"/test", ws.Admin, nil), http.StatusNotFound, "not_found", "")
}

func TestConnectionValidation(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{})
	ws := env.Workspace()
	cases := []struct {
		name, field string
		body        any
	}{
		{"unknown kind", "kind", map[string]any{"kind": "fax", "name": "n", "config": map[string]any{"url": publicURL}}},
		{"no name", "name", map[string]any{"kind": "webhook", "config": map[string]any{"url": publicURL}}},
		{"no url", "config.url", map[string]any{"kind": "webhook", "name": "n"}},
		{"config not an object", "config", map[string]any{"kind": "webhook", "name": "n", "config": []int{1}}},
		{"ftp url", "config.url", map[string]any{"kind": "webhook", "name": "n", "config": map[string]any{"url": "ftp://example.com/x"}}},
		{"user info", "config.url", map[string]any{"kind": "webhook", "name": "n", "config": map[string]any{"url": "https://u:p@93.184.215.14/"}}},
		{"unknown credential", "credentials.token", map[string]any{"kind": "webhook", "name": "n", "config": map[string]any{"url": publicURL}, "credentials": map[string]any{"token": "x"}}},
		{"unknown field", "colour", map[string]any{"kind": "webhook", "name": "n", "config": map[string]any{"url": publicURL}, "colour": "red"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expectError(t, env.Call("POST", "/v1/connections", ws.Admin, tc.body), http.StatusUnprocessableEntity, "invalid", tc.field)
		})
	}
	if n := count(env, (*db.Connection)(nil), ws); n != 0 {
		t.Errorf("%d connections stored by refused requests", n)
	}
}

// TestConnectionSSRF is S1 at save time: with the guard on, literal private, reserved and
// obfuscated addresses are refused naming config.url; AllowPrivate lets loopback through.
func TestConnectionSSRF(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{AllowPrivate: false})
	ws := env.Workspace()
	blocked := []string{
		"http://127.0.0.1/hook",
		"http://127.0.0.1:8080/hook",
		"http://[::1]/hook",
		"http://localhost/hook",
		"http://api.localhost/hook",
		"http://0.0.0.0/hook",
		"http://10.0.0.1/hook",
		"http://172.16.0.1/hook",
		"http://192.168.1.1/hook",
		"http://169.254.169.254/latest/meta-data/",
		"http://[fe80::1]/hook",
		"http://100.64.0.1/hook",
		"http://[fd00:ec2::254]/hook",
		"http://[::ffff:169.254.169.254]/hook",
		"http://[::ffff:127.0.0.1]/hook",
		"http://[::ffff:7f00:1]/hook",
		"http://[64:ff9b::a9fe:a9fe]/hook",
		"http://2130706433/hook",
		"http://0177.0.0.1/hook",
		"http://0x7f.1/hook",
		"http://127.1/hook",
		"http://017700000001/hook",
		"https://[::ffff:93.184.215.14]/hook", // public, but only dotted decimal is accepted
	}
	for _, u := range blocked {
		t.Run(u, func(t *testing.T) {
			r := env.Call("POST", "/v1/connections", ws.Admin, map[string]any{"kind": "webhook", "name": "x", "config": map[string]any{"url": u}})
			e := expectError(t, r, http.StatusUnprocessableEntity, "invalid", "config.url")
			if e.Message == "" {
				t.Error("no message")
			}
		})
	}
	if n := count(env, (*db.Connection)(nil), ws); n != 0 {
		t.Fatalf("%d connections stored", n)
	}
	// A public address passes; PATCHing it to a private one is refused and changes nothing.
	id, _ := createWebhook(t, env, ws.Admin, publicURL)
	expectError(t, env.Call("PATCH", "/v1/connections/"+id, ws.Admin, map[string]any{"config": map[string]any{"url": "http://169.254.169.254/"}}), 422, "invalid", "config.url")
	if r := env.Call("GET", "/v1/connections/"+id, ws.Admin, nil); !strings.Contains(string(r.Body), publicURL) {
		t.Errorf("refused PATCH changed the url: %s", r.Body)
	}

	t.Run("AllowPrivate", func(t *testing.T) {
		t.Parallel()
		env := apitest.New(t, apitest.Options{AllowPrivate: true})
		ws := env.Workspace()
		for _, u := range []string{"http://127.0.0.1:9/hook", "http://localhost:9/hook", "http://10.0.0.1/hook"} {
			createWebhook(t, env, ws.Admin, u)
		}
		// Obfuscated forms stay refused even then: they only serve to slip past filters.
		expectError(t, env.Call("POST", "/v1/connections", ws.Admin, map[string]any{"kind": "webhook", "name": "x", "config": map[string]any{"url": "http://2130706433/"}}), 422, "invalid", "config.url")
	})
}

func TestRulesCRUD(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{})
	ws := env.Workspace()
	conn, _ := createWebhook(t, env, ws.Admin, publicURL)

	for _, pattern := range []string{"lead.created", "lead.*", "*"} {
		createRule(t, env, ws.Admin, simpleRule("p "+pattern, pattern, conn))
	}
	body := map[string]any{
		"name": "pro leads", "event_type": "lead.created", "enabled": false,
		"condition": map[string]any{"all": []any{
			map[string]any{"field": "data.plan", "op": "eq", "value": "pro"},
			map[string]any{"any": []any{
				map[string]any{"field": "data.seats", "op": "gte", "value": 10},
				map[string]any{"field": "data.email", "op": "ends_with", "value": "@big.com"},
			}},
		}},
		"actions": []any{map[string]any{
			"connection_id": conn, "action": "webhook.post",
			"mapping": map[string]any{"email": "lower(data.email)", "kind": `"lead"`},
			"retry":   map[string]any{"max_attempts": 3, "schedule": []string{"1s", "10s"}},
			"timeout": "5s",
		}},
	}
	r := env.Call("POST", "/v1/rules", ws.Admin, body)
	expect(t, r, http.StatusCreated)
	var rule struct {
		ID         string `json:"id"`
		Name       string `json:"name"`
		EventType  string `json:"event_type"`
		Expression string `json:"expression"`
		Enabled    bool   `json:"enabled"`
		Condition  any    `json:"condition"`
		Actions    []struct {
			ID           string         `json:"id"`
			ConnectionID string         `json:"connection_id"`
			Action       string         `json:"action"`
			Mapping      map[string]any `json:"mapping"`
			Retry        map[string]any `json:"retry"`
			TimeoutMS    int            `json:"timeout_ms"`
		} `json:"actions"`
	}
	r.JSON(t, &rule)
	if rule.ID == "" || rule.Enabled || rule.Expression == "" || rule.Condition == nil || len(rule.Actions) != 1 ||
		rule.Actions[0].ConnectionID != conn || rule.Actions[0].TimeoutMS != 5000 || rule.Actions[0].Mapping["kind"] != `"lead"` ||
		rule.Actions[0].Retry["max_attempts"] != float64(3) {
		t.Fatalf("created rule: %s", r.Body)
	}

	r = env.Call("GET", "/v1/rules/"+rule.ID, ws.Admin, nil)
	expect(t, r, http.StatusOK)
	if !strings.Contains(string(r.Body), rule.Expression[:5]) {
		t.Errorf("GET rule: %s", r.Body)
	}
	r = env.Call("GET", "/v1/rules", ws.Admin, nil)
	expect(t, r, http.StatusOK)
	var listed struct {
		Data []map[string]any `json:"data"`
	}
	r.JSON(t, &listed)
	if len(listed.Data) != 4 {
		t.Errorf("list: %d rules", len(listed.Data))
	}

	// PATCH: an expression replaces the condition; enabled flips; actions stay.
	r = env.Call("PATCH", "/v1/rules/"+rule.ID, ws.Admin, map[string]any{"expression": `data.plan == "pro"`, "enabled": true})
	expect(t, r, http.StatusOK)
	m := r.Map(t)
	if m["expression"] != `data.plan == "pro"` || m["enabled"] != true || m["condition"] != nil || len(m["actions"].([]any)) != 1 {
		t.Errorf("patched: %s", r.Body)
	}
	expectError(t, env.Call("PATCH", "/v1/rules/"+rule.ID, ws.Admin, map[string]any{"expression": "data.plan =="}), 422, "invalid", "expression")
	if r := env.Call("GET", "/v1/rules/"+rule.ID, ws.Admin, nil); r.Map(t)["expression"] != `data.plan == "pro"` {
		t.Errorf("refused PATCH changed the rule: %s", r.Body)
	}

	expect(t, env.Call("DELETE", "/v1/rules/"+rule.ID, ws.Admin, nil), http.StatusNoContent)
	expectError(t, env.Call("GET", "/v1/rules/"+rule.ID, ws.Admin, nil), http.StatusNotFound, "not_found", "")
	expectError(t, env.Call("PATCH", "/v1/rules/"+rule.ID, ws.Admin, map[string]any{"enabled": false}), http.StatusNotFound, "not_found", "")
	expectError(t, env.Call("DELETE", "/v1/rules/"+rule.ID, ws.Admin, nil), http.StatusNotFound, "not_found", "")
}

// TestRuleValidation: every refused rule names the offending field and stores nothing.
func TestRuleValidation(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{})
	ws := env.Workspace()
	other := env.Workspace()
	conn, _ := createWebhook(t, env, ws.Admin, publicURL)
	foreign, _ := createWebhook(t, env, other.Admin, publicURL)

	action := func(extra map[string]any) []any {
		a := map[string]any{"connection_id": conn, "action": "webhook.post"}
		for k, v := range extra {
			a[k] = v
		}
		return []any{a}
	}
	rule := func(extra map[string]any) map[string]any {
		r := map[string]any{"name": "r", "event_type": "lead.created", "actions": action(nil)}
		for k, v := range extra {
			if v == nil {
				delete(r, k)
			} else {
				r[k] = v
			}
		}
		return r
	}
	row := func(field, op string, value any) map[string]any {
		return map[string]any{"field": field, "op": op, "value": value}
	}
	cases := []struct {
		name, field string
		body        map[string]any
	}{
		{"no name", "name", rule(map[string]any{"name": nil})},
		{"no event type", "event_type", rule(map[string]any{"event_type": nil})},
		{"bad event type", "event_type", rule(map[string]any{"event_type": "lead.**"})},
		{"unknown operator", "condition.all[0].op", rule(map[string]any{"condition": map[string]any{"all": []any{row("data.plan", "like", "pro")}}})},
		{"nested unknown operator", "condition.all[1].any[0].op", rule(map[string]any{"condition": map[string]any{"all": []any{
			row("data.plan", "eq", "pro"), map[string]any{"any": []any{row("data.x", "approx", 1)}}}}})},
		{"unknown condition key", "condition.all[0].fld", rule(map[string]any{"condition": map[string]any{"all": []any{map[string]any{"fld": "x", "op": "eq", "value": 1}}}})},
		{"empty group", "condition.any", rule(map[string]any{"condition": map[string]any{"any": []any{}}})},
		{"bad expression", "expression", rule(map[string]any{"expression": "data.plan =="})},
		{"expression not boolean", "expression", rule(map[string]any{"expression": `"yes"`})},
		{"condition and expression", "expression", rule(map[string]any{"expression": "true", "condition": map[string]any{"all": []any{row("data.a", "eq", 1)}}})},
		{"no actions", "actions", rule(map[string]any{"actions": []any{}})},
		{"missing actions", "actions", rule(map[string]any{"actions": nil})},
		{"connection of another workspace", "actions[0].connection_id", rule(map[string]any{"actions": []any{map[string]any{"connection_id": foreign, "action": "webhook.post"}}})},
		{"nonexistent connection", "actions[0].connection_id", rule(map[string]any{"actions": []any{map[string]any{"connection_id": "con_nope", "action": "webhook.post"}}})},
		{"no connection", "actions[0].connection_id", rule(map[string]any{"actions": []any{map[string]any{"action": "webhook.post"}}})},
		{"second action bad", "actions[1].connection_id", rule(map[string]any{"actions": []any{
			map[string]any{"connection_id": conn, "action": "webhook.post"}, map[string]any{"connection_id": foreign, "action": "webhook.post"}}})},
		{"unknown action", "actions[0].action", rule(map[string]any{"actions": action(map[string]any{"action": "slack.post"})})},
		{"bad mapping expression", "actions[0].mapping.email", rule(map[string]any{"actions": action(map[string]any{"mapping": map[string]any{"email": "lower(data.email"}})})},
		{"retry max_attempts 0", "actions[0].retry.max_attempts", rule(map[string]any{"actions": action(map[string]any{"retry": map[string]any{"max_attempts": 0}})})},
		{"retry bad schedule", "actions[0].retry.schedule[1]", rule(map[string]any{"actions": action(map[string]any{"retry": map[string]any{"schedule": []string{"1s", "soon"}}})})},
		{"timeout too long", "actions[0].timeout", rule(map[string]any{"actions": action(map[string]any{"timeout": "5m"})})},
		{"unknown field", "priority", rule(map[string]any{"priority": 1})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := env.Call("POST", "/v1/rules", ws.Admin, tc.body)
			expectError(t, r, http.StatusUnprocessableEntity, "invalid", tc.field)
		})
	}
	if n, m := count(env, (*db.Rule)(nil), ws), count(env, (*db.RuleAction)(nil), ws); n != 0 || m != 0 {
		t.Errorf("refused requests stored %d rules and %d actions", n, m)
	}
	// Sanity: the base rule itself is valid.
	createRule(t, env, ws.Admin, rule(nil))
	if n := count(env, (*db.Rule)(nil), ws); n != 1 {
		t.Errorf("%d rules", n)
	}
}

// TestRulesDryRun: POST /v1/rules/test tells per rule whether it matched and why not, and
// the exact body each action would send; it stores and queues nothing.
func TestRulesDryRun(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{})
	ws := env.Workspace()
	conn, _ := createWebhook(t, env, ws.Admin, publicURL)
	envelope := createRule(t, env, ws.Admin, map[string]any{"name": "pro", "event_type": "lead.*",
		"condition": map[string]any{"all": []any{map[string]any{"field": "data.plan", "op": "eq", "value": "pro"}}},
		"actions":   []any{map[string]any{"connection_id": conn, "action": "webhook.post"}}})
	mapped := createRule(t, env, ws.Admin, map[string]any{"name": "mapped", "event_type": "*",
		"actions": []any{map[string]any{"connection_id": conn, "action": "webhook.post",
			"mapping": map[string]any{"email": "lower(data.email)", "kind": `"lead"`, "greeting": "Hi {{ data.name }}!"}}}})
	wrongType := createRule(t, env, ws.Admin, simpleRule("orders", "order.created", conn))
	notPro := createRule(t, env, ws.Admin, map[string]any{"name": "free", "event_type": "lead.created",
		"condition": map[string]any{"all": []any{map[string]any{"field": "data.plan", "op": "eq", "value": "free"}}},
		"actions":   []any{map[string]any{"connection_id": conn, "action": "webhook.post"}}})
	exprFalse := createRule(t, env, ws.Admin, map[string]any{"name": "expr", "event_type": "*", "expression": "data.seats > 100",
		"actions": []any{map[string]any{"connection_id": conn, "action": "webhook.post"}}})

	sample := map[string]any{"type": "lead.created", "occurred_at": "2026-01-02T03:04:05Z",
		"data": map[string]any{"plan": "pro", "email": "Ada@Example.COM", "name": "Ada", "seats": 3}}
	r := env.Call("POST", "/v1/rules/test", ws.Admin, map[string]any{"event": sample})
	expect(t, r, http.StatusOK)
	var out struct {
		Results []struct {
			RuleID  string `json:"rule_id"`
			Matched bool   `json:"matched"`
			Reason  string `json:"reason"`
			Actions []struct {
				ConnectionID string         `json:"connection_id"`
				Action       string         `json:"action"`
				Payload      map[string]any `json:"payload"`
				Error        string         `json:"error"`
			} `json:"actions"`
		} `json:"results"`
	}
	r.JSON(t, &out)
	byID := map[string]int{}
	for i, res := range out.Results {
		byID[res.RuleID] = i
	}
	if len(out.Results) != 5 {
		t.Fatalf("want 5 results: %s", r.Body)
	}
	res := out.Results[byID[envelope]]
	if !res.Matched || len(res.Actions) != 1 || res.Actions[0].ConnectionID != conn || res.Actions[0].Action != "webhook.post" {
		t.Errorf("envelope rule: %+v", res)
	} else {
		p := res.Actions[0].Payload
		data, _ := p["data"].(map[string]any)
		if p["type"] != "lead.created" || p["id"] == nil || p["occurred_at"] != "2026-01-02T03:04:05Z" || data["email"] != "Ada@Example.COM" || len(p) != 4 {
			t.Errorf("envelope payload: %v", p)
		}
	}
	res = out.Results[byID[mapped]]
	if !res.Matched || len(res.Actions) != 1 {
		t.Errorf("mapped rule: %+v", res)
	} else if p := res.Actions[0].Payload; fmt.Sprint(p) != fmt.Sprint(map[string]any{"email": "ada@example.com", "kind": "lead", "greeting": "Hi Ada!"}) {
		t.Errorf("mapped payload: %v", p)
	}
	for _, id := range []string{wrongType, notPro, exprFalse} {
		res := out.Results[byID[id]]
		if res.Matched || res.Reason == "" || len(res.Actions) != 0 {
			t.Errorf("rule %s: %+v; want not matched with a reason", id, res)
		}
	}
	if res := out.Results[byID[wrongType]]; !strings.Contains(res.Reason, "order.created") {
		t.Errorf("type reason %q", res.Reason)
	}

	expectError(t, env.Call("POST", "/v1/rules/test", ws.Admin, map[string]any{}), 422, "invalid", "event")
	expectError(t, env.Call("POST", "/v1/rules/test", ws.Admin, map[string]any{"event": map[string]any{"data": map[string]any{}}}), 422, "invalid", "event.type")
	expectError(t, env.Call("POST", "/v1/rules/test", ws.Admin, map[string]any{"event": map[string]any{"type": "a", "data": 1}}), 422, "invalid", "event.data")
	if n := count(env, (*db.Event)(nil), ws); n != 0 {
		t.Errorf("dry run stored %d events", n)
	}
	if n := len(env.Recorder.Routes()) + len(env.Recorder.Deliveries()); n != 0 {
		t.Errorf("dry run enqueued %d tasks", n)
	}
}
