package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/handlers"
	"github.com/fanout-dev/fanout/handlers/apitest"
	"github.com/fanout-dev/fanout/jobs/jobstest"
	"github.com/labstack/echo/v4"
)

// v1Routes lists the /v1 routes of the Echo table ("METHOD /path/:id"), without Echo's
// automatic not-found routes of groups and without the OpenAPI document itself.
func v1Routes(e *echo.Echo) []string {
	var out []string
	for _, r := range e.Routes() {
		if !strings.HasPrefix(r.Path, "/v1/") || r.Method == echo.RouteNotFound || r.Path == "/v1/*" || r.Path == "/v1/openapi.json" {
			continue
		}
		out = append(out, r.Method+" "+r.Path)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ingestRoutes are the routes an ingest key may call.
var ingestRoutes = []string{"POST /v1/events", "POST /v1/events/batch"}

func concrete(route, id string) (method, path string) {
	method, path, _ = strings.Cut(route, " ")
	return method, strings.ReplaceAll(path, ":id", id)
}

// TestAuth is B4: every /v1 route refuses requests without a valid key with the same 401,
// and ingest keys get 403 on admin routes.
func TestAuth(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{})
	ws := env.Workspace()
	ctx := context.Background()
	revoked, revokedKey, err := env.Store.CreateAPIKey(ctx, ws.ID, "old", db.ScopeAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Store.RevokeAPIKey(ctx, ws.ID, revokedKey.ID); err != nil {
		t.Fatal(err)
	}
	prefix, _, _ := strings.Cut(strings.TrimPrefix(ws.Admin, "fo_"), "_")
	badHeaders := map[string]string{
		"missing":             "",
		"empty bearer":        "Bearer ",
		"basic":               "Basic " + ws.Admin,
		"no scheme":           ws.Admin,
		"wrong scheme":        "Token " + ws.Admin,
		"unknown key":         "Bearer fo_AAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBB",
		"right prefix, wrong": "Bearer fo_" + prefix + "_wrongwrongwrongwrongwrong",
		"key plus junk":       "Bearer " + ws.Admin + "x",
		"malformed":           "Bearer fo_",
		"not ours":            "Bearer sk_live_123",
		"revoked":             "Bearer " + revoked,
		"huge":                "Bearer fo_" + strings.Repeat("a", 10000),
	}
	routes := v1Routes(env.Echo)
	if len(routes) < 20 {
		t.Fatalf("only %d /v1 routes: %v", len(routes), routes)
	}
	var first []byte
	for _, route := range routes {
		method, path := concrete(route, "x")
		for name, h := range badHeaders {
			t.Run(route+"/"+name, func(t *testing.T) {
				r := env.Do(apitest.Request{Method: method, Path: path, Body: `{}`, Header: map[string]string{"Authorization": h}})
				expectError(t, r, http.StatusUnauthorized, "unauthorized", "")
				if first == nil {
					first = r.Body
				} else if !bytes.Equal(r.Body, first) {
					t.Errorf("401 bodies differ (detail leak): %s vs %s", r.Body, first)
				}
				if strings.Contains(string(r.Body), "fo_") || strings.Contains(string(r.Body), "revoked") {
					t.Errorf("401 body leaks detail: %s", r.Body)
				}
			})
		}
		// A key only in the query string is refused.
		for _, param := range []string{"api_key", "key", "access_token", "token", "authorization"} {
			r := env.Do(apitest.Request{Method: method, Path: path + "?" + param + "=" + url.QueryEscape(ws.Admin), Body: `{}`})
			if r.Status != http.StatusUnauthorized {
				t.Errorf("%s with ?%s=<key>: %d", route, param, r.Status)
			}
		}
		// Ingest keys: only the ingest routes.
		r := env.Do(apitest.Request{Method: method, Path: path, Key: ws.Ingest, Body: `{}`})
		if slices.Contains(ingestRoutes, route) {
			if r.Status == http.StatusUnauthorized || r.Status == http.StatusForbidden {
				t.Errorf("ingest key on %s: %d %s", route, r.Status, r.Body)
			}
		} else {
			expectError(t, r, http.StatusForbidden, "forbidden", "")
		}
	}
	if n := count(env, (*db.Event)(nil), ws); n != 0 {
		t.Errorf("unauthenticated requests stored %d events", n)
	}
	// The right key works.
	expect(t, env.Call("GET", "/v1/connections", ws.Admin, nil), http.StatusOK)
}

// TestErrorShapes: each error status of the contract with the {"error": {...}} body.
func TestErrorShapes(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{MaxEventBytes: 1024})
	ws := env.Workspace()
	post := func(body string, hdr map[string]string) *apitest.Response {
		return env.Do(apitest.Request{Method: "POST", Path: "/v1/events", Key: ws.Ingest, Body: body, Header: hdr})
	}
	post(`{"type":"a","data":{}}`, map[string]string{"Idempotency-Key": "k"})
	cases := []struct {
		name   string
		r      *apitest.Response
		status int
		code   string
	}{
		{"400 malformed", post(`{"type":`, nil), 400, "bad_request"},
		{"400 malformed admin route", env.Call("POST", "/v1/rules", ws.Admin, `{"name":`), 400, "bad_request"},
		{"401", env.Call("GET", "/v1/events", "", nil), 401, "unauthorized"},
		{"403", env.Call("GET", "/v1/events", ws.Ingest, nil), 403, "forbidden"},
		{"404 id", env.Call("GET", "/v1/events/evt_nope", ws.Admin, nil), 404, "not_found"},
		{"404 route", env.Call("GET", "/v1/nothing", ws.Admin, nil), 404, "not_found"},
		// A known path with another method: Echo's group catch-all answers 404, not 405.
		{"wrong method", env.Call("PUT", "/v1/events", ws.Admin, nil), 404, "not_found"},
		{"409", post(`{"type":"a","data":{"x":1}}`, map[string]string{"Idempotency-Key": "k"}), 409, "idempotency_mismatch"},
		{"413", post(`{"type":"a","data":{"x":"`+strings.Repeat("x", 2000)+`"}}`, nil), 413, "too_large"},
		{"413 admin route", env.Call("POST", "/v1/rules", ws.Admin, `{"name":"`+strings.Repeat("x", 2<<20)+`"}`), 413, "too_large"},
		{"415", env.Do(apitest.Request{Method: "POST", Path: "/v1/rules", Key: ws.Admin, Body: `{}`, ContentType: "text/plain"}), 415, "unsupported_media_type"},
		{"422", env.Call("POST", "/v1/rules", ws.Admin, map[string]any{}), 422, "invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expectError(t, tc.r, tc.status, tc.code, "")
		})
	}
}

// snapshot is everything workspace B owns, as stored, to prove a request changed nothing.
func snapshot(t *testing.T, env *apitest.Env, ws *apitest.Workspace) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	dump := func(v any) {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(j)
		b.WriteByte('\n')
	}
	var conns []*db.Connection
	var rules []*db.Rule
	var actions []*db.RuleAction
	var events []*db.Event
	var ds []*db.Delivery
	var atts []*db.Attempt
	var keys []*db.APIKey
	var members []*db.Membership
	bdb := env.Store.DB()
	for _, q := range []struct {
		dst   any
		order string
	}{{&conns, "id"}, {&rules, "id"}, {&actions, "id"}, {&events, "id"}, {&ds, "id"}, {&atts, "id"}, {&keys, "id"}, {&members, "user_id"}} {
		if err := bdb.NewSelect().Model(q.dst).Where("workspace_id = ?", ws.ID).Order(q.order).Scan(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range conns {
		dump(c)
		dump(c.Credentials) // json:"-" on the model: dump the sealed bytes too
	}
	dump(rules)
	for _, a := range actions {
		dump(a)
		dump(a.ArchivedAt)
	}
	for _, e := range events {
		dump(e)
		dump([]any{e.IdempotencyKey, e.RequestHash})
	}
	for _, d := range ds {
		dump(d)
		dump(d.LeaseUntil)
	}
	dump(atts)
	return b.String()
}

// tenant is a workspace with one of everything: connection (to its own sink), rule,
// event, a dead delivery and a pending one.
type tenant struct {
	ws                 *apitest.Workspace
	sink               *jobstest.Sink
	conn, rule, event  string
	dead, pending      string
	key, member        string
	deadCount, allRows int
}

func newTenant(t *testing.T, env *apitest.Env) *tenant {
	t.Helper()
	tn := &tenant{ws: env.Workspace(), sink: jobstest.NewSink(t)}
	tn.conn, _ = createWebhook(t, env, tn.ws.Admin, tn.sink.URL+"/hook")
	conn2, _ := createWebhook(t, env, tn.ws.Admin, tn.sink.URL+"/other")
	tn.rule = createRule(t, env, tn.ws.Admin, map[string]any{"name": "r", "event_type": "*", "actions": []any{
		map[string]any{"connection_id": tn.conn, "action": "webhook.post"},
		map[string]any{"connection_id": conn2, "action": "webhook.post"},
	}})
	tn.event = ingest(t, env, tn.ws.Ingest, map[string]any{"type": "lead.created", "data": map[string]any{"secret": "tenant " + tn.ws.ID}})
	r, err := env.Store.RuleByID(context.Background(), tn.ws.ID, tn.rule)
	if err != nil {
		t.Fatal(err)
	}
	ds := env.Route(tn.ws.ID, tn.event, r)
	env.Kill(ds[0], 400, "client_error", "bad request")
	tn.dead, tn.pending = ds[0].ID, ds[1].ID
	ctx := context.Background()
	keys, err := env.Store.ListAPIKeys(ctx, tn.ws.ID)
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys: %v", err)
	}
	tn.key = keys[0].ID
	u, err := env.Store.CreateUser(ctx, tn.ws.ID+"@example.com", "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Store.AddMember(ctx, tn.ws.ID, u.ID, db.RoleViewer); err != nil {
		t.Fatal(err)
	}
	tn.member = u.ID
	return tn
}

// TestWorkspaceIsolation is B5: workspace A's admin key on each of B's resources answers
// 404 like an unknown id and changes nothing of B's; lists and bulk replay never reach B.
func TestWorkspaceIsolation(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{AllowPrivate: true})
	a, b := newTenant(t, env), newTenant(t, env)
	env.Recorder.Reset()

	type route struct {
		method, path string
		body         any
	}
	routes := func(tn *tenant) []route {
		return []route{
			{"GET", "/v1/events/" + tn.event, nil},
			{"GET", "/v1/connections/" + tn.conn, nil},
			{"PATCH", "/v1/connections/" + tn.conn, map[string]any{"name": "pwned", "config": map[string]any{"url": "http://127.0.0.1:1/x"}}},
			{"PATCH", "/v1/connections/" + tn.conn, map[string]any{"status": "disabled"}},
			{"PATCH", "/v1/connections/" + tn.conn, map[string]any{"credentials": map[string]any{"signing_secret": "whsec_" + strings.Repeat("A", 44)}}},
			{"DELETE", "/v1/connections/" + tn.conn, nil},
			{"POST", "/v1/connections/" + tn.conn + "/test", nil},
			{"POST", "/v1/connections/" + tn.conn + "/rotate-secret", nil},
			{"GET", "/v1/connections/" + tn.conn + "/options/list_id", nil},
			{"GET", "/v1/rules/" + tn.rule, nil},
			{"PATCH", "/v1/rules/" + tn.rule, map[string]any{"enabled": false, "name": "pwned"}},
			{"DELETE", "/v1/rules/" + tn.rule, nil},
			{"POST", "/v1/deliveries/" + tn.dead + "/replay", nil},
			{"POST", "/v1/deliveries/" + tn.pending + "/replay", nil},
			{"POST", "/v1/deliveries/" + tn.dead + "/discard", nil},
			{"DELETE", "/v1/api-keys/" + tn.key, nil},
			{"PATCH", "/v1/members/" + tn.member, map[string]any{"role": "owner"}},
			{"DELETE", "/v1/members/" + tn.member, nil},
		}
	}
	// Every id-taking /v1 route of the table is covered here.
	covered := map[string]bool{}
	for _, rt := range routes(b) {
		covered[rt.method+" "+strings.NewReplacer(b.event, ":id", b.conn, ":id", b.rule, ":id", b.dead, ":id", b.pending, ":id", b.key, ":id", b.member, ":id", "list_id", ":option").Replace(rt.path)] = true
	}
	for _, rt := range v1Routes(env.Echo) {
		if strings.Contains(rt, ":id") && !covered[rt] {
			t.Errorf("route %s is not in the isolation table", rt)
		}
	}

	for _, rt := range routes(b) {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			before := snapshot(t, env, b.ws)
			r := env.Call(rt.method, rt.path, a.ws.Admin, rt.body)
			e := expectError(t, r, http.StatusNotFound, "not_found", "")
			if strings.Contains(string(r.Body), b.ws.ID) || strings.Contains(e.Message, "pwned") {
				t.Errorf("404 leaks B: %s", r.Body)
			}
			if after := snapshot(t, env, b.ws); after != before {
				t.Errorf("B's rows changed:\nbefore %s\nafter  %s", before, after)
			}
			// Unknown ids answer exactly the same.
			unknown := env.Call(rt.method, strings.NewReplacer(b.event, "evt_00000000000000000000000000", b.conn, "con_00000000000000000000000000",
				b.rule, "rul_00000000000000000000000000", b.dead, "dlv_00000000000000000000000000", b.pending, "dlv_00000000000000000000000001",
				b.key, "key_00000000000000000000000000", b.member, "usr_00000000000000000000000000").Replace(rt.path), a.ws.Admin, rt.body)
			if unknown.Status != r.Status || !bytes.Equal(unknown.Body, r.Body) {
				t.Errorf("foreign id answers %d %s, unknown id %d %s", r.Status, r.Body, unknown.Status, unknown.Body)
			}
		})
	}
	if n := len(b.sink.Requests()); n != 0 {
		t.Errorf("B's destination was called %d times", n)
	}
	for _, c := range env.Recorder.Deliveries() {
		if c.WorkspaceID == b.ws.ID {
			t.Errorf("B's delivery %s was queued", c.DeliveryID)
		}
	}

	// The same calls with B's own key still work, so the 404s above were about tenancy.
	expect(t, env.Call("GET", "/v1/events/"+b.event, b.ws.Admin, nil), http.StatusOK)
	expect(t, env.Call("GET", "/v1/rules/"+b.rule, b.ws.Admin, nil), http.StatusOK)
	expect(t, env.Call("GET", "/v1/connections/"+b.conn, b.ws.Admin, nil), http.StatusOK)

	// Lists with A's key never show B's rows, whatever the filter.
	before := snapshot(t, env, b.ws)
	bIDs := []string{b.ws.ID, b.event, b.conn, b.rule, b.dead, b.pending}
	for _, path := range []string{
		"/v1/events", "/v1/events?type=lead.created", "/v1/events?status=dead", "/v1/events?limit=200",
		"/v1/connections", "/v1/rules",
		"/v1/deliveries", "/v1/deliveries?status=dead", "/v1/deliveries?connection_id=" + b.conn,
		"/v1/deliveries?rule_id=" + b.rule, "/v1/deliveries?event_id=" + b.event, "/v1/deliveries?status=dead&connection_id=" + b.conn + "&rule_id=" + b.rule,
		"/v1/events?cursor=evt_zzzzzzzzzzzzzzzzzzzzzzzzzz",
	} {
		r := env.Call("GET", path, a.ws.Admin, nil)
		expect(t, r, http.StatusOK)
		for _, id := range bIDs {
			if strings.Contains(string(r.Body), id) {
				t.Errorf("GET %s with A's key shows B's %s", path, id)
			}
		}
		if strings.HasPrefix(path, "/v1/deliveries?") && strings.Contains(path, "_id=") {
			var p deliveryPage
			r.JSON(t, &p)
			if len(p.Data) != 0 {
				t.Errorf("GET %s: %d rows", path, len(p.Data))
			}
		}
	}
	// The dry run evaluates A's rules only.
	r := env.Call("POST", "/v1/rules/test", a.ws.Admin, map[string]any{"event": map[string]any{"type": "lead.created", "data": map[string]any{}}})
	expect(t, r, http.StatusOK)
	if strings.Contains(string(r.Body), b.rule) || !strings.Contains(string(r.Body), a.rule) {
		t.Errorf("dry run: %s", r.Body)
	}
	// A rule of A cannot send to B's connection.
	expectError(t, env.Call("POST", "/v1/rules", a.ws.Admin, simpleRule("steal", "*", b.conn)), 422, "invalid", "actions[0].connection_id")
	expectError(t, env.Call("PATCH", "/v1/rules/"+a.rule, a.ws.Admin, map[string]any{"actions": []any{map[string]any{"connection_id": b.conn, "action": "webhook.post"}}}), 422, "invalid", "actions[0].connection_id")

	// Bulk replay with A's key: A's dead deliveries only, whatever the filter names.
	env.Recorder.Reset()
	for _, filter := range []map[string]any{{"connection_id": b.conn}, {"rule_id": b.rule}, {"connection_id": b.conn, "status": "pending"}} {
		r := env.Call("POST", "/v1/deliveries/replay", a.ws.Admin, filter)
		expect(t, r, http.StatusAccepted)
		if n := r.Map(t)["replayed"]; n != float64(0) {
			t.Errorf("bulk replay %v with A's key replayed %v of B's", filter, n)
		}
	}
	r = env.Call("POST", "/v1/deliveries/replay", a.ws.Admin, map[string]any{})
	expect(t, r, http.StatusAccepted)
	if n := r.Map(t)["replayed"]; n != float64(1) {
		t.Errorf("bulk replay of A replayed %v, want A's one dead delivery", n)
	}
	for _, c := range env.Recorder.Deliveries() {
		if c.WorkspaceID != a.ws.ID || c.DeliveryID != a.dead {
			t.Errorf("bulk replay queued %+v", c)
		}
	}
	if after := snapshot(t, env, b.ws); after != before {
		t.Errorf("lists, dry run or bulk replay with A's key changed B's rows")
	}
	if d, _ := env.Store.DeliveryByID(context.Background(), b.ws.ID, b.dead); d.Status != db.DeliveryDead || d.ReplayCount != 0 {
		t.Errorf("B's dead delivery: %+v", d)
	}
}

// TestDocumentedScopes ties the route table, the scopes and the OpenAPI
// document together: each documented operation's scope matches what the router enforces.
func TestDocumentedScopes(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{})
	ws := env.Workspace()
	r := env.Call("GET", "/v1/openapi.json", "", nil)
	expect(t, r, http.StatusOK)
	var doc struct {
		Paths map[string]map[string]struct {
			Description string `json:"description"`
		} `json:"paths"`
	}
	r.JSON(t, &doc)
	for _, route := range handlers.DocumentedRoutes() {
		method, path := concrete(route, "x")
		op := doc.Paths[echoParam.ReplaceAllString(strings.SplitN(route, " ", 2)[1], "{$1}")][strings.ToLower(method)]
		adminOnly := strings.Contains(op.Description, "admin")
		got := env.Do(apitest.Request{Method: method, Path: path, Key: ws.Ingest, Body: `{}`}).Status
		if adminOnly != (got == http.StatusForbidden) {
			t.Errorf("%s: documented admin-only=%v, ingest key got %d", route, adminOnly, got)
		}
	}
}

// echoParam matches an Echo path parameter (":id") to turn it into OpenAPI's "{id}".
var echoParam = regexp.MustCompile(`:(\w+)`)
