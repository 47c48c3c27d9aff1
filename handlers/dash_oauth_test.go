package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/handlers"
	"github.com/fanout-dev/fanout/handlers/apitest"
	"github.com/fanout-dev/fanout/jobs"
	"github.com/fanout-dev/fanout/jobs/connectors"
	"github.com/fanout-dev/fanout/jobs/connectors/fakes"
	"github.com/fanout-dev/fanout/web"
	"github.com/prometheus/client_golang/prometheus"
)

// oauthDash is the dashboard, as web mounts it, with HubSpot's OAuth app configured
// against a fake authorization server (and every other vendor's app left out), signed
// in as the owner of ws.
type oauthDash struct {
	*dash
	env  *apitest.Env
	auth *fakes.AuthServer
	ws   string
}

func newOAuthDash(t *testing.T) *oauthDash {
	t.Helper()
	env := apitest.New(t, apitest.Options{AllowPrivate: true})
	auth := fakes.NewAuthServer(t, fakes.AuthOptions{Flavor: fakes.FlavorHubSpot, ClientID: "hs-id", ClientSecret: "hs-secret"})
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	policy := connectors.ClientOptions{AllowPrivate: true}
	env.Handlers.Connectors = connectors.DefaultWithOAuth(policy, connectors.OAuthConfig{
		BaseURL: base, HTTPClient: connectors.NewHTTPClient(policy),
		HubSpot: connectors.OAuthApp{ClientID: "hs-id", ClientSecret: "hs-secret", AuthURL: auth.URL + fakes.HubSpotAuthorizePath,
			TokenURL: auth.URL + fakes.HubSpotTokenPath, MetadataURL: auth.URL + fakes.HubSpotMetadataPath},
	})
	flow, err := handlers.NewOAuthFlow(env.Handlers, bytes.Repeat([]byte{9}, 32), bytes.Repeat([]byte{10}, 32))
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = web.New(web.Config{Log: env.Handlers.Log, Registry: prometheus.NewRegistry(), BaseURL: base, OAuth: flow}, env.Handlers)
	srv.Start()
	t.Cleanup(srv.Close)
	d := newDashOn(t, env, srv)
	return &oauthDash{dash: d, env: env, auth: auth, ws: d.signup("owner@example.com", "Acme")}
}

// connect runs the connect flow as a browser does (start, the vendor's approval, the
// return relay, the callback) and returns the page it ends on.
func (o *oauthDash) connect(start string) *page {
	o.t.Helper()
	p := o.get(start)
	wantStatus(o.t, p, http.StatusFound)
	back := fakes.Approve(o.t, p.location())
	p = o.get(back.RequestURI())
	for i := 0; i < 3 && p.Status == http.StatusSeeOther; i++ {
		p = o.get(p.location())
	}
	wantStatus(o.t, p, http.StatusOK)
	return p
}

// connection stores a connection as the API does.
func (o *oauthDash) connection(kind, name string, config any, creds connectors.Credentials) *db.Connection {
	o.t.Helper()
	raw, _ := json.Marshal(config)
	conn, _, err := o.env.Handlers.NewConnection(context.Background(), o.ws, kind, name, raw, creds)
	if err != nil {
		o.t.Fatal(err)
	}
	return conn
}

func (o *oauthDash) needsReconnect(conn *db.Connection, note string) {
	o.t.Helper()
	if err := o.env.Store.SetConnectionStatus(context.Background(), o.ws, conn.ID, db.ConnectionNeedsReconnect, note); err != nil {
		o.t.Fatal(err)
	}
}

func href(p *page, testid string) string {
	v, _ := p.testid(testid).Attr("href")
	return v
}

func TestDashboardOAuthConnectButtons(t *testing.T) {
	t.Parallel()
	o := newOAuthDash(t)
	start := "/w/" + o.ws + "/connections/oauth/hubspot/start"

	// The picker: a connect button for HubSpot, whose app is configured, and for no other.
	p := o.get("/w/" + o.ws + "/connections/new")
	wantStatus(t, p, http.StatusOK)
	if got := href(p, "oauth-connect-hubspot"); got != start {
		t.Errorf("picker's HubSpot button goes to %q, want %q", got, start)
	}
	if n := p.find(`[data-testid^="oauth-connect-"]`).Length(); n != 1 {
		t.Errorf("%d connect buttons on the picker, want HubSpot's only", n)
	}
	if p.testid("kind-slack").Length() != 1 || p.testid("kind-hubspot").Find(`a[href$="?kind=hubspot"]`).Length() != 1 {
		t.Error("every kind stays reachable through its form")
	}

	// HubSpot's form leads with the button and keeps the token form.
	p = o.get("/w/" + o.ws + "/connections/new?kind=hubspot")
	if href(p, "oauth-connect") != start || !strings.Contains(p.testid("oauth-connect").Text(), "Connect HubSpot") {
		t.Errorf("HubSpot form: connect button %q %q", href(p, "oauth-connect"), p.testid("oauth-connect").Text())
	}
	if p.testid("connection-form").Length() != 1 || p.find("#f-cred_access_token").Length() != 1 || p.testid("oauth-hint").Length() != 0 {
		t.Error("HubSpot form: the token form is missing, or says OAuth is not set up")
	}

	// Slack and Mailchimp offer OAuth, but their apps are not configured here: the token
	// form, and the variables that would configure them.
	for _, kind := range []string{"slack", "mailchimp"} {
		p = o.get("/w/" + o.ws + "/connections/new?kind=" + kind)
		env := "FANOUT_" + strings.ToUpper(kind)
		hint := p.testid("oauth-hint").Text()
		if p.testid("oauth-connect").Length() != 0 || !strings.Contains(hint, env+"_CLIENT_ID") || !strings.Contains(hint, env+"_CLIENT_SECRET") ||
			!strings.Contains(hint, "/oauth/"+kind+"/callback") {
			t.Errorf("%s form: button %d, hint %q", kind, p.testid("oauth-connect").Length(), hint)
		}
		if p.testid("connection-form").Length() != 1 {
			t.Errorf("%s form: no token form", kind)
		}
	}
	// Kinds without OAuth say nothing about it.
	p = o.get("/w/" + o.ws + "/connections/new?kind=webhook")
	if p.testid("oauth-hint").Length()+p.testid("oauth-connect").Length() != 0 {
		t.Error("webhook form mentions OAuth")
	}
	// The empty connections list offers the one-click connect too.
	if p = o.get("/w/" + o.ws + "/connections"); href(p, "empty-connect-hubspot") != start || p.find(`[data-testid^="empty-connect-"]`).Length() != 1 {
		t.Errorf("empty list: connect buttons %d", p.find(`[data-testid^="empty-connect-"]`).Length())
	}

	// A viewer cannot start the flow, and is offered no button.
	viewer := newDashOn(t, o.env, o.srv)
	viewer.signup("viewer@example.com", "Own")
	u, err := o.env.Store.UserByEmail(context.Background(), "viewer@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := o.env.Store.AddMember(context.Background(), o.ws, u.ID, db.RoleViewer); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/connections/new", "/connections/new?kind=hubspot", "/connections"} {
		p := viewer.get("/w/" + o.ws + path)
		wantStatus(t, p, http.StatusOK)
		if n := p.find(`[data-testid^="oauth-connect"], [data-testid^="empty-connect-"]`).Length(); n != 0 {
			t.Errorf("viewer sees %d connect buttons on %s", n, path)
		}
	}

	// Without any configured app, no kind has a button; HubSpot's form has the hint.
	plain := apitest.New(t, apitest.Options{})
	d := newDash(t, plain)
	ws := d.signup("plain@example.com", "Plain")
	if p := d.get("/w/" + ws + "/connections/new"); p.find(`[data-testid^="oauth-connect-"]`).Length() != 0 {
		t.Error("a connect button without a configured app")
	}
	if p := d.get("/w/" + ws + "/connections/new?kind=hubspot"); p.testid("oauth-connect").Length() != 0 || p.testid("oauth-hint").Length() != 1 {
		t.Error("HubSpot form without a configured app")
	}
}

func TestDashboardOAuthBanners(t *testing.T) {
	t.Parallel()
	o := newOAuthDash(t)
	ctx := context.Background()

	// The flow ends on the connections page, with a banner naming the account.
	p := o.connect("/w/" + o.ws + "/connections/oauth/hubspot/start")
	cs, _ := o.env.Store.ListConnections(ctx, o.ws)
	if len(cs) != 1 {
		t.Fatalf("%d connections", len(cs))
	}
	hub := cs[0]
	if p.testid("oauth-connected").Length() != 1 || p.testid("connected-account").Text() != "acme.example.com" {
		t.Fatalf("connected banner: %q", p.testid("oauth-connected").Text())
	}
	if href(p, "connected-view") != "/w/"+o.ws+"/connections/"+hub.ID || p.testid("oauth-error").Length() != 0 {
		t.Error("connected banner's link, or a stray error banner")
	}
	if row := p.find(`[data-testid="connection-row"][data-id="` + hub.ID + `"]`); row.AttrOr("data-status", "") != db.ConnectionActive {
		t.Error("the new connection is not listed as active")
	}
	p = o.get("/w/" + o.ws + "/connections/" + hub.ID)
	if p.testid("connection-account").Text() != "acme.example.com" || !strings.Contains(p.Body, "62515") {
		t.Errorf("detail page account %q", p.testid("connection-account").Text())
	}
	// The plain list, and a connected id of no connection here, show no banner.
	for _, q := range []string{"", "?connected=con_nope", "?connected=" + url.QueryEscape(`"><script>x</script>`)} {
		if p := o.get("/w/" + o.ws + "/connections" + q); p.testid("oauth-connected").Length()+p.testid("oauth-error").Length() != 0 {
			t.Errorf("%q: a banner", q)
		}
	}

	// Errors: a human message per code; anything that is not a short code is not echoed.
	for code, want := range map[string]string{
		"access_denied":   "cancelled or declined",
		"exchange_failed": "could not be exchanged",
		"invalid_scope":   "permissions",
		"some_new_code":   "answered with an error",
	} {
		p := o.get("/w/" + o.ws + "/connections?oauth_error=" + code)
		if !strings.Contains(p.testid("oauth-error-message").Text(), want) || p.testid("oauth-error-code").Text() != code {
			t.Errorf("%s: %q (code %q)", code, p.testid("oauth-error-message").Text(), p.testid("oauth-error-code").Text())
		}
	}
	hostile := `<img src=x onerror=alert(1)>` + strings.Repeat("a", 100)
	p = o.get("/w/" + o.ws + "/connections?oauth_error=" + url.QueryEscape(hostile))
	if p.testid("oauth-error-code").Text() != "unknown" || strings.Contains(p.Body, "onerror") || strings.Contains(p.Body, "aaaaaaaaaa") {
		t.Errorf("hostile code shown as %q", p.testid("oauth-error-code").Text())
	}

	// A connection that lost access: a banner on the list and on its page, naming the
	// account and the reason, with Reconnect (start with connection_id).
	o.needsReconnect(hub, "HubSpot answered 401: the access token was revoked.")
	reconnect := "/w/" + o.ws + "/connections/oauth/hubspot/start?connection_id=" + hub.ID
	for _, path := range []string{"/connections", "/connections/" + hub.ID} {
		p := o.get("/w/" + o.ws + path)
		banner := p.testid("reconnect-banner")
		text := strings.Join(strings.Fields(banner.Text()), " ")
		if banner.Length() != 1 || !strings.Contains(text, "Fanout lost access to acme.example.com: HubSpot answered 401: the access token was revoked. Deliveries are waiting and will resume once reconnected.") {
			t.Errorf("%s: banner %q", path, text)
		}
		if href(p, "reconnect") != reconnect {
			t.Errorf("%s: reconnect goes to %q", path, href(p, "reconnect"))
		}
		if p.testid("credentials-form").Length() != 0 {
			t.Errorf("%s: a credentials form for an OAuth connection", path)
		}
	}
	if p := o.get("/w/" + o.ws + "/connections"); href(p, "row-reconnect") != reconnect {
		t.Error("the list row has no Reconnect")
	}
	// Reconnecting clears the banner.
	p = o.connect(reconnect)
	if p.testid("oauth-connected").Length() != 1 || p.testid("reconnect-banner").Length() != 0 {
		t.Error("after the reconnect")
	}
	if c, _ := o.env.Store.ConnectionByID(ctx, o.ws, hub.ID); c.Status != db.ConnectionActive {
		t.Errorf("connection %s after the reconnect", c.Status)
	}

	// A token kind (Mailchimp's app is not configured) reconnects with its credentials
	// form, which replaces the credentials and resumes the connection.
	mc := o.connection("mailchimp", "Newsletter", nil, connectors.Credentials{"api_key": "0123456789abcdef-us6"})
	o.needsReconnect(mc, "Mailchimp answered 401 API Key Invalid")
	p = o.get("/w/" + o.ws + "/connections")
	if href(p, "reconnect") != "/w/"+o.ws+"/connections/"+mc.ID+"#credentials" {
		t.Errorf("list: token kind's action goes to %q", href(p, "reconnect"))
	}
	p = o.get("/w/" + o.ws + "/connections/" + mc.ID)
	if p.testid("reconnect").Length() != 0 || p.testid("credentials-form").Length() != 1 || p.find("#f-cred_api_key").Length() != 1 {
		t.Fatal("token kind's page: no credentials form")
	}
	if !strings.Contains(p.testid("oauth-hint").Text(), "FANOUT_MAILCHIMP_CLIENT_ID") {
		t.Error("token kind's page: no hint about OAuth")
	}
	wantStatus(t, o.post("/w/"+o.ws+"/connections/"+mc.ID+"/credentials", url.Values{"cred_api_key": {""}}), http.StatusUnprocessableEntity)
	p = o.post("/w/"+o.ws+"/connections/"+mc.ID+"/credentials", url.Values{"cred_api_key": {"not-a-key"}})
	wantStatus(t, p, http.StatusUnprocessableEntity)
	if p.testid("credentials-form").Length() != 1 || p.testid("error-cred_api_key").Length()+p.testid("credentials-error").Length() == 0 {
		t.Errorf("invalid key: no error shown: %s", p.testid("credentials-card").Text())
	}
	wantStatus(t, o.post("/w/"+o.ws+"/connections/"+mc.ID+"/credentials", url.Values{"cred_api_key": {"fedcba9876543210-us6"}}), http.StatusSeeOther)
	c, _ := o.env.Store.ConnectionByID(ctx, o.ws, mc.ID)
	creds, _ := jobs.OpenCredentials(o.env.Keyring, c)
	if c.Status != db.ConnectionActive || c.StatusNote != "" || creds["api_key"] != "fedcba9876543210-us6" {
		t.Errorf("after new credentials: %s %q %v", c.Status, c.StatusNote, creds)
	}
	if p := o.get("/w/" + o.ws + "/connections/" + mc.ID); p.testid("reconnect-banner").Length() != 0 || p.testid("flash").Length() != 1 {
		t.Error("after new credentials: banner still shown, or no flash")
	}
}

// TestDashboardOAuthAccountIsText: the account name comes from the vendor; wherever it
// shows (the connected banner, the reconnect banner, the list, the connection page) it
// is text, as is the status note.
func TestDashboardOAuthAccountIsText(t *testing.T) {
	t.Parallel()
	o := newOAuthDash(t)
	account := `<img src=x onerror=alert(1)><script>alert(2)</script>`
	note := `<b hx-get="/x" hx-trigger="load">401</b>`
	conn := o.connection("hubspot", "CRM", map[string]string{"account_id": `"><svg onload=alert(3)>`, "account_name": account},
		connectors.Credentials{"access_token": "pat-1"})
	o.needsReconnect(conn, note)
	pages := map[string]*page{
		"list":   o.get("/w/" + o.ws + "/connections?connected=" + conn.ID),
		"detail": o.get("/w/" + o.ws + "/connections/" + conn.ID),
	}
	for name, p := range pages {
		wantStatus(t, p, http.StatusOK)
		for _, raw := range []string{"<img src=x", "<script>alert", "<svg onload", "<b hx-get"} {
			if strings.Contains(p.Body, raw) {
				t.Errorf("%s: %q is not escaped", name, raw)
			}
		}
		if got := p.testid("reconnect-account").Text(); got != account {
			t.Errorf("%s: reconnect banner names %q", name, got)
		}
		if got := p.testid("reconnect-note").Text(); got != note {
			t.Errorf("%s: note %q", name, got)
		}
		if p.find("[hx-get]").Length() != 0 {
			t.Errorf("%s: an hx-get attribute came from data", name)
		}
	}
	if got := pages["list"].testid("connected-account").Text(); got != account {
		t.Errorf("connected banner names %q", got)
	}
	if got := pages["list"].testid("connection-account").Text(); got != account {
		t.Errorf("list names %q", got)
	}
	if got := pages["detail"].testid("connection-account").Text(); got != account {
		t.Errorf("detail names %q", got)
	}
}
