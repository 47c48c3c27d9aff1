package handlers_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/handlers/apitest"
	"github.com/fanout-dev/fanout/jobs"
	"github.com/fanout-dev/fanout/jobs/jobstest"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

type deliveryPage struct {
	Data []struct {
		ID           string `json:"id"`
		EventID      string `json:"event_id"`
		RuleID       string `json:"rule_id"`
		ConnectionID string `json:"connection_id"`
		Status       string `json:"status"`
	} `json:"data"`
	NextCursor string `json:"next_cursor"`
}

func (p deliveryPage) ids() []string {
	var out []string
	for _, d := range p.Data {
		out = append(out, d.ID)
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// deadFixture: two connections, two rules (one per connection), n events each routed to
// both rules; deliveries of the first connection are dead, of the second pending.
type deadFixture struct {
	conn1, conn2 string
	rule1, rule2 *db.Rule
	dead, live   []string // delivery ids
	events       []string
}

func newDeadFixture(t *testing.T, env *apitest.Env, ws *apitest.Workspace, n int) *deadFixture {
	t.Helper()
	f := &deadFixture{}
	f.conn1, _ = createWebhook(t, env, ws.Admin, publicURL)
	f.conn2, _ = createWebhook(t, env, ws.Admin, publicURL)
	for i, conn := range []string{f.conn1, f.conn2} {
		id := createRule(t, env, ws.Admin, simpleRule(fmt.Sprint("r", i), "*", conn))
		r, err := env.Store.RuleByID(t.Context(), ws.ID, id)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			f.rule1 = r
		} else {
			f.rule2 = r
		}
	}
	for i := range n {
		ev := ingest(t, env, ws.Ingest, map[string]any{"type": "t", "data": map[string]any{"i": i}})
		f.events = append(f.events, ev)
		for _, d := range env.Route(ws.ID, ev, f.rule1, f.rule2) {
			if d.ConnectionID == f.conn1 {
				env.Kill(d, 400, "client_error", "bad request")
				f.dead = append(f.dead, d.ID)
			} else {
				f.live = append(f.live, d.ID)
			}
		}
	}
	return f
}

func TestDeliveriesListAndReplay(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{})
	ws := env.Workspace()
	f := newDeadFixture(t, env, ws, 3)
	list := func(query string) deliveryPage {
		t.Helper()
		r := env.Call("GET", "/v1/deliveries"+query, ws.Admin, nil)
		expect(t, r, http.StatusOK)
		var p deliveryPage
		r.JSON(t, &p)
		return p
	}

	if got := list("?status=dead"); fmt.Sprint(sorted(got.ids())) != fmt.Sprint(sorted(f.dead)) {
		t.Errorf("status=dead: %v, want %v", got.ids(), f.dead)
	}
	if got := list("?status=dead&connection_id=" + f.conn2); len(got.Data) != 0 {
		t.Errorf("dead on conn2: %v", got.ids())
	}
	if got := list("?connection_id=" + f.conn2); fmt.Sprint(sorted(got.ids())) != fmt.Sprint(sorted(f.live)) {
		t.Errorf("connection_id filter: %v", got.ids())
	}
	if got := list("?status=dead&rule_id=" + f.rule1.ID + "&connection_id=" + f.conn1); len(got.Data) != 3 {
		t.Errorf("rule_id filter: %v", got.ids())
	}
	if got := list("?rule_id=" + f.rule2.ID + "&status=dead"); len(got.Data) != 0 {
		t.Errorf("rule2 dead: %v", got.ids())
	}
	if got := list("?event_id=" + f.events[0]); len(got.Data) != 2 {
		t.Errorf("event_id filter: %v", got.ids())
	}
	// Paging over all six.
	var all []string
	cursor := ""
	for range 10 {
		p := list("?limit=4&cursor=" + cursor)
		all = append(all, p.ids()...)
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if fmt.Sprint(sorted(all)) != fmt.Sprint(sorted(append(slices.Clone(f.dead), f.live...))) {
		t.Errorf("paged %v", all)
	}
	expectError(t, env.Call("GET", "/v1/deliveries?status=gone", ws.Admin, nil), 422, "invalid", "status")

	// Replay one: 202, same delivery back to work, history kept, queued once.
	env.Recorder.Reset()
	target := f.dead[0]
	r := env.Call("POST", "/v1/deliveries/"+target+"/replay", ws.Admin, nil)
	expect(t, r, http.StatusAccepted)
	m := r.Map(t)
	if m["id"] != target || m["status"] != "pending" || m["attempt_count"] != float64(1) || m["replay_count"] != float64(1) {
		t.Errorf("replayed: %s", r.Body)
	}
	calls := env.Recorder.Deliveries()
	if len(calls) != 1 || calls[0].DeliveryID != target || calls[0].Queue != jobs.QueueDefault || calls[0].Replay != 1 {
		t.Errorf("enqueued %+v", calls)
	}
	d, _ := env.Store.DeliveryByID(t.Context(), ws.ID, target)
	if d.Status != db.DeliveryPending || d.NextAttemptAt == nil {
		t.Errorf("stored after replay: %+v", d)
	}
	if r := env.Call("GET", "/v1/events/"+d.EventID, ws.Admin, nil); r.Status != 200 {
		t.Fatal(r.Status)
	} else {
		var ev struct {
			Deliveries []struct {
				ID       string `json:"id"`
				Attempts []any  `json:"attempts"`
			} `json:"deliveries"`
		}
		r.JSON(t, &ev)
		for _, dd := range ev.Deliveries {
			if dd.ID == target && len(dd.Attempts) != 1 {
				t.Errorf("history lost: %d attempts", len(dd.Attempts))
			}
		}
	}
	expectError(t, env.Call("POST", "/v1/deliveries/dlv_nope/replay", ws.Admin, nil), 404, "not_found", "")

	// Bulk replay by filter: the count, only matching rows, queued on the replay queue.
	env.Recorder.Reset()
	r = env.Call("POST", "/v1/deliveries/replay", ws.Admin, map[string]any{"connection_id": f.conn2})
	expect(t, r, http.StatusAccepted)
	if n := r.Map(t)["replayed"]; n != float64(0) {
		t.Errorf("no dead deliveries on conn2, replayed %v", n)
	}
	r = env.Call("POST", "/v1/deliveries/replay", ws.Admin, map[string]any{"rule_id": f.rule1.ID, "status": "dead"})
	expect(t, r, http.StatusAccepted)
	if n := r.Map(t)["replayed"]; n != float64(2) {
		t.Errorf("replayed %v, want the 2 still dead", n)
	}
	var queued []string
	for _, c := range env.Recorder.Deliveries() {
		queued = append(queued, c.DeliveryID)
		if c.Queue != jobs.QueueReplay {
			t.Errorf("bulk replay on queue %s", c.Queue)
		}
	}
	if fmt.Sprint(sorted(queued)) != fmt.Sprint(sorted(f.dead[1:])) {
		t.Errorf("bulk queued %v, want %v", queued, f.dead[1:])
	}
	if got := list("?status=dead"); len(got.Data) != 0 {
		t.Errorf("still dead after bulk replay: %v", got.ids())
	}
	for _, id := range f.live {
		if d, _ := env.Store.DeliveryByID(t.Context(), ws.ID, id); d.ReplayCount != 0 {
			t.Errorf("bulk replay touched %s outside the filter", id)
		}
	}
	for _, body := range []struct {
		body  any
		field string
	}{
		{map[string]any{"status": "bogus"}, "status"},
		{map[string]any{"since": "last week"}, "since"},
		{map[string]any{"connection": "x"}, "connection"},
	} {
		expectError(t, env.Call("POST", "/v1/deliveries/replay", ws.Admin, body.body), 422, "invalid", body.field)
	}
}

// TestEndToEnd runs the real worker behind the HTTP API: connection and rule made by the
// API, an event posted with the ingest key, the delivery followed through GET
// /v1/events/{id} until it succeeds; then a delivery that dies, is listed as dead, and is
// replayed until it succeeds, keeping its history.
func TestEndToEnd(t *testing.T) {
	env := apitest.New(t, apitest.Options{AllowPrivate: true, Worker: true, RedisDB: redisDB})
	ws := env.Workspace()
	sink := jobstest.NewSink(t)
	// The first request of every delivery to /fail fails with a 400, later ones succeed.
	sink.SetRespond(func(n int, r *http.Request) jobstest.Reply {
		if n == 1 && r.URL.Path == "/fail" {
			return jobstest.Reply{Status: http.StatusBadRequest, Body: `{"error":"nope"}`}
		}
		return jobstest.Reply{Status: http.StatusOK, Body: `{"ok":true}`}
	})
	conn, secret := createWebhook(t, env, ws.Admin, sink.URL+"/hook")
	ruleID := createRule(t, env, ws.Admin, map[string]any{"name": "leads", "event_type": "lead.*",
		"condition": map[string]any{"all": []any{map[string]any{"field": "data.plan", "op": "eq", "value": "pro"}}},
		"actions": []any{map[string]any{"connection_id": conn, "action": "webhook.post", "timeout": "5s",
			"retry": map[string]any{"max_attempts": 3, "schedule": []string{"1s"}}}}})

	type attempt struct {
		Number          int       `json:"number"`
		StartedAt       time.Time `json:"started_at"`
		DurationMS      *int64    `json:"duration_ms"`
		StatusCode      int       `json:"status_code"`
		ErrorClass      string    `json:"error_class"`
		Retryable       *bool     `json:"retryable"`
		ResponseExcerpt *string   `json:"response_excerpt"`
	}
	type delivery struct {
		ID            string     `json:"id"`
		Status        string     `json:"status"`
		ConnectionID  string     `json:"connection_id"`
		RuleID        string     `json:"rule_id"`
		NextAttemptAt *time.Time `json:"next_attempt_at"`
		HasNext       bool       `json:"-"`
		Attempts      []attempt  `json:"attempts"`
	}
	type event struct {
		ID         string     `json:"id"`
		Deliveries []delivery `json:"deliveries"`
	}
	// poll GETs the event until its only delivery reaches status with n attempts.
	poll := func(id, status string, n int) (delivery, []byte) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			r := env.Call("GET", "/v1/events/"+id, ws.Admin, nil)
			expect(t, r, http.StatusOK)
			var ev event
			r.JSON(t, &ev)
			if len(ev.Deliveries) == 1 && ev.Deliveries[0].Status == status && len(ev.Deliveries[0].Attempts) == n {
				return ev.Deliveries[0], r.Body
			}
			if time.Now().After(deadline) {
				t.Fatalf("event %s: want one delivery %s with %d attempts, have %s", id, status, n, r.Body)
			}
			time.Sleep(25 * time.Millisecond)
		}
	}

	id := ingest(t, env, ws.Ingest, map[string]any{"type": "lead.created", "data": map[string]any{"plan": "pro", "email": "a@b.c"}})
	skipped := ingest(t, env, ws.Ingest, map[string]any{"type": "lead.created", "data": map[string]any{"plan": "free"}})
	d, raw := poll(id, "succeeded", 1)
	if d.ConnectionID != conn || d.RuleID != ruleID || d.NextAttemptAt != nil || d.ID == "" {
		t.Errorf("delivery: %s", raw)
	}
	a := d.Attempts[0]
	if a.Number != 1 || a.StartedAt.IsZero() || time.Since(a.StartedAt) > time.Minute || a.DurationMS == nil || *a.DurationMS < 0 ||
		a.StatusCode != 200 || a.ErrorClass != "" || a.Retryable == nil || *a.Retryable || a.ResponseExcerpt == nil || *a.ResponseExcerpt != `{"ok":true}` {
		t.Errorf("attempt: %s", raw)
	}
	if strings.Contains(string(raw), strings.TrimPrefix(secret, "whsec_")[:12]) {
		t.Errorf("GET /v1/events/{id} shows the signing secret: %s", raw)
	}
	got := sink.WaitFor(t, 1, 5*time.Second)
	if got[0].Header.Get("webhook-id") != d.ID {
		t.Errorf("webhook-id %q, want the delivery id %s", got[0].Header.Get("webhook-id"), d.ID)
	}
	wh, _ := standardwebhooks.NewWebhook(secret)
	if err := wh.Verify(got[0].Body, got[0].Header); err != nil {
		t.Errorf("signature: %v", err)
	}
	// The free-plan event matched no rule: routed, no deliveries.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := env.Call("GET", "/v1/events/"+skipped, ws.Admin, nil)
		m := r.Map(t)
		if m["routed_at"] != nil {
			if ds := m["deliveries"].([]any); len(ds) != 0 {
				t.Errorf("non-matching event got deliveries: %s", r.Body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %s never routed", skipped)
		}
		time.Sleep(25 * time.Millisecond)
	}

	// A delivery that dies (400: not retryable), listed as dead, replayed via the API.
	failing, _ := createWebhook(t, env, ws.Admin, sink.URL+"/fail")
	expect(t, env.Call("PATCH", "/v1/rules/"+ruleID, ws.Admin, map[string]any{
		"actions": []any{map[string]any{"connection_id": failing, "action": "webhook.post", "timeout": "5s"}}}), http.StatusOK)
	id2 := ingest(t, env, ws.Ingest, map[string]any{"type": "lead.updated", "data": map[string]any{"plan": "pro"}})
	d2, raw := poll(id2, "dead", 1)
	a = d2.Attempts[0]
	if d2.ConnectionID != failing || a.StatusCode != 400 || a.ErrorClass == "" || a.Retryable == nil || *a.Retryable ||
		a.ResponseExcerpt == nil || *a.ResponseExcerpt != `{"error":"nope"}` || d2.NextAttemptAt != nil {
		t.Errorf("dead delivery: %s", raw)
	}
	r := env.Call("GET", "/v1/deliveries?status=dead&connection_id="+failing+"&rule_id="+ruleID, ws.Admin, nil)
	expect(t, r, http.StatusOK)
	var dead deliveryPage
	r.JSON(t, &dead)
	if fmt.Sprint(dead.ids()) != fmt.Sprint([]string{d2.ID}) {
		t.Errorf("dead list: %s", r.Body)
	}
	expect(t, env.Call("POST", "/v1/deliveries/"+d2.ID+"/replay", ws.Admin, nil), http.StatusAccepted)
	d2, raw = poll(id2, "succeeded", 2)
	if d2.Attempts[0].Number != 1 || d2.Attempts[1].Number != 2 || d2.Attempts[0].StatusCode != 400 || d2.Attempts[1].StatusCode != 200 {
		t.Errorf("after replay: %s", raw)
	}
	var ids []string
	for _, req := range sink.Requests() {
		if req.Header.Get("webhook-id") == d2.ID {
			ids = append(ids, req.Header.Get("webhook-id"))
		}
	}
	if len(ids) != 2 {
		t.Errorf("sink saw the replayed delivery %d times, want 2 with the same webhook-id", len(ids))
	}

	// Bulk replay through the API on a second dead delivery.
	id3 := ingest(t, env, ws.Ingest, map[string]any{"type": "lead.updated", "data": map[string]any{"plan": "pro"}})
	poll(id3, "dead", 1)
	r = env.Call("POST", "/v1/deliveries/replay", ws.Admin, map[string]any{"connection_id": failing})
	expect(t, r, http.StatusAccepted)
	if n := r.Map(t)["replayed"]; n != float64(1) {
		t.Errorf("bulk replayed %v", n)
	}
	poll(id3, "succeeded", 2)
}
