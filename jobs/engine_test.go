package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/db/dbtest"
	"github.com/fanout-dev/fanout/jobs"
	"github.com/fanout-dev/fanout/jobs/connectors"
	"github.com/fanout-dev/fanout/jobs/jobstest"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// redisDB is this package's database on a real Redis server (see jobstest.Redis).
const redisDB = 2

// fixture is a workspace with one webhook connection to a sink and one rule.
type fixture struct {
	env    *jobstest.Env
	ws     *db.Workspace
	sink   *jobstest.Sink
	conn   *db.Connection
	secret string
	rule   *db.Rule
}

func setup(t *testing.T, action db.RuleAction) *fixture {
	t.Helper()
	store := dbtest.New(t)
	f := &fixture{env: jobstest.Start(t, store, redisDB), ws: dbtest.Workspace(t, store), sink: jobstest.NewSink(t)}
	f.conn, f.secret = f.webhook(t, f.ws.ID, f.sink.URL)
	action.ConnectionID = f.conn.ID
	action.Action = "webhook.post"
	if action.TimeoutMS == 0 {
		action.TimeoutMS = 2000
	}
	f.rule = &db.Rule{WorkspaceID: f.ws.ID, Name: "all", EventType: "*", Enabled: true, Actions: []*db.RuleAction{&action}}
	if err := store.CreateRule(context.Background(), f.rule); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) webhook(t *testing.T, workspaceID, url string) (*db.Connection, string) {
	t.Helper()
	secret, err := connectors.NewSigningSecret()
	if err != nil {
		t.Fatal(err)
	}
	c := &db.Connection{ID: db.NewID(db.PrefixConnection), WorkspaceID: workspaceID, Kind: "webhook", Name: "sink",
		Config: json.RawMessage(fmt.Sprintf(`{"url": %q}`, url+"/hook"))}
	if err := jobs.SealCredentials(f.env.Keyring, c, connectors.Credentials{"signing_secret": secret}); err != nil {
		t.Fatal(err)
	}
	if err := f.env.Store.CreateConnection(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return c, secret
}

// send stores an event and queues its routing, as the ingest API does.
func (f *fixture) send(t *testing.T, workspaceID, typ, data string) *db.Event {
	t.Helper()
	ctx := context.Background()
	ev, _, err := f.env.Store.InsertEvent(ctx, &db.Event{WorkspaceID: workspaceID, Type: typ, Data: json.RawMessage(data)})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.env.Queue.EnqueueRoute(ctx, workspaceID, ev.ID); err != nil {
		t.Fatal(err)
	}
	return ev
}

func (f *fixture) onlyDelivery(t *testing.T, ev *db.Event) *db.Delivery {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		ds, err := f.env.Store.EventDeliveries(context.Background(), ev.WorkspaceID, ev.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 1 {
			return ds[0]
		}
		if len(ds) > 1 {
			t.Fatalf("event has %d deliveries, want 1", len(ds))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("event was not routed")
	return nil
}

func (f *fixture) wait(t *testing.T, d *db.Delivery, timeout time.Duration, statuses ...string) *db.Delivery {
	t.Helper()
	return jobstest.WaitDelivery(t, f.env.Store, d.WorkspaceID, d.ID, timeout, statuses...)
}

func attempts(t *testing.T, s *db.Store, d *db.Delivery) []*db.Attempt {
	t.Helper()
	ds, err := s.EventDeliveries(context.Background(), d.WorkspaceID, d.EventID)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ds {
		if x.ID == d.ID {
			return x.Attempts
		}
	}
	t.Fatalf("delivery %s not found", d.ID)
	return nil
}

func TestDeliversSignedEnvelope(t *testing.T) {
	f := setup(t, db.RuleAction{})
	ev := f.send(t, f.ws.ID, "lead.created", `{"email":"a@b.com"}`)
	got := f.sink.WaitFor(t, 1, 5*time.Second)[0]
	d := f.wait(t, f.onlyDelivery(t, ev), 5*time.Second, db.DeliverySucceeded)

	if id := got.Header.Get("webhook-id"); id != d.ID {
		t.Errorf("webhook-id = %q, want the delivery id %q", id, d.ID)
	}
	wh, err := standardwebhooks.NewWebhook(f.secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(got.Body, got.Header); err != nil {
		t.Errorf("signature does not verify with the reference library: %v", err)
	}
	var body struct {
		ID, Type string
		Data     map[string]string
	}
	if err := json.Unmarshal(got.Body, &body); err != nil || body.ID != ev.ID || body.Type != "lead.created" || body.Data["email"] != "a@b.com" {
		t.Errorf("body = %s (%v), want the event envelope", got.Body, err)
	}
	if as := attempts(t, f.env.Store, d); len(as) != 1 || as[0].StatusCode != 200 || as[0].Outcome != "succeeded" {
		t.Errorf("attempts = %+v, want one succeeded attempt", as)
	}
}

func TestMappingShapesBody(t *testing.T) {
	f := setup(t, db.RuleAction{Mapping: json.RawMessage(`{"contact.email": "lower(data.email)", "source": "\"fanout\"", "greeting": "Hi {{ data.name }}!"}`)})
	f.send(t, f.ws.ID, "lead.created", `{"email":"A@B.COM","name":"Ann"}`)
	got := f.sink.WaitFor(t, 1, 5*time.Second)[0]
	want := `{"contact":{"email":"a@b.com"},"greeting":"Hi Ann!","source":"fanout"}`
	if string(got.Body) != want {
		t.Errorf("body = %s, want %s", got.Body, want)
	}
}

func TestRetriesThenDeadLetters(t *testing.T) {
	f := setup(t, db.RuleAction{Retry: json.RawMessage(`{"max_attempts": 3, "schedule": ["1s"]}`)})
	f.sink.SetRespond(func(int, *http.Request) jobstest.Reply {
		return jobstest.Reply{Status: 503, Body: "down for maintenance"}
	})
	ev := f.send(t, f.ws.ID, "a.b", `{}`)
	d := f.wait(t, f.onlyDelivery(t, ev), 10*time.Second, db.DeliveryDead)
	got := f.sink.Requests()
	if len(got) != 3 || d.AttemptCount != 3 || d.FailureCount != 3 {
		t.Fatalf("sink saw %d, delivery counts %d/%d; want 3 attempts", len(got), d.AttemptCount, d.FailureCount)
	}
	for i := 1; i < len(got); i++ {
		if gap := got[i].At.Sub(got[i-1].At); gap < 750*time.Millisecond {
			t.Errorf("retry %d came %s after the previous one; the schedule says 1s ±20%%", i, gap)
		}
		if got[i].Header.Get("webhook-id") != d.ID {
			t.Errorf("retry %d has webhook-id %q, want %q", i, got[i].Header.Get("webhook-id"), d.ID)
		}
	}
	if d.LastStatusCode != 503 || d.LastErrorClass != connectors.ClassHTTP5xx {
		t.Errorf("last status %d class %q", d.LastStatusCode, d.LastErrorClass)
	}
	as := attempts(t, f.env.Store, d)
	if len(as) != 3 || as[2].ResponseExcerpt != "down for maintenance" || !as[0].Retryable {
		t.Errorf("attempts = %+v", as)
	}
}

func TestRetryAfterHonouredAnd429DoesNotUseAnAttempt(t *testing.T) {
	// One attempt allowed: only a 429 that does not count lets the second try happen.
	f := setup(t, db.RuleAction{Retry: json.RawMessage(`{"max_attempts": 1}`)})
	f.sink.SetRespond(func(n int, _ *http.Request) jobstest.Reply {
		if n == 1 {
			return jobstest.Reply{Status: 429, Header: map[string]string{"Retry-After": "2"}}
		}
		return jobstest.Reply{Status: 200}
	})
	ev := f.send(t, f.ws.ID, "a.b", `{}`)
	d := f.wait(t, f.onlyDelivery(t, ev), 10*time.Second, db.DeliverySucceeded, db.DeliveryDead)
	if d.Status != db.DeliverySucceeded || d.AttemptCount != 2 || d.FailureCount != 0 {
		t.Fatalf("delivery %s after %d attempts (%d failures), want succeeded after 2 with none counted", d.Status, d.AttemptCount, d.FailureCount)
	}
	got := f.sink.Requests()
	if gap := got[1].At.Sub(got[0].At); gap < 2*time.Second || gap > 5*time.Second {
		t.Errorf("second attempt %s after the 429, want Retry-After's 2s", gap)
	}
}

func TestRetryAfterHTTPDate(t *testing.T) {
	f := setup(t, db.RuleAction{})
	f.sink.SetRespond(func(n int, _ *http.Request) jobstest.Reply {
		if n == 1 {
			return jobstest.Reply{Status: 503, Header: map[string]string{"Retry-After": time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)}}
		}
		return jobstest.Reply{Status: 200}
	})
	ev := f.send(t, f.ws.ID, "a.b", `{}`)
	f.wait(t, f.onlyDelivery(t, ev), 10*time.Second, db.DeliverySucceeded)
	got := f.sink.Requests()
	// HTTP dates have one-second resolution.
	if gap := got[1].At.Sub(got[0].At); gap < 1900*time.Millisecond {
		t.Errorf("second attempt %s after the 503, want the Retry-After date (~3s)", gap)
	}
}

func TestPermanentFailuresDieAtOnce(t *testing.T) {
	for _, status := range []int{400, 401, 404, 410, 422} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			f := setup(t, db.RuleAction{})
			f.sink.SetRespond(func(int, *http.Request) jobstest.Reply { return jobstest.Reply{Status: status, Body: "nope"} })
			ev := f.send(t, f.ws.ID, "a.b", `{}`)
			d := f.wait(t, f.onlyDelivery(t, ev), 5*time.Second, db.DeliveryDead)
			if d.AttemptCount != 1 || d.LastStatusCode != status || d.LastError == "" {
				t.Errorf("delivery = %+v, want dead after one attempt with the reason", d)
			}
		})
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	f := setup(t, db.RuleAction{})
	target := jobstest.NewSink(t)
	f.sink.SetRespond(func(int, *http.Request) jobstest.Reply {
		return jobstest.Reply{Status: 302, Header: map[string]string{"Location": target.URL + "/elsewhere"}}
	})
	ev := f.send(t, f.ws.ID, "a.b", `{}`)
	d := f.wait(t, f.onlyDelivery(t, ev), 5*time.Second, db.DeliveryDead)
	if d.LastErrorClass != connectors.ClassRedirect {
		t.Errorf("error class %q, want %q", d.LastErrorClass, connectors.ClassRedirect)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(target.Requests()); n != 0 {
		t.Errorf("the redirect target received %d requests", n)
	}
}

func TestTimeoutIsRetried(t *testing.T) {
	f := setup(t, db.RuleAction{TimeoutMS: 300, Retry: json.RawMessage(`{"max_attempts": 2, "schedule": ["1s"]}`)})
	f.sink.SetRespond(func(n int, _ *http.Request) jobstest.Reply {
		if n == 1 {
			return jobstest.Reply{Status: 200, Delay: 5 * time.Second}
		}
		return jobstest.Reply{Status: 200}
	})
	ev := f.send(t, f.ws.ID, "a.b", `{}`)
	d := f.wait(t, f.onlyDelivery(t, ev), 10*time.Second, db.DeliverySucceeded)
	as := attempts(t, f.env.Store, d)
	if len(as) != 2 || as[0].ErrorClass != connectors.ClassTimeout || as[0].DurationMS > 1500 {
		t.Errorf("attempts = %+v, want a timeout at ~300ms then success", as)
	}
}

func TestReplayAppendsToHistory(t *testing.T) {
	f := setup(t, db.RuleAction{})
	f.sink.SetRespond(func(n int, _ *http.Request) jobstest.Reply {
		if n == 1 {
			return jobstest.Reply{Status: 400}
		}
		return jobstest.Reply{Status: 200}
	})
	ev := f.send(t, f.ws.ID, "a.b", `{}`)
	d := f.wait(t, f.onlyDelivery(t, ev), 5*time.Second, db.DeliveryDead)
	ctx := context.Background()
	replayed, err := f.env.Store.ReplayDelivery(ctx, d.WorkspaceID, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.env.Queue.EnqueueDelivery(ctx, replayed, time.Now(), jobs.QueueReplay); err != nil {
		t.Fatal(err)
	}
	d = f.wait(t, d, 5*time.Second, db.DeliverySucceeded)
	as := attempts(t, f.env.Store, d)
	if len(as) != 2 || as[0].Number != 1 || as[1].Number != 2 || as[1].StatusCode != 200 {
		t.Errorf("attempts = %+v, want the replay appended as attempt 2", as)
	}
	got := f.sink.Requests()
	if got[0].Header.Get("webhook-id") != got[1].Header.Get("webhook-id") {
		t.Error("a replay must carry the same webhook-id")
	}
	// Replaying twice queues nothing new once the delivery succeeded.
	if err := f.env.Queue.EnqueueDelivery(ctx, replayed, time.Now(), jobs.QueueReplay); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(f.sink.Requests()); n != 2 {
		t.Errorf("a stale replay task sent again: %d requests", n)
	}
}

func TestReconcilerRecoversLostQueueEntries(t *testing.T) {
	f := setup(t, db.RuleAction{})
	ctx := context.Background()
	// An event committed but never enqueued: the process died between the two.
	ev, _, err := f.env.Store.InsertEvent(ctx, &db.Event{WorkspaceID: f.ws.ID, Type: "a.b", Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	rec := &jobs.Reconciler{Engine: f.env.Engine, Queue: f.env.Queue, Every: time.Hour, Batch: 100}
	if n := rec.Pass(ctx, 0); n != 1 {
		t.Errorf("reconciler enqueued %d tasks, want 1", n)
	}
	d := f.wait(t, f.onlyDelivery(t, ev), 5*time.Second, db.DeliverySucceeded)
	if d.AttemptCount != 1 {
		t.Errorf("attempts %d", d.AttemptCount)
	}
	// Nothing left to do: a second pass enqueues nothing.
	if n := rec.Pass(ctx, 0); n != 0 {
		t.Errorf("second pass enqueued %d tasks, want 0", n)
	}
}

func TestRulesStayInTheirWorkspace(t *testing.T) {
	f := setup(t, db.RuleAction{})
	other := dbtest.Workspace(t, f.env.Store)
	otherSink := jobstest.NewSink(t)
	conn, _ := f.webhook(t, other.ID, otherSink.URL)
	if err := f.env.Store.CreateRule(context.Background(), &db.Rule{WorkspaceID: other.ID, Name: "b", EventType: "*", Enabled: true,
		Actions: []*db.RuleAction{{ConnectionID: conn.ID, Action: "webhook.post", TimeoutMS: 1000}}}); err != nil {
		t.Fatal(err)
	}
	ev := f.send(t, f.ws.ID, "a.b", `{}`)
	f.wait(t, f.onlyDelivery(t, ev), 5*time.Second, db.DeliverySucceeded)
	time.Sleep(200 * time.Millisecond)
	if n := len(otherSink.Requests()); n != 0 {
		t.Errorf("another workspace's destination received %d requests", n)
	}
}

func TestConditionAndEventTypeDecideRouting(t *testing.T) {
	f := setup(t, db.RuleAction{})
	ctx := context.Background()
	f.rule.EventType = "lead.*"
	f.rule.Expression = `data.plan == "pro"`
	if err := f.env.Store.UpdateRule(ctx, f.rule); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		typ, data string
		want      int
	}{
		{"lead.created", `{"plan":"pro"}`, 1},
		{"lead.created", `{"plan":"free"}`, 0},
		{"user.created", `{"plan":"pro"}`, 0},
	} {
		ev := f.send(t, f.ws.ID, c.typ, c.data)
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, err := f.env.Store.EventByID(ctx, f.ws.ID, ev.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.RoutedAt != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("not routed")
			}
			time.Sleep(20 * time.Millisecond)
		}
		ds, _ := f.env.Store.EventDeliveries(ctx, f.ws.ID, ev.ID)
		if len(ds) != c.want {
			t.Errorf("%s %s: %d deliveries, want %d", c.typ, c.data, len(ds), c.want)
		}
	}
}

func TestSlowDestinationDoesNotHoldOthers(t *testing.T) {
	f := setup(t, db.RuleAction{TimeoutMS: 3000})
	ctx := context.Background()
	fast := jobstest.NewSink(t)
	fastConn, _ := f.webhook(t, f.ws.ID, fast.URL)
	if err := f.env.Store.CreateRule(ctx, &db.Rule{WorkspaceID: f.ws.ID, Name: "fast", EventType: "*", Enabled: true,
		Actions: []*db.RuleAction{{ConnectionID: fastConn.ID, Action: "webhook.post", TimeoutMS: 1000}}}); err != nil {
		t.Fatal(err)
	}
	f.sink.SetRespond(func(int, *http.Request) jobstest.Reply {
		return jobstest.Reply{Status: 200, Delay: 2500 * time.Millisecond}
	})
	const n = 20
	start := time.Now()
	for i := 0; i < n; i++ {
		f.send(t, f.ws.ID, "a.b", `{}`)
	}
	// Were the slow destination holding the workers, this would take n/2 × 2.5 s = 25 s.
	fast.WaitFor(t, n, 10*time.Second)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the fast destination took %s for %d events while the slow one hung", took, n)
	}
}

func TestGoneDisablesTheEndpoint(t *testing.T) {
	f := setup(t, db.RuleAction{})
	f.sink.SetRespond(func(int, *http.Request) jobstest.Reply { return jobstest.Reply{Status: 410} })
	first := f.send(t, f.ws.ID, "a.b", `{}`)
	f.wait(t, f.onlyDelivery(t, first), 5*time.Second, db.DeliveryDead)
	conn, err := f.env.Store.ConnectionByID(context.Background(), f.ws.ID, f.conn.ID)
	if err != nil || conn.Status != db.ConnectionDisabled {
		t.Fatalf("connection status %q (%v), want disabled after 410", conn.Status, err)
	}
	// Later deliveries wait for the endpoint instead of dying one by one.
	second := f.send(t, f.ws.ID, "a.b", `{}`)
	d := f.onlyDelivery(t, second)
	time.Sleep(500 * time.Millisecond)
	d = f.wait(t, d, time.Second, db.DeliveryRetrying)
	if d.AttemptCount != 0 || d.NextAttemptAt != nil || len(f.sink.Requests()) != 1 {
		t.Errorf("delivery to a disabled endpoint: %+v, sink saw %d", d, len(f.sink.Requests()))
	}
}

func TestCircuitBreakerOpensAndRecovers(t *testing.T) {
	f := setup(t, db.RuleAction{Retry: json.RawMessage(`{"max_attempts": 1}`)})
	var failing atomic.Bool
	failing.Store(true)
	f.sink.SetRespond(func(int, *http.Request) jobstest.Reply {
		if failing.Load() {
			return jobstest.Reply{Status: 500}
		}
		return jobstest.Reply{Status: 200}
	})
	var evs []*db.Event
	for i := 0; i < 12; i++ {
		evs = append(evs, f.send(t, f.ws.ID, "a.b", `{}`))
	}
	// Five failures in a row open the circuit: the rest wait instead of hammering.
	f.sink.WaitFor(t, 5, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	if n := len(f.sink.Requests()); n > 7 {
		t.Fatalf("the failing destination got %d requests; the circuit should open after 5", n)
	}
	failing.Store(false)
	var dead, delivered int
	for _, ev := range evs {
		d := f.wait(t, f.onlyDelivery(t, ev), 10*time.Second, db.DeliveryDead, db.DeliverySucceeded)
		switch d.Status {
		case db.DeliveryDead:
			dead++
		case db.DeliverySucceeded:
			delivered++
			if d.AttemptCount != 1 {
				t.Errorf("a postponed delivery used %d attempts, want 1", d.AttemptCount)
			}
		}
	}
	if dead < 5 || delivered < 5 {
		t.Errorf("%d dead, %d delivered: want the first failures dead and the postponed ones delivered after the pause", dead, delivered)
	}
}
