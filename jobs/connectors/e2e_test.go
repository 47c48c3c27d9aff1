package connectors_test

// End-to-end tests of the vendor connectors on a live worker (asynq on Redis, a fresh
// database): an event goes in, the rule's mapping shapes it, the fake vendor receives
// the documented request. They use Redis database e2eRedisDB on a real server
// (FANOUT_TEST_REDIS_URL) and so must not run in parallel with each other.

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/db/dbtest"
	"github.com/fanout-dev/fanout/handlers"
	"github.com/fanout-dev/fanout/jobs"
	"github.com/fanout-dev/fanout/jobs/connectors"
	"github.com/fanout-dev/fanout/jobs/connectors/fakes"
	"github.com/fanout-dev/fanout/jobs/jobstest"
	"github.com/labstack/echo/v4"
)

// e2eRedisDB is this package's database on a real Redis server (see jobstest.Redis).
// Others: handlers 1, jobs 2, cmd/fanout 3, web 4.
const e2eRedisDB = 5

type e2e struct {
	t     *testing.T
	env   *jobstest.Env
	store *db.Store
	ws    *db.Workspace
	h     *handlers.Handlers
}

// startE2E runs jobstest.Start's worker with a registry that has the given OAuth apps:
// jobstest builds its registry without them, so the worker is restarted with the same
// engine, queue and keyring once the registry is swapped (after Stop, so no task reads
// the field while it changes).
func startE2E(t *testing.T, oauth connectors.OAuthConfig) *e2e {
	t.Helper()
	store := dbtest.New(t)
	env := jobstest.Start(t, store, e2eRedisDB)
	reg := connectors.DefaultWithOAuth(loopback, oauth)
	if len(reg.OAuthKinds()) > 0 {
		env.Stop()
		env.Engine.Connectors = reg
		srv, mux := jobs.NewServer(env.Redis, jobs.ServerConfig{Concurrency: 8, PollInterval: 10 * time.Millisecond, ScheduledInterval: 100 * time.Millisecond, ShutdownTimeout: 5 * time.Second}, env.Engine)
		if err := srv.Start(mux); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
	}
	e := &e2e{t: t, env: env, store: store, ws: dbtest.Workspace(t, store)}
	e.h = &handlers.Handlers{Store: store, Queue: env.Queue, Engine: env.Engine, Connectors: reg, Keyring: env.Keyring, Log: jobstest.Logger(t), AllowPrivate: true}
	return e
}

// connection stores a connection as the API does (validated, credentials sealed).
func (e *e2e) connection(kind string, config any, creds connectors.Credentials) *db.Connection {
	e.t.Helper()
	conn, _, err := e.h.NewConnection(context.Background(), e.ws.ID, kind, kind, raw(config), creds)
	if err != nil {
		e.t.Fatalf("create %s connection: %v", kind, err)
	}
	return conn
}

// rule routes every lead.created event to conn with action, mapping and options.
func (e *e2e) rule(conn *db.Connection, action, mapping, options, retry string) {
	e.t.Helper()
	a := &db.RuleAction{ConnectionID: conn.ID, Action: action, Mapping: json.RawMessage(mapping), TimeoutMS: 3000}
	if options != "" {
		a.Options = json.RawMessage(options)
	}
	if retry != "" {
		a.Retry = json.RawMessage(retry)
	}
	r := &db.Rule{WorkspaceID: e.ws.ID, Name: action, EventType: "lead.created", Enabled: true, Actions: []*db.RuleAction{a}}
	if err := e.store.CreateRule(context.Background(), r); err != nil {
		e.t.Fatal(err)
	}
}

// send ingests an event, as the API does, and returns its deliveries once routed.
func (e *e2e) send(data string, deliveries int) map[string]*db.Delivery {
	e.t.Helper()
	ctx := context.Background()
	ev, _, err := e.store.InsertEvent(ctx, &db.Event{WorkspaceID: e.ws.ID, Type: "lead.created", Data: json.RawMessage(data)})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.env.Queue.EnqueueRoute(ctx, e.ws.ID, ev.ID); err != nil {
		e.t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ds, err := e.store.EventDeliveries(ctx, e.ws.ID, ev.ID)
		if err != nil {
			e.t.Fatal(err)
		}
		if len(ds) == deliveries {
			byConn := map[string]*db.Delivery{}
			for _, d := range ds {
				byConn[d.ConnectionID] = d
			}
			return byConn
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("event routed to %d deliveries, want %d", len(ds), deliveries)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *e2e) wait(d *db.Delivery, statuses ...string) *db.Delivery {
	e.t.Helper()
	return jobstest.WaitDelivery(e.t, e.store, e.ws.ID, d.ID, 10*time.Second, statuses...)
}

func (e *e2e) reload(conn *db.Connection) (*db.Connection, connectors.Credentials) {
	e.t.Helper()
	c, err := e.store.ConnectionByID(context.Background(), e.ws.ID, conn.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	creds, err := jobs.OpenCredentials(e.env.Keyring, c)
	if err != nil {
		e.t.Fatal(err)
	}
	return c, creds
}

// patch calls PATCH /v1/connections/{id} (the handler) with body.
func (e *e2e) patch(conn *db.Connection, body string) {
	e.t.Helper()
	req := httptest.NewRequest(http.MethodPatch, "/v1/connections/"+conn.ID, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	c := echo.New().NewContext(req, rec)
	c.SetParamNames("id")
	c.SetParamValues(conn.ID)
	handlers.SetIdentity(c, &handlers.Identity{WorkspaceID: e.ws.ID})
	if err := e.h.UpdateConnection(c); err != nil || rec.Code != http.StatusOK {
		e.t.Fatalf("PATCH: %v %d %s", err, rec.Code, rec.Body)
	}
}

func TestE2EEachVendorGetsTheDocumentedRequest(t *testing.T) {
	e := startE2E(t, connectors.OAuthConfig{})
	hs := fakes.NewHubSpot(t, nil)
	hs.Tokens.Add("pat-na1-e2e", 0)
	mc := fakes.NewMailchimp(t, "us6", nil)
	mc.AddKey("0123456789abcdef-us6")
	mc.AddList("a1b2c3", "Newsletter")
	ic := fakes.NewIntercom(t, nil)
	ic.Tokens.Add("ic-e2e", 0)
	sl := fakes.NewSlack(t, nil)
	sl.Tokens.Add("xoxb-e2e", 0, "chat:write")
	sg := fakes.NewSegment(t, "wk-e2e")

	hubspot := e.connection("hubspot", map[string]string{"api_base": hs.URL}, connectors.Credentials{"access_token": "pat-na1-e2e"})
	e.rule(hubspot, "hubspot.upsert_contact", `{"email":"lower(data.email)","firstname":"data.first_name","company":"data.company"}`, "", "")
	mailchimp := e.connection("mailchimp", map[string]string{"api_base": mc.URL}, connectors.Credentials{"api_key": "0123456789abcdef-us6"})
	e.rule(mailchimp, "mailchimp.upsert_member", `{"email_address":"data.email","status_if_new":"\"subscribed\"","merge_fields.FNAME":"data.first_name","tags":"[data.plan]"}`, `{"list_id":"a1b2c3"}`, "")
	intercom := e.connection("intercom", map[string]string{"api_base": ic.URL}, connectors.Credentials{"access_token": "ic-e2e"})
	e.rule(intercom, "intercom.upsert_contact", `{"email":"lower(data.email)","name":"data.first_name","custom_attributes.plan":"data.plan"}`, "", "")
	slack := e.connection("slack", map[string]string{"api_base": sl.URL}, connectors.Credentials{"bot_token": "xoxb-e2e"})
	e.rule(slack, "slack.post_message", `{"text":"New lead {{ data.email }} ({{ data.plan }})"}`, `{"channel":"C0GENERAL"}`, "")
	segment := e.connection("segment", map[string]string{"api_base": sg.URL}, connectors.Credentials{"write_key": "wk-e2e"})
	e.rule(segment, "segment.track", `{"event":"\"Lead Created\"","userId":"data.user_id","properties.plan":"data.plan"}`, "", "")

	ds := e.send(`{"email":"Ada@Example.com","first_name":"Ada","company":"Acme","plan":"pro","user_id":"u_42"}`, 5)
	for _, d := range ds {
		e.wait(d, db.DeliverySucceeded)
	}

	// HubSpot: one batch upsert keyed on the lower-cased email.
	got := hs.Calls(http.MethodPost, "/crm/v3/objects/contacts/batch/upsert")
	if len(got) != 1 || got[0].Header.Get("Authorization") != "Bearer pat-na1-e2e" {
		t.Fatalf("hubspot: %+v", hs.Requests())
	}
	jsonEqual(t, got[0].Body, `{"inputs":[{"idProperty":"email","id":"ada@example.com","objectWriteTraceId":"`+ds[hubspot.ID].ID+`",
		"properties":{"email":"ada@example.com","firstname":"Ada","company":"Acme"}}]}`)

	// Mailchimp: PUT on md5(lower(email)), then the tag.
	sum := md5.Sum([]byte("ada@example.com"))
	member := "/3.0/lists/a1b2c3/members/" + hex.EncodeToString(sum[:])
	if put := mc.Calls(http.MethodPut, member); len(put) != 1 {
		t.Errorf("mailchimp: %+v", mc.Requests())
	} else {
		jsonEqual(t, put[0].Body, `{"email_address":"Ada@Example.com","status_if_new":"subscribed","merge_fields":{"FNAME":"Ada"}}`)
	}
	if tags := mc.Calls(http.MethodPost, member+"/tags"); len(tags) != 1 || string(tags[0].Body) != `{"tags":[{"name":"pro","status":"active"}]}` {
		t.Errorf("mailchimp tags: %+v", tags)
	}

	// Intercom: search by email, then create a lead.
	ireqs := ic.Requests()
	if len(ireqs) != 2 || ireqs[0].Path != "/contacts/search" || ireqs[1].Path != "/contacts" || ireqs[1].Header.Get("Intercom-Version") != "2.14" {
		t.Fatalf("intercom: %+v", ireqs)
	}
	jsonEqual(t, ireqs[1].Body, `{"role":"lead","email":"ada@example.com","name":"Ada","custom_attributes":{"plan":"pro"}}`)

	// Slack: chat.postMessage with the rendered template.
	if post := sl.Calls(http.MethodPost, "/api/chat.postMessage"); len(post) != 1 {
		t.Errorf("slack: %+v", sl.Requests())
	} else {
		jsonEqual(t, post[0].Body, `{"channel":"C0GENERAL","text":"New lead Ada@Example.com (pro)"}`)
	}

	// Segment: track with the delivery id as messageId.
	if track := sg.Calls(http.MethodPost, "/v1/track"); len(track) != 1 {
		t.Errorf("segment: %+v", sg.Requests())
	} else {
		var body map[string]any
		track[0].JSON(t, &body)
		if body["messageId"] != ds[segment.ID].ID || body["event"] != "Lead Created" || body["userId"] != "u_42" || body["type"] != "track" {
			t.Errorf("segment body %s", track[0].Body)
		}
	}
	if acc := sg.Accepted(); len(acc) != 1 || acc[0].Duplicate {
		t.Errorf("segment accepted %+v, dropped %v", acc, sg.Dropped())
	}
}

// hubspotOAuth is a HubSpot fake and its authorization server, sharing tokens.
func hubspotOAuth(t *testing.T) (*fakes.HubSpot, *fakes.AuthServer, connectors.OAuthConfig) {
	tokens := fakes.NewTokens()
	api := fakes.NewHubSpot(t, tokens)
	auth := fakes.NewAuthServer(t, fakes.AuthOptions{Flavor: fakes.FlavorHubSpot, ClientID: "hs-id", ClientSecret: "hs-secret", Tokens: tokens})
	cfg := connectors.OAuthConfig{BaseURL: "https://fanout.test", HTTPClient: loopbackClient,
		HubSpot: connectors.OAuthApp{ClientID: "hs-id", ClientSecret: "hs-secret", AuthURL: auth.URL + fakes.HubSpotAuthorizePath,
			TokenURL: auth.URL + fakes.HubSpotTokenPath, MetadataURL: auth.URL + fakes.HubSpotMetadataPath}}
	return api, auth, cfg
}

func TestE2EHubSpotRefreshesExpiredToken(t *testing.T) {
	api, auth, cfg := hubspotOAuth(t)
	e := startE2E(t, cfg)
	auth.Tokens().Add("expired-access", time.Second)
	auth.Tokens().Expire("expired-access")
	auth.Tokens().AddRefresh("refresh-1")
	conn := e.connection("hubspot", map[string]string{"api_base": api.URL}, connectors.Credentials{
		"access_token": "expired-access", "refresh_token": "refresh-1", "expires_at": time.Now().Add(-5 * time.Minute).UTC().Format(time.RFC3339),
	})
	e.rule(conn, "hubspot.upsert_contact", `{"email":"data.email"}`, "", "")
	for _, d := range e.send(`{"email":"ada@example.com"}`, 1) {
		d = e.wait(d, db.DeliverySucceeded, db.DeliveryDead)
		if d.Status != db.DeliverySucceeded || d.AttemptCount != 1 {
			t.Fatalf("delivery %s after %d attempts: %s", d.Status, d.AttemptCount, d.LastError)
		}
	}
	stored, creds := e.reload(conn)
	fresh := creds["access_token"]
	if fresh == "expired-access" || auth.Tokens().Check(fresh) != fakes.TokenValid || creds["refresh_token"] != "refresh-1" {
		t.Errorf("stored credentials %v: want the refreshed token", creds)
	}
	if exp, err := time.Parse(time.RFC3339, creds["expires_at"]); err != nil || time.Until(exp) < 25*time.Minute {
		t.Errorf("expires_at %q", creds["expires_at"])
	}
	if bytes.Contains(stored.Credentials, []byte(fresh)) {
		t.Error("the refreshed token is stored in clear")
	}
	if calls := api.Requests(); len(calls) != 1 || calls[0].Header.Get("Authorization") != "Bearer "+fresh {
		t.Errorf("HubSpot saw %d calls, want one with the refreshed token", len(calls))
	}
}

func TestE2EHubSpot429IsWaitedOut(t *testing.T) {
	e := startE2E(t, connectors.OAuthConfig{})
	api := fakes.NewHubSpot(t, nil)
	api.Tokens.Add("pat", 0)
	api.RateLimit(1, "SECONDLY")
	conn := e.connection("hubspot", map[string]string{"api_base": api.URL}, connectors.Credentials{"access_token": "pat"})
	// One attempt allowed: only a 429 that costs none lets the second try happen.
	e.rule(conn, "hubspot.upsert_contact", `{"email":"data.email"}`, "", `{"max_attempts": 1}`)
	for _, d := range e.send(`{"email":"ada@example.com"}`, 1) {
		d = e.wait(d, db.DeliverySucceeded, db.DeliveryDead)
		if d.Status != db.DeliverySucceeded || d.AttemptCount != 2 || d.FailureCount != 0 {
			t.Fatalf("delivery %s after %d attempts (%d failures): %s", d.Status, d.AttemptCount, d.FailureCount, d.LastError)
		}
	}
	calls := api.Requests()
	if len(calls) != 2 {
		t.Fatalf("%d calls", len(calls))
	}
	if gap := calls[1].At.Sub(calls[0].At); gap < 900*time.Millisecond || gap > 5*time.Second {
		t.Errorf("retried %s after the 429; SECONDLY asks for 1 s", gap)
	}
}

// revoked sets up a HubSpot connection whose token HubSpot refuses, and a delivery parked
// on it; it returns the connection and the delivery.
func (e *e2e) revoked(api *fakes.HubSpot, creds connectors.Credentials) (*db.Connection, *db.Delivery) {
	e.t.Helper()
	conn := e.connection("hubspot", map[string]string{"api_base": api.URL}, creds)
	e.rule(conn, "hubspot.upsert_contact", `{"email":"data.email"}`, "", `{"max_attempts": 2}`)
	var d *db.Delivery
	for _, x := range e.send(`{"email":"ada@example.com"}`, 1) {
		d = x
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, _ := e.store.ConnectionByID(context.Background(), e.ws.ID, conn.ID)
		if c.Status == db.ConnectionNeedsReconnect {
			conn = c
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("connection is %s, want needs_reconnect", c.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	d = e.wait(d, db.DeliveryRetrying)
	if d.FailureCount != 0 || d.NextAttemptAt != nil || d.LastErrorClass != connectors.ClassAuth {
		e.t.Fatalf("delivery %+v: want parked, no failure counted", d)
	}
	return conn, d
}

func TestE2ERevokedTokenParksUntilReconnectedByPATCH(t *testing.T) {
	e := startE2E(t, connectors.OAuthConfig{})
	api := fakes.NewHubSpot(t, nil)
	api.Tokens.Add("pat-old", 0)
	api.Tokens.Revoke("pat-old")
	conn, d := e.revoked(api, connectors.Credentials{"access_token": "pat-old"})
	if !strings.Contains(conn.StatusNote, "INVALID_AUTHENTICATION") {
		t.Errorf("status note %q", conn.StatusNote)
	}
	// More events wait too, without calling HubSpot.
	var d2 *db.Delivery
	for _, x := range e.send(`{"email":"bob@example.com"}`, 1) {
		d2 = e.wait(x, db.DeliveryRetrying)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(api.Requests()); n != 1 {
		t.Fatalf("HubSpot saw %d calls while the connection waited for a reconnect", n)
	}

	api.Tokens.Add("pat-new", 0)
	e.patch(conn, `{"credentials":{"access_token":"pat-new"}}`)
	for _, x := range []*db.Delivery{d, d2} {
		x = e.wait(x, db.DeliverySucceeded, db.DeliveryDead)
		if x.Status != db.DeliverySucceeded || x.FailureCount != 0 {
			t.Errorf("delivery %s (%d failures): %s", x.Status, x.FailureCount, x.LastError)
		}
	}
	calls := api.Requests()
	if len(calls) != 3 || calls[1].Header.Get("Authorization") != "Bearer pat-new" || calls[2].Header.Get("Authorization") != "Bearer pat-new" {
		t.Errorf("HubSpot calls after the reconnect: %d", len(calls))
	}
	if c, _ := e.reload(conn); c.Status != db.ConnectionActive {
		t.Errorf("connection %s", c.Status)
	}
}

func TestE2ERevokedTokenParksUntilReconnectedByOAuth(t *testing.T) {
	api, auth, cfg := hubspotOAuth(t)
	e := startE2E(t, cfg)
	// Revoked access and refresh tokens: the refresh fails too.
	auth.Tokens().Add("access-old", 0)
	auth.Tokens().Revoke("access-old")
	auth.Tokens().AddRefresh("refresh-old")
	auth.Tokens().Revoke("refresh-old")
	conn, d := e.revoked(api, connectors.Credentials{"access_token": "access-old", "refresh_token": "refresh-old",
		"expires_at": time.Now().Add(20 * time.Minute).UTC().Format(time.RFC3339)})
	if n := len(auth.Calls(http.MethodPost, fakes.HubSpotTokenPath)); n != 1 {
		t.Errorf("%d refresh attempts, want 1", n)
	}

	// Reconnect through the OAuth flow, as the dashboard's Reconnect button does.
	flow, err := handlers.NewOAuthFlow(e.h, bytes.Repeat([]byte{7}, 32), bytes.Repeat([]byte{8}, 32))
	if err != nil {
		t.Fatal(err)
	}
	srv := echo.New()
	srv.GET(handlers.OAuthReturnRoute, flow.Return)
	g := srv.Group("/w/:workspace", func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			handlers.SetIdentity(c, &handlers.Identity{WorkspaceID: c.Param("workspace"), User: &db.User{ID: "usr_1"}, Role: db.RoleAdmin})
			return next(c)
		}
	})
	g.GET("/connections/oauth/:kind/start", flow.Start)
	g.GET("/connections/oauth/:kind/callback", flow.Callback)
	get := func(target string, cookies []*http.Cookie) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		for _, c := range cookies {
			req.AddCookie(c)
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec
	}
	start := get("/w/"+e.ws.ID+"/connections/oauth/hubspot/start?connection_id="+conn.ID, nil)
	if start.Code != http.StatusFound {
		t.Fatalf("start %d %s", start.Code, start.Body)
	}
	cookies := start.Result().Cookies()
	back := fakes.Approve(t, start.Header().Get("Location"))
	relay := get(back.RequestURI(), cookies)
	done := get(relay.Header().Get("Location"), cookies)
	if loc, _ := url.Parse(done.Header().Get("Location")); done.Code != http.StatusSeeOther || loc.Query().Get("connected") != conn.ID {
		t.Fatalf("callback %d to %s", done.Code, done.Header().Get("Location"))
	}

	d = e.wait(d, db.DeliverySucceeded, db.DeliveryDead)
	if d.Status != db.DeliverySucceeded || d.FailureCount != 0 {
		t.Fatalf("delivery %s: %s", d.Status, d.LastError)
	}
	stored, creds := e.reload(conn)
	if stored.Status != db.ConnectionActive || creds["access_token"] == "access-old" || creds["refresh_token"] == "refresh-old" {
		t.Errorf("connection %s, credentials %v", stored.Status, creds)
	}
	calls := api.Requests()
	if last := calls[len(calls)-1]; last.Header.Get("Authorization") != "Bearer "+creds["access_token"] {
		t.Errorf("the resumed delivery did not use the new token")
	}
}
