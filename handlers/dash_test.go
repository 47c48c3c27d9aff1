package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/handlers/apitest"
	"github.com/fanout-dev/fanout/jobs/jobstest"
)

func TestDashboardSignupLoginLogout(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{})
	d := newDash(t, env)

	p := d.get("/")
	wantStatus(t, p, http.StatusSeeOther)
	if p.location() != "/login" {
		t.Fatalf("signed out / → %q", p.location())
	}
	ws := d.signup("ada@example.com", "Acme")
	ck := d.cookie("fanout_session")
	if ck == nil {
		t.Fatal("no session cookie after signup")
	}
	first := ck.Value
	p = d.get("/w/" + ws)
	wantStatus(t, p, http.StatusOK)
	if got := p.testid("current-workspace").Text(); got != "Acme" {
		t.Fatalf("current workspace %q", got)
	}
	if p.testid("sidebar").Length() != 1 || p.testid("nav-events").Length() != 1 {
		t.Fatal("layout has no left navigation")
	}

	// Sign out, then in: the session id is new, the old one is dead.
	wantStatus(t, d.post("/logout", nil), http.StatusSeeOther)
	p = d.login("ADA@example.com ", "correct horse battery")
	wantStatus(t, p, http.StatusSeeOther)
	second := d.cookie("fanout_session").Value
	if second == first {
		t.Fatal("session id did not rotate on login")
	}
	if _, _, err := env.Store.SessionByToken(context.Background(), first); err == nil {
		t.Fatal("old session still valid after logout")
	}
	// Logging in again while signed in also rotates.
	d.get("/w/" + ws)
	p = d.post("/login", url.Values{"email": {"ada@example.com"}, "password": {"correct horse battery"}})
	wantStatus(t, p, http.StatusSeeOther)
	if d.cookie("fanout_session").Value == second {
		t.Fatal("session id did not rotate on a second login")
	}

	// Wrong password, and validation of sign-up.
	d2 := newDash(t, env)
	p = d2.login("ada@example.com", "wrong password!")
	wantStatus(t, p, http.StatusUnauthorized)
	if p.testid("form-error").Length() != 1 {
		t.Fatal("no error shown for a wrong password")
	}
	d2.get("/signup")
	p = d2.post("/signup", url.Values{"email": {"not-an-email"}, "password": {"short"}, "workspace": {""}})
	wantStatus(t, p, http.StatusUnprocessableEntity)
	for _, f := range []string{"email", "password", "workspace"} {
		if p.testid("error-"+f).Length() != 1 {
			t.Errorf("no inline error for %s", f)
		}
	}
	p = d2.post("/signup", url.Values{"email": {"ada@example.com"}, "password": {"another long password"}, "workspace": {"X"}})
	wantStatus(t, p, http.StatusUnprocessableEntity)
}

func TestDashboardCookies(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{})
	d := newDash(t, env)
	d.get("/signup", "X-Forwarded-Proto", "https")
	p := d.post("/signup", url.Values{"email": {"sec@example.com"}, "password": {"correct horse battery"}, "workspace": {"W"}}, "X-Forwarded-Proto", "https")
	wantStatus(t, p, http.StatusSeeOther)
	var sc string
	for _, v := range p.Header.Values("Set-Cookie") {
		if strings.HasPrefix(v, "__Host-fanout_session=") {
			sc = v
		}
	}
	for _, want := range []string{"Path=/", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(sc, want) {
			t.Errorf("session cookie %q lacks %s", sc, want)
		}
	}
	if strings.Contains(sc, "Domain=") {
		t.Errorf("__Host- cookie must not set Domain: %q", sc)
	}
}

func TestDashboardCSRF(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{})
	d := newDash(t, env)
	ws := d.signup("csrf@example.com", "W")
	d.get("/w/" + ws + "/api-keys")

	// Missing token.
	p := d.post("/w/"+ws+"/api-keys", url.Values{"name": {"k"}, "scope": {"ingest"}, "_csrf": {""}})
	wantStatus(t, p, http.StatusForbidden)
	// Cross-site, even with the right token.
	p = d.post("/w/"+ws+"/api-keys", url.Values{"name": {"k"}, "scope": {"ingest"}}, "Sec-Fetch-Site", "cross-site")
	wantStatus(t, p, http.StatusForbidden)
	p = d.post("/w/"+ws+"/api-keys", url.Values{"name": {"k"}, "scope": {"ingest"}}, "Origin", "https://evil.example")
	wantStatus(t, p, http.StatusForbidden)
	// The login form is protected too.
	anon := newDash(t, env)
	wantStatus(t, anon.post("/login", url.Values{"email": {"a@b.co"}, "password": {"x"}, "_csrf": {"forged"}}), http.StatusForbidden)
	if n := env.Count((*db.APIKey)(nil), ws); n != 0 {
		t.Fatalf("refused requests stored %d keys", n)
	}
	// htmx request with the token in the header: accepted.
	f := seed(t, env.Store, ws, `{}`)
	p = d.post("/w/"+ws+"/rules/"+f.rule.ID+"/toggle", url.Values{"_csrf": {""}}, "HX-Request", "true", "X-CSRF-Token", d.csrf, "Sec-Fetch-Site", "same-origin")
	wantStatus(t, p, http.StatusOK)
	if !strings.Contains(p.Body, `data-testid="rule-row"`) || !strings.Contains(p.Header.Get("HX-Trigger"), "toast") {
		t.Fatalf("htmx toggle did not return the row: %s", p.Body)
	}
}

func TestDashboardLoginThrottle(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{})
	d := newDash(t, env)
	d.signup("slow@example.com", "W")
	d.post("/logout", nil)
	for i := 0; i < 5; i++ {
		wantStatus(t, d.login("slow@example.com", "wrong password"), http.StatusUnauthorized)
	}
	p := d.login("slow@example.com", "correct horse battery")
	wantStatus(t, p, http.StatusTooManyRequests)
	if p.Header.Get("Retry-After") == "" || !strings.Contains(p.testid("form-error").Text(), "Try again") {
		t.Fatalf("throttled login: %q %q", p.Header.Get("Retry-After"), p.testid("form-error").Text())
	}
}

func TestDashboardTenancyAndRoles(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{})
	owner := newDash(t, env)
	ws := owner.signup("owner@example.com", "Mine")
	f := seed(t, env.Store, ws, `{"n":1}`)

	other := newDash(t, env)
	otherWS := other.signup("other@example.com", "Theirs")
	// Another workspace, and this workspace's ids through the other's URL: 404.
	for _, path := range []string{
		"/w/" + ws, "/w/" + ws + "/events/" + f.event.ID, "/w/" + otherWS + "/events/" + f.event.ID,
		"/w/" + otherWS + "/connections/" + f.conn.ID, "/w/" + otherWS + "/events/" + f.event.ID + "/timeline",
	} {
		p := other.get(path)
		wantStatus(t, p, http.StatusNotFound)
		if p.testid("error-page").Length() != 1 {
			t.Errorf("%s: 404 is not the HTML error page", path)
		}
	}
	p := other.post("/w/"+otherWS+"/deliveries/"+f.dead.ID+"/replay", nil)
	wantStatus(t, p, http.StatusNotFound)
	if got, _ := env.Store.DeliveryByID(context.Background(), ws, f.dead.ID); got.Status != db.DeliveryDead {
		t.Fatal("cross-workspace replay changed the delivery")
	}

	// Invite a viewer through a one-time link; the viewer signs up from it.
	owner.get("/w/" + ws + "/members")
	p = owner.post("/w/"+ws+"/members/invites", url.Values{"role": {db.RoleViewer}})
	wantStatus(t, p, http.StatusCreated)
	link := p.testid("invite-url").Text()
	if !strings.Contains(link, "/invite/") {
		t.Fatalf("invite link %q", link)
	}
	path := link[strings.Index(link, "/invite/"):]
	viewer := newDash(t, env)
	p = viewer.get(path)
	wantStatus(t, p, http.StatusSeeOther)
	viewer.get(p.location())
	p = viewer.post("/signup", url.Values{"email": {"viewer@example.com"}, "password": {"correct horse battery"}, "next": {path}})
	wantStatus(t, p, http.StatusSeeOther)
	if p.location() != "/w/"+ws {
		t.Fatalf("viewer landed on %q", p.location())
	}
	if p := newDash(t, env).get(path); p.Status != http.StatusSeeOther && p.testid("invite-invalid").Length() == 0 {
		t.Fatal("invitation link worked twice")
	}

	// A viewer sees no controls and every POST is refused.
	p = viewer.get("/w/" + ws + "/connections/" + f.conn.ID)
	wantStatus(t, p, http.StatusOK)
	if p.testid("send-test").Length()+p.testid("delete-connection").Length()+p.testid("rotate-secret").Length() != 0 {
		t.Fatal("viewer sees edit controls")
	}
	for _, path := range []string{
		"/connections/" + f.conn.ID + "/disable", "/connections/" + f.conn.ID + "/delete", "/rules/" + f.rule.ID + "/toggle",
		"/deliveries/" + f.dead.ID + "/replay", "/api-keys", "/dead-letters/replay-all", "/members/invites",
	} {
		wantStatus(t, viewer.post("/w/"+ws+path, url.Values{"name": {"x"}, "scope": {"admin"}, "role": {"owner"}}), http.StatusForbidden)
	}
	if c, _ := env.Store.ConnectionByID(context.Background(), ws, f.conn.ID); c.Status != db.ConnectionActive {
		t.Fatal("viewer changed a connection")
	}
	// An admin cannot make owners.
	if err := env.Store.SetMemberRole(context.Background(), ws, memberID(t, env, ws, "viewer@example.com"), db.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	viewer.get("/w/" + ws + "/members")
	wantStatus(t, viewer.post("/w/"+ws+"/members/invites", url.Values{"role": {db.RoleOwner}}), http.StatusForbidden)
	wantStatus(t, viewer.post("/w/"+ws+"/members/invites", url.Values{"role": {db.RoleViewer}}), http.StatusCreated)
}

func memberID(t *testing.T, env *apitest.Env, ws, email string) string {
	t.Helper()
	ms, err := env.Store.ListMembers(context.Background(), ws)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Email == email {
			return m.UserID
		}
	}
	t.Fatalf("no member %s", email)
	return ""
}

func TestDashboardXSSRendersAsText(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{})
	d := newDash(t, env)
	ws := d.signup("xss@example.com", `<script>alert("ws")</script>`)
	f := seed(t, env.Store, ws, `{"name":"<script>alert(1)</script>","bio":"<div hx-get=\"/logout\" hx-trigger=\"load\">x</div>"}`)
	ctx := context.Background()
	f.conn.Name = `<img src=x onerror=alert(2)>`
	if err := env.Store.UpdateConnection(ctx, f.conn); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/events/" + f.event.ID, "/events", "/connections", "/connections/" + f.conn.ID, "/dead-letters", "", "/rules"} {
		p := d.get("/w/" + ws + path)
		wantStatus(t, p, http.StatusOK)
		if n := p.find("script:not([src])").Length(); n != 0 {
			t.Errorf("%s: %d inline script elements", path, n)
		}
		if n := p.find("img:not([src^='/static/'])").Length(); n != 0 {
			t.Errorf("%s: injected img rendered", path)
		}
		if n := p.find(`[hx-get="/logout"]`).Length(); n != 0 {
			t.Errorf("%s: injected hx-get rendered as an element", path)
		}
	}
	p := d.get("/w/" + ws + "/events/" + f.event.ID)
	if !strings.Contains(p.testid("event-payload").Text(), `<script>alert(1)</script>`) {
		t.Fatalf("payload not shown as text: %q", p.testid("event-payload").Text())
	}
	if csp := p.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("CSP %q", csp)
	}
}

func TestDashboardEvents(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{})
	d := newDash(t, env)
	ws := d.signup("ev@example.com", "W")
	f := seed(t, env.Store, ws, `{"email":"ada@example.com","plan":"pro"}`)
	for i := 0; i < 60; i++ {
		if _, _, err := env.Store.InsertEvent(context.Background(), &db.Event{WorkspaceID: ws, Type: "lead.created", Data: []byte(`{"i":1}`)}); err != nil {
			t.Fatal(err)
		}
	}
	p := d.get("/w/" + ws + "/events")
	wantStatus(t, p, http.StatusOK)
	if n := p.testid("event-row").Length(); n != 50 {
		t.Fatalf("first page has %d rows", n)
	}
	next, _ := p.testid("events-next").Attr("href")
	p = d.get(next)
	if n := p.testid("event-row").Length(); n != 11 {
		t.Fatalf("second page has %d rows", n)
	}
	for q, want := range map[string]int{
		"?type=order.created": 1, "?status=dead": 1, "?q=" + url.QueryEscape("data.email=ada@example.com"): 1,
		"?q=" + f.event.ID: 1, "?q=" + url.QueryEscape("plan=free"): 0, "?range=1h&type=lead.created": 60,
	} {
		p := d.get("/w/" + ws + "/events" + q + "&limit=100")
		if n := p.testid("event-row").Length(); n != want && !(want == 60 && n == 50) {
			t.Errorf("%s: %d rows, want %d", q, n, want)
		}
	}
	p = d.get("/w/"+ws+"/events?status=bogus", "HX-Request", "true")
	wantStatus(t, p, http.StatusOK)
	if p.testid("filter-error").Length() != 1 || p.find("html").Length() != 1 && strings.Contains(p.Body, "<html") {
		t.Fatalf("htmx filter error: %s", p.Body)
	}

	// The event page: payload, verdicts, a timeline that polls while a delivery retries.
	p = d.get("/w/" + ws + "/events/" + f.event.ID)
	wantStatus(t, p, http.StatusOK)
	if p.testid("delivery").Length() != 3 || p.testid("attempt").Length() != 3 {
		t.Fatalf("timeline: %d deliveries, %d attempts", p.testid("delivery").Length(), p.testid("attempt").Length())
	}
	tl := p.testid("timeline")
	if tl.AttrOr("data-live", "") != "true" || tl.AttrOr("hx-trigger", "") == "" {
		t.Fatal("timeline with a retrying delivery does not poll")
	}
	if p.testid("next-retry").Length() != 1 {
		t.Fatal("no next retry time")
	}
	if v := p.testid("rule-verdict"); v.Length() != 1 || v.AttrOr("data-matched", "") != "true" {
		t.Fatal("matching rule not shown as matched")
	}
	// A rule of another type shows the reason it did not match.
	other := &db.Rule{WorkspaceID: ws, Name: "Leads", EventType: "lead.*", Enabled: true,
		Actions: []*db.RuleAction{{ConnectionID: f.conn.ID, Action: "webhook.post"}}}
	if err := env.Store.CreateRule(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	p = d.get("/w/" + ws + "/events/" + f.event.ID)
	if r := p.testid("rule-reason").Text(); !strings.Contains(r, "lead.*") {
		t.Fatalf("reason %q", r)
	}
	// Once every delivery is final, the timeline stops polling.
	f.retryD.Status, f.retryD.NextAttemptAt = db.DeliverySucceeded, nil
	if err := env.Store.RecordAttempt(context.Background(), f.retryD, &db.Attempt{Number: 2, StartedAt: env.Store.Now(), StatusCode: 200, Outcome: "succeeded"}); err != nil {
		t.Fatal(err)
	}
	p = d.get("/w/"+ws+"/events/"+f.event.ID+"/timeline", "HX-Request", "true")
	wantStatus(t, p, http.StatusOK)
	tl = p.testid("timeline")
	if tl.AttrOr("data-live", "") != "false" || tl.AttrOr("hx-trigger", "") != "" {
		t.Fatalf("final timeline still polls: %s", p.Body[:200])
	}
	// Replay from the event page (htmx): the timeline comes back live, a job is queued.
	env.Recorder.Reset()
	p = d.post("/w/"+ws+"/deliveries/"+f.dead.ID+"/replay", nil, "HX-Request", "true")
	wantStatus(t, p, http.StatusOK)
	if p.testid("timeline").AttrOr("data-live", "") != "true" || len(env.Recorder.Deliveries()) != 1 {
		t.Fatal("replay did not queue the delivery or did not return a live timeline")
	}
}

func TestDashboardConnections(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{AllowPrivate: true})
	sink := jobstest.NewSink(t)
	d := newDash(t, env)
	ws := d.signup("conn@example.com", "W")
	p := d.get("/w/" + ws + "/connections/new")
	if p.testid("kind-webhook").Length() != 1 {
		t.Fatal("kind picker lacks webhook")
	}
	p = d.get("/w/" + ws + "/connections/new?kind=webhook")
	if p.testid("connection-form").Length() != 1 || p.find("#f-url").Length() != 1 {
		t.Fatal("webhook form")
	}
	p = d.post("/w/"+ws+"/connections", url.Values{"kind": {"webhook"}, "name": {""}, "url": {"not a url"}})
	wantStatus(t, p, http.StatusUnprocessableEntity)
	if p.testid("error-name").Length() == 0 {
		t.Fatalf("no inline name error: %s", p.testid("form-error").Text())
	}
	p = d.post("/w/"+ws+"/connections", url.Values{"kind": {"webhook"}, "name": {"Sink"}, "url": {sink.URL + "/hook"}, "headers": {"X-Team: growth"}})
	wantStatus(t, p, http.StatusCreated)
	secret := p.testid("signing-secret").Text()
	if !strings.HasPrefix(secret, "whsec_") || p.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("secret %q, cache %q", secret, p.Header.Get("Cache-Control"))
	}
	cs, _ := env.Store.ListConnections(context.Background(), ws)
	if len(cs) != 1 {
		t.Fatalf("%d connections", len(cs))
	}
	id := cs[0].ID
	for _, path := range []string{"/connections", "/connections/" + id, ""} {
		if p := d.get("/w/" + ws + path); strings.Contains(p.Body, secret) {
			t.Fatalf("%s shows the secret again", path)
		}
	}
	// Send test shows the response.
	p = d.post("/w/"+ws+"/connections/"+id+"/test", nil, "HX-Request", "true")
	wantStatus(t, p, http.StatusOK)
	if p.testid("test-status").Text() != "200" || !strings.Contains(p.testid("test-response").Text(), "ok") {
		t.Fatalf("test result: %s", p.Body)
	}
	// Rotate: a new secret once, the old one still signs for 24 hours.
	p = d.post("/w/"+ws+"/connections/"+id+"/rotate-secret", nil)
	wantStatus(t, p, http.StatusOK)
	rotated := p.testid("signing-secret").Text()
	if rotated == secret || !strings.HasPrefix(rotated, "whsec_") {
		t.Fatal("rotation did not show a new secret")
	}
	p = d.get("/w/" + ws + "/connections/" + id)
	if p.testid("previous-secret").Length() != 1 || strings.Contains(p.Body, rotated) {
		t.Fatal("detail page after rotation")
	}
	// Disable / enable.
	wantStatus(t, d.post("/w/"+ws+"/connections/"+id+"/disable", nil), http.StatusSeeOther)
	if c, _ := env.Store.ConnectionByID(context.Background(), ws, id); c.Status != db.ConnectionDisabled {
		t.Fatal("not disabled")
	}
	p = d.get("/w/" + ws + "/connections/" + id)
	if p.testid("flash").Length() != 1 || p.testid("enable").Length() != 1 {
		t.Fatal("no flash or enable button after disabling")
	}
	wantStatus(t, d.post("/w/"+ws+"/connections/"+id+"/enable", nil), http.StatusSeeOther)
	// Delete: refused while a rule uses it, then done.
	r := &db.Rule{WorkspaceID: ws, Name: "r", EventType: "*", Enabled: true, Actions: []*db.RuleAction{{ConnectionID: id, Action: "webhook.post"}}}
	if err := env.Store.CreateRule(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	d.post("/w/"+ws+"/connections/"+id+"/delete", nil)
	if p := d.get("/w/" + ws + "/connections/" + id); p.Status != http.StatusOK || !strings.Contains(p.testid("flash").Text(), "rule") {
		t.Fatal("deleting a used connection was not refused with a message")
	}
	d.get("/w/" + ws + "/rules")
	wantStatus(t, d.post("/w/"+ws+"/rules/"+r.ID+"/delete", nil), http.StatusSeeOther)
	wantStatus(t, d.post("/w/"+ws+"/connections/"+id+"/delete", nil), http.StatusSeeOther)
	if _, err := env.Store.ConnectionByID(context.Background(), ws, id); err == nil {
		t.Fatal("connection not deleted")
	}
}

func TestDashboardKeys(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{})
	d := newDash(t, env)
	ws := d.signup("keys@example.com", "W")
	d.get("/w/" + ws + "/api-keys")
	p := d.post("/w/"+ws+"/api-keys", url.Values{"name": {"Backend"}, "scope": {"ingest"}})
	wantStatus(t, p, http.StatusCreated)
	key := p.testid("api-key").Text()
	if !strings.HasPrefix(key, "fo_") {
		t.Fatalf("key %q", key)
	}
	// The key works on the API, and is never shown again.
	res := env.Call(http.MethodPost, "/v1/events", key, map[string]any{"type": "a.b", "data": map[string]any{}})
	if res.Status != http.StatusAccepted {
		t.Fatalf("new key: %d", res.Status)
	}
	p = d.get("/w/" + ws + "/api-keys")
	if strings.Contains(p.Body, key) || p.testid("key-row").Length() != 1 {
		t.Fatal("list shows the key or misses it")
	}
	id := p.testid("key-row").AttrOr("data-id", "")
	p = d.post("/w/"+ws+"/api-keys/"+id+"/revoke", nil, "HX-Request", "true")
	wantStatus(t, p, http.StatusOK)
	if !strings.Contains(p.Body, "Revoked") {
		t.Fatal("revoked row")
	}
	if res := env.Call(http.MethodPost, "/v1/events", key, map[string]any{"type": "a.b", "data": map[string]any{}}); res.Status != http.StatusUnauthorized {
		t.Fatalf("revoked key: %d", res.Status)
	}
}

func TestDashboardDeadLetters(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{})
	d := newDash(t, env)
	ws := d.signup("dead@example.com", "W")
	f := seed(t, env.Store, ws, `{}`)
	f2 := seed(t, env.Store, ws, `{}`)
	p := d.get("/w/" + ws + "/dead-letters")
	wantStatus(t, p, http.StatusOK)
	if n := p.testid("dead-row").Length(); n != 2 {
		t.Fatalf("%d dead rows", n)
	}
	p = d.get("/w/" + ws + "/dead-letters?connection_id=" + f.conn.ID)
	if n := p.testid("dead-row").Length(); n != 1 {
		t.Fatalf("filtered: %d dead rows", n)
	}
	if p := d.get("/w/" + ws + "/dead-letters?error_class=timeout"); p.testid("dead-row").Length() != 0 {
		t.Fatal("error class filter")
	}
	// Replay all that match a filter: a count, then a confirmation.
	p = d.get("/w/" + ws + "/dead-letters/replay-all?connection_id=" + f.conn.ID)
	wantStatus(t, p, http.StatusOK)
	if !strings.Contains(p.testid("replay-count").Text(), "1 delivery") {
		t.Fatalf("confirm: %q", p.testid("replay-count").Text())
	}
	env.Recorder.Reset()
	wantStatus(t, d.post("/w/"+ws+"/dead-letters/replay-all", url.Values{"connection_id": {f.conn.ID}}), http.StatusSeeOther)
	if got, _ := env.Store.DeliveryByID(context.Background(), ws, f.dead.ID); got.Status != db.DeliveryPending || len(env.Recorder.Deliveries()) != 1 {
		t.Fatalf("replay all: %s, %d queued", got.Status, len(env.Recorder.Deliveries()))
	}
	// Discard the other.
	d.get("/w/" + ws + "/dead-letters")
	wantStatus(t, d.post("/w/"+ws+"/dead-letters/discard", url.Values{"id": {f2.dead.ID}}), http.StatusSeeOther)
	if got, _ := env.Store.DeliveryByID(context.Background(), ws, f2.dead.ID); got.Status != db.DeliveryDiscarded {
		t.Fatalf("discard: %s", got.Status)
	}
	p = d.get("/w/" + ws + "/dead-letters")
	if p.testid("dead-empty").Length() != 1 || !strings.Contains(p.testid("flash").Text(), "Discarded 1") {
		t.Fatal("list after discard")
	}
	// Replay selected brings a discarded one back to work too.
	wantStatus(t, d.post("/w/"+ws+"/dead-letters/replay", url.Values{"id": {f2.dead.ID}}), http.StatusSeeOther)
	if got, _ := env.Store.DeliveryByID(context.Background(), ws, f2.dead.ID); got.Status != db.DeliveryPending {
		t.Fatalf("replay selected: %s", got.Status)
	}
}

func TestDashboardOverviewRulesWorkspaces(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{})
	d := newDash(t, env)
	ws := d.signup("ov@example.com", "W")
	f := seed(t, env.Store, ws, `{}`)
	p := d.get("/w/" + ws)
	wantStatus(t, p, http.StatusOK)
	for id, want := range map[string]string{"stat-events": "1", "stat-succeeded": "1", "stat-dead": "1", "stat-retrying": "1", "stat-rate": "50.0%"} {
		if got := strings.TrimSpace(p.testid(id).Text()); got != want {
			t.Errorf("%s = %q, want %q", id, got, want)
		}
	}
	if p.testid("chart").Length() != 1 || p.testid("chart-bar").Length() != 24 || p.testid("health-row").Length() != 1 {
		t.Fatal("chart or destination health missing")
	}
	p = d.get("/w/" + ws + "/rules")
	if p.testid("rule-row").Length() != 1 || !strings.Contains(p.testid("rules-curl").Text(), "/v1/rules") {
		t.Fatal("rules page")
	}
	wantStatus(t, d.post("/w/"+ws+"/rules/"+f.rule.ID+"/toggle", nil), http.StatusSeeOther)
	if r, _ := env.Store.RuleByID(context.Background(), ws, f.rule.ID); r.Enabled {
		t.Fatal("rule still enabled")
	}
	// A second workspace, and switching between them.
	d.get("/workspaces/new")
	p = d.post("/workspaces", url.Values{"name": {"Second"}})
	wantStatus(t, p, http.StatusSeeOther)
	p = d.get(p.location())
	if p.testid("current-workspace").Text() != "Second" || p.testid("workspace-option").Length() != 2 {
		t.Fatal("workspace switcher")
	}
	// / goes to the last workspace opened.
	d.get("/w/" + ws + "/events")
	if p := d.get("/"); p.location() != "/w/"+ws {
		t.Fatalf("/ → %q", p.location())
	}
	// Operators only: queues are 404 for a plain user.
	wantStatus(t, d.get("/admin/queues"), http.StatusNotFound)
	if err := env.Store.PromoteUser(context.Background(), "ov@example.com"); err != nil {
		t.Fatal(err)
	}
	if p := d.get("/admin/queues"); p.Status != http.StatusServiceUnavailable {
		t.Fatalf("admin without a queue monitor: %d", p.Status)
	}
	// Unknown pages are HTML, the API stays JSON.
	if p := d.get("/nope"); p.Status != http.StatusNotFound || p.testid("error-page").Length() != 1 {
		t.Fatal("HTML 404")
	}
	if res := env.Call(http.MethodGet, "/v1/nope", "", nil); !strings.HasPrefix(string(res.Body), `{"error"`) {
		t.Fatalf("API 404 is not JSON: %s", res.Body)
	}
}
