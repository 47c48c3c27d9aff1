package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	mrand "math/rand"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/handlers"
	"github.com/fanout-dev/fanout/handlers/apitest"
	"github.com/oklog/ulid/v2"
)

// speedEvents is how many events TestDashboardSpeed seeds into one workspace.
const speedEvents = 100_000

// pageBudget is the server time every dashboard page must stay under at that size.
const pageBudget = 100 * time.Millisecond

// TestDashboardSpeed seeds 100,000 events (with ~150,000 deliveries and ~200,000
// attempts, all in the last 24 hours: the worst case for the overview) into a workspace,
// then measures the server time of every dashboard page, and fails when a page's median
// exceeds 100 ms (not under -race, which slows everything several times). It takes a
// while, so it runs only with FANOUT_SPEED=1:
//
//	FANOUT_SPEED=1 go test ./handlers/ -run TestDashboardSpeed -v
func TestDashboardSpeed(t *testing.T) {
	if os.Getenv("FANOUT_SPEED") == "" {
		t.Skip("set FANOUT_SPEED=1 to seed 100,000 events and measure every page")
	}
	env := apitest.New(t, apitest.Options{})
	start := time.Now()
	sp := seedSpeed(t, env, speedEvents)
	t.Logf("seeded %d events, %d deliveries, %d attempts in %s", speedEvents, sp.deliveries, sp.attempts, time.Since(start).Round(time.Millisecond))

	ws := sp.ws
	pages := []string{
		"/w/" + ws,
		"/w/" + ws + "/events",
		"/w/" + ws + "/events?cursor=" + sp.midEvent,
		"/w/" + ws + "/events?type=invoice.paid",
		"/w/" + ws + "/events?status=dead",
		"/w/" + ws + "/events?range=1h",
		"/w/" + ws + "/events?q=" + sp.midEvent,
		"/w/" + ws + "/events?q=data.email%3Duser42%40example.com",
		"/w/" + ws + "/events?q=data.email%3Dnobody%40example.com",
		"/w/" + ws + "/events?q=data.plan%3Dpro&type=lead.created",
		"/w/" + ws + "/events/" + sp.midEvent,
		"/w/" + ws + "/events/" + sp.midEvent + "/timeline",
		"/w/" + ws + "/connections",
		"/w/" + ws + "/connections/" + sp.conn,
		"/w/" + ws + "/rules",
		"/w/" + ws + "/dead-letters",
		"/w/" + ws + "/dead-letters?connection_id=" + sp.conn + "&error_class=http_5xx",
		"/w/" + ws + "/dead-letters/replay-all",
		"/w/" + ws + "/api-keys",
		"/w/" + ws + "/members",
	}
	const runs = 7
	var report strings.Builder
	fmt.Fprintf(&report, "\n%-70s %9s %9s\n", "page (server time, 100k events)", "median", "max")
	for _, p := range pages {
		var times []time.Duration
		for i := 0; i < runs; i++ {
			req := httptest.NewRequest(http.MethodGet, p, nil)
			req.AddCookie(&http.Cookie{Name: "fanout_session", Value: sp.token})
			if strings.HasSuffix(p, "/timeline") {
				req.Header.Set("HX-Request", "true")
			}
			rec := httptest.NewRecorder()
			t0 := time.Now()
			env.Echo.ServeHTTP(rec, req)
			times = append(times, time.Since(t0))
			if rec.Code != http.StatusOK {
				t.Fatalf("%s: %d %s", p, rec.Code, rec.Body.String()[:min(300, rec.Body.Len())])
			}
		}
		slices.Sort(times)
		med, worst := times[runs/2], times[runs-1]
		fmt.Fprintf(&report, "%-70s %9s %9s\n", strings.Replace(p, ws, ":ws", 1), med.Round(10*time.Microsecond), worst.Round(10*time.Microsecond))
		if med > pageBudget && !raceEnabled {
			t.Errorf("%s: median %s exceeds %s", p, med, pageBudget)
		}
	}
	t.Log(report.String())
}

type speedFixture struct {
	ws, token, conn, midEvent string
	deliveries, attempts      int
}

// seedSpeed writes the rows in bulk (500 per statement) straight through bun; ids are
// ULIDs of each row's own time, as the application makes them.
func seedSpeed(t *testing.T, env *apitest.Env, n int) speedFixture {
	t.Helper()
	ctx := context.Background()
	s := env.Store
	u, err := s.CreateUser(ctx, "speed@example.com", handlers.HashPassword("correct horse battery"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.CreateWorkspaceWithOwner(ctx, "Speed", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := s.CreateSession(ctx, u.ID, "speed", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, _, err := s.CreateAPIKey(ctx, w.ID, fmt.Sprintf("key %d", i), db.ScopeIngest); err != nil {
			t.Fatal(err)
		}
	}
	var conns []*db.Connection
	for i := 0; i < 4; i++ {
		c := &db.Connection{WorkspaceID: w.ID, Kind: "webhook", Name: fmt.Sprintf("Destination %d", i), Config: json.RawMessage(`{"url":"https://example.com/hook"}`)}
		if err := s.CreateConnection(ctx, c); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	types := []string{"lead.created", "invoice.paid", "user.signed_up", "order.created", "order.refunded"}
	var rules []*db.Rule
	for i, typ := range types[:4] {
		r := &db.Rule{WorkspaceID: w.ID, Name: "Rule " + typ, EventType: typ, Enabled: true,
			Actions: []*db.RuleAction{{ConnectionID: conns[i].ID, Action: "webhook.post", TimeoutMS: 10000}}}
		if i == 0 {
			r.Actions = append(r.Actions, &db.RuleAction{ConnectionID: conns[3].ID, Action: "webhook.post", TimeoutMS: 10000})
		}
		if err := s.CreateRule(ctx, r); err != nil {
			t.Fatal(err)
		}
		rules = append(rules, r)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	entropy := ulid.Monotonic(mrand.New(mrand.NewSource(1)), 0)
	id := func(prefix string, at time.Time) string {
		return prefix + "_" + strings.ToLower(ulid.MustNew(ulid.Timestamp(at), entropy).String())
	}
	now := s.Now()
	begin := now.Add(-23 * time.Hour)
	step := 23 * time.Hour / time.Duration(n)
	bdb := s.DB()
	var events []*db.Event
	var dels []*db.Delivery
	var atts []*db.Attempt
	fx := speedFixture{ws: w.ID, token: token, conn: conns[0].ID}
	// Parents before children (foreign keys): events, then deliveries, then attempts.
	flush := func(force bool) {
		if !force && len(events) < 500 && len(dels) < 500 && len(atts) < 500 {
			return
		}
		if len(events) > 0 {
			if _, err := bdb.NewInsert().Model(&events).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			events = events[:0]
		}
		if len(dels) > 0 {
			if _, err := bdb.NewInsert().Model(&dels).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			dels = dels[:0]
		}
		if len(atts) > 0 {
			if _, err := bdb.NewInsert().Model(&atts).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			atts = atts[:0]
		}
	}
	for i := 0; i < n; i++ {
		at := begin.Add(time.Duration(i) * step)
		ti := rng.IntN(len(types))
		data := fmt.Sprintf(`{"email":"user%d@example.com","plan":%q,"amount":%d,"company":{"name":"Company %d","size":%d},"tags":["a","b"]}`,
			i, []string{"free", "pro", "team"}[i%3], rng.IntN(10000), i%977, rng.IntN(500))
		ev := &db.Event{ID: id(db.PrefixEvent, at), WorkspaceID: w.ID, Type: types[ti], Data: json.RawMessage(data),
			OccurredAt: at, ReceivedAt: at, RoutedAt: &at}
		if i == n/2 {
			fx.midEvent = ev.ID
		}
		events = append(events, ev)
		if ti < len(rules) {
			for _, a := range rules[ti].Actions {
				d := &db.Delivery{ID: id(db.PrefixDelivery, at), WorkspaceID: w.ID, EventID: ev.ID, RuleID: rules[ti].ID,
					RuleActionID: a.ID, ConnectionID: a.ConnectionID, Status: db.DeliverySucceeded, AttemptCount: 1,
					CreatedAt: at, UpdatedAt: at.Add(200 * time.Millisecond)}
				tries := 1
				switch r := rng.IntN(100); {
				case r < 5:
					d.Status, d.AttemptCount, d.FailureCount, tries = db.DeliveryDead, 4, 4, 4
					d.LastError, d.LastErrorClass, d.LastStatusCode = "gave up after 4 failed attempts: HTTP 503", "http_5xx", 503
				case r < 7:
					next := now.Add(10 * time.Minute)
					d.Status, d.AttemptCount, d.FailureCount, d.NextAttemptAt, tries = db.DeliveryRetrying, 2, 2, &next, 2
					d.LastError, d.LastErrorClass, d.LastStatusCode = "HTTP 500", "http_5xx", 500
				}
				dels = append(dels, d)
				fx.deliveries++
				for k := 1; k <= tries; k++ {
					a := &db.Attempt{ID: id(db.PrefixAttempt, at), WorkspaceID: w.ID, DeliveryID: d.ID, Number: k,
						StartedAt: at.Add(time.Duration(k) * time.Second), DurationMS: int64(20 + rng.IntN(300)), StatusCode: 200,
						ResponseExcerpt: `{"ok":true}`, Outcome: "succeeded", Request: "POST https://example.com/hook"}
					if k < tries || d.Status != db.DeliverySucceeded {
						a.StatusCode, a.Outcome, a.ErrorClass, a.ResponseExcerpt, a.Retryable = 503, "retry", "http_5xx", "Service Unavailable", true
					}
					atts = append(atts, a)
					fx.attempts++
				}
			}
		}
		flush(false)
	}
	flush(true)
	// As autovacuum would have by then: statistics, and on PostgreSQL the visibility map
	// that index-only scans need.
	analyze := "ANALYZE"
	if s.IsPostgres() {
		analyze = "VACUUM ANALYZE"
	}
	if _, err := bdb.ExecContext(ctx, analyze); err != nil {
		t.Fatal(err)
	}
	return fx
}
