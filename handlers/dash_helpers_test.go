package handlers_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/handlers/apitest"
)

// dash is a cookie-keeping client of the dashboard on a loopback test server. It keeps
// the CSRF token of the last page it loaded and sends it with every POST, as a browser
// would with the page's forms.
type dash struct {
	t    *testing.T
	env  *apitest.Env
	srv  *httptest.Server
	c    *http.Client
	csrf string
}

func newDash(t *testing.T, env *apitest.Env) *dash {
	t.Helper()
	srv := httptest.NewServer(env.Echo)
	t.Cleanup(srv.Close)
	return newDashOn(t, env, srv)
}

func newDashOn(t *testing.T, env *apitest.Env, srv *httptest.Server) *dash {
	jar, _ := cookiejar.New(nil)
	return &dash{t: t, env: env, srv: srv, c: &http.Client{
		Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

type page struct {
	t      *testing.T
	Status int
	Header http.Header
	Body   string
	Doc    *goquery.Document
}

func (p *page) find(sel string) *goquery.Selection { return p.Doc.Find(sel) }

func (p *page) testid(id string) *goquery.Selection { return p.Doc.Find(`[data-testid="` + id + `"]`) }

func (p *page) location() string { return p.Header.Get("Location") }

func (d *dash) do(req *http.Request) *page {
	d.t.Helper()
	res, err := d.c.Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(string(body)))
	if err != nil {
		d.t.Fatalf("parse %s: %v", req.URL.Path, err)
	}
	p := &page{t: d.t, Status: res.StatusCode, Header: res.Header, Body: string(body), Doc: doc}
	if tok, ok := doc.Find(`input[name="_csrf"]`).First().Attr("value"); ok && tok != "" {
		d.csrf = tok
	} else if hx, ok := doc.Find("body").Attr("hx-headers"); ok {
		var h map[string]string
		if json.Unmarshal([]byte(hx), &h) == nil && h["X-CSRF-Token"] != "" {
			d.csrf = h["X-CSRF-Token"]
		}
	}
	return p
}

func (d *dash) get(path string, header ...string) *page {
	d.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, d.srv.URL+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return d.do(req)
}

// post sends a form with the current CSRF token (unless the form has its own _csrf).
func (d *dash) post(path string, form url.Values, header ...string) *page {
	d.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["_csrf"]; !ok {
		form.Set("_csrf", d.csrf)
	}
	req, _ := http.NewRequest(http.MethodPost, d.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return d.do(req)
}

// signup creates an account with its first workspace and returns the workspace id.
func (d *dash) signup(email, workspace string) string {
	d.t.Helper()
	d.get("/signup")
	p := d.post("/signup", url.Values{"email": {email}, "password": {"correct horse battery"}, "workspace": {workspace}})
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.location(), "/w/ws_") {
		d.t.Fatalf("signup: %d %q %s", p.Status, p.location(), p.Body)
	}
	d.get(p.location()) // as a browser would: the next form carries the session's token
	return strings.TrimPrefix(p.location(), "/w/")
}

func (d *dash) login(email, password string) *page {
	d.t.Helper()
	d.get("/login")
	p := d.post("/login", url.Values{"email": {email}, "password": {password}})
	if p.Status == http.StatusSeeOther {
		d.get(p.location())
	}
	return p
}

func (d *dash) cookie(name string) *http.Cookie {
	u, _ := url.Parse(d.srv.URL)
	for _, c := range d.c.Jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func wantStatus(t *testing.T, p *page, want int) {
	t.Helper()
	if p.Status != want {
		body := p.Body
		if len(body) > 600 {
			body = body[:600]
		}
		t.Fatalf("status %d, want %d: %s", p.Status, want, body)
	}
}

// fixture seeds one connection, rule, event and delivery per status in a workspace.
type fixture struct {
	conn   *db.Connection
	rule   *db.Rule
	event  *db.Event
	dead   *db.Delivery
	ok     *db.Delivery
	retryD *db.Delivery
}

func seed(t *testing.T, s *db.Store, wsID string, data string) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{}
	f.conn = &db.Connection{WorkspaceID: wsID, Kind: "webhook", Name: "Orders hook", Config: json.RawMessage(`{"url":"https://example.com/hook"}`)}
	if err := s.CreateConnection(ctx, f.conn); err != nil {
		t.Fatal(err)
	}
	f.rule = &db.Rule{WorkspaceID: wsID, Name: "All orders", EventType: "order.*", Enabled: true,
		Actions: []*db.RuleAction{{ConnectionID: f.conn.ID, Action: "webhook.post", TimeoutMS: 1000}}}
	if err := s.CreateRule(ctx, f.rule); err != nil {
		t.Fatal(err)
	}
	ev, _, err := s.InsertEvent(ctx, &db.Event{WorkspaceID: wsID, Type: "order.created", Data: json.RawMessage(data)})
	if err != nil {
		t.Fatal(err)
	}
	f.event = ev
	ds, err := s.RouteEvent(ctx, wsID, ev.ID, []*db.Delivery{
		{RuleID: f.rule.ID, RuleActionID: f.rule.Actions[0].ID, ConnectionID: f.conn.ID},
		{RuleID: f.rule.ID, RuleActionID: "act_b", ConnectionID: f.conn.ID},
		{RuleID: f.rule.ID, RuleActionID: "act_c", ConnectionID: f.conn.ID},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.dead, f.ok, f.retryD = ds[0], ds[1], ds[2]
	rec := func(d *db.Delivery, status, outcome string, code int, excerpt string) {
		d.Status, d.AttemptCount = status, 1
		if status != db.DeliverySucceeded {
			d.LastError, d.LastErrorClass, d.LastStatusCode = "HTTP 400 from receiver", "http_4xx", code
		}
		if status == db.DeliveryRetrying {
			next := s.Now().Add(30 * time.Minute)
			d.NextAttemptAt = &next
		} else {
			d.NextAttemptAt = nil
		}
		if err := s.RecordAttempt(ctx, d, &db.Attempt{Number: 1, StartedAt: s.Now(), DurationMS: 42, StatusCode: code,
			ResponseExcerpt: excerpt, Outcome: outcome, ErrorClass: d.LastErrorClass, Request: "POST https://example.com/hook"}); err != nil {
			t.Fatal(err)
		}
	}
	rec(f.dead, db.DeliveryDead, "permanent", 400, `<img src=x onerror=alert(1)>`)
	rec(f.ok, db.DeliverySucceeded, "succeeded", 200, "ok")
	rec(f.retryD, db.DeliveryRetrying, "retry", 503, "busy")
	return f
}
