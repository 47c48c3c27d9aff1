package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/handlers"
	"github.com/fanout-dev/fanout/handlers/apitest"
	"github.com/fanout-dev/fanout/jobs"
	"github.com/fanout-dev/fanout/jobs/connectors"
	"github.com/fanout-dev/fanout/jobs/connectors/fakes"
	"github.com/fanout-dev/fanout/jobs/jobstest"
	"github.com/fanout-dev/fanout/web"
	"github.com/prometheus/client_golang/prometheus"
)

// oauthRedisDB is the Redis database of TestBrowserOAuthConnect's worker on a real server
// (see jobstest.Redis); the package's other browser test uses redisDB.
const oauthRedisDB = 6

// TestBrowserOAuthConnect connects HubSpot through OAuth in a real browser, against the
// whole application (web, a live worker, SQLite, Redis) with HubSpot's app configured
// against a fake authorization server that approves at once: the kind picker and the
// HubSpot form offer "Connect HubSpot", the flow comes back to the connections page with
// a banner naming the account, and the tokens are stored sealed. A refusal at the vendor
// comes back as an error banner. Then HubSpot revokes the tokens, a delivery fails with
// 401, the connection shows that it needs a reconnect, and "Reconnect" makes it active
// again and delivers the event that waited. Last, a token kind (Mailchimp, whose app is
// not configured) in the same state gets its credentials form.
func TestBrowserOAuthConnect(t *testing.T) {
	exe := chromium(t)
	ctx := context.Background()
	env := apitest.New(t, apitest.Options{AllowPrivate: true, Worker: true, RedisDB: oauthRedisDB})
	tokens := fakes.NewTokens()
	hubspot := fakes.NewHubSpot(t, tokens)
	auth := fakes.NewAuthServer(t, fakes.AuthOptions{Flavor: fakes.FlavorHubSpot, ClientID: "hs-id", ClientSecret: "hs-secret", Tokens: tokens})

	// The redirect URI is the dashboard's own URL, known once its listener exists.
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	policy := connectors.ClientOptions{AllowPrivate: true}
	reg := connectors.DefaultWithOAuth(policy, connectors.OAuthConfig{
		BaseURL: base, HTTPClient: connectors.NewHTTPClient(policy),
		HubSpot: connectors.OAuthApp{ClientID: "hs-id", ClientSecret: "hs-secret", AuthURL: auth.URL + fakes.HubSpotAuthorizePath,
			TokenURL: auth.URL + fakes.HubSpotTokenPath, MetadataURL: auth.URL + fakes.HubSpotMetadataPath},
	})
	// apitest's worker has no OAuth apps (it could not refresh): restart it with this
	// registry, swapped while it is stopped so no task reads the field as it changes.
	env.Worker.Stop()
	env.Worker.Engine.Connectors = reg
	worker, mux := jobs.NewServer(env.Worker.Redis, jobs.ServerConfig{Concurrency: 4, PollInterval: 10 * time.Millisecond, ScheduledInterval: 100 * time.Millisecond, ShutdownTimeout: 5 * time.Second}, env.Worker.Engine)
	if err := worker.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(worker.Shutdown)
	env.Handlers.Connectors = reg
	flow, err := handlers.NewOAuthFlow(env.Handlers, bytes.Repeat([]byte{5}, 32), bytes.Repeat([]byte{6}, 32))
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = web.New(web.Config{Log: env.Handlers.Log, Registry: prometheus.NewRegistry(), BaseURL: base, QueueRedis: env.Worker.Redis, OAuth: flow}, env.Handlers)
	srv.Start()
	t.Cleanup(srv.Close)
	b := newBrowser(t, exe, base)

	b.run("sign up", 20*time.Second,
		chromedp.Navigate(base+"/signup"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="signup-form"]`)),
		chromedp.SendKeys(chromedp.CSS("#f-email"), "grace@example.com"),
		chromedp.SendKeys(chromedp.CSS("#f-password"), "correct horse battery"),
		chromedp.SendKeys(chromedp.CSS("#f-workspace"), "Acme Inc"),
		chromedp.Click(chromedp.CSS(`[data-testid="signup-submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="stats"]`)),
	)
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.fail("location", err)
	}
	ws := strings.TrimPrefix(strings.TrimPrefix(loc, base), "/w/")
	if !strings.HasPrefix(ws, "ws_") {
		b.fail("workspace url", fmt.Errorf("landed on %s", loc))
	}
	wsURL := base + "/w/" + ws

	// The picker offers one-click connect for HubSpot only: Mailchimp's app is not set up.
	b.run("open the kind picker", 20*time.Second,
		chromedp.Navigate(wsURL+"/connections/new"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="oauth-connect-hubspot"]`)),
	)
	if b.eval(`document.querySelector('[data-testid="oauth-connect-mailchimp"]') === null`) != true {
		b.fail("kind picker", errors.New("Mailchimp offers OAuth connect without a configured app"))
	}
	b.review("oauth-kind-picker")
	b.run("open mailchimp", 20*time.Second,
		chromedp.Navigate(wsURL+"/connections/new?kind=mailchimp"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="oauth-hint"]`)),
	)
	if hint := b.text(`[data-testid="oauth-hint"]`); !strings.Contains(hint, "FANOUT_MAILCHIMP_CLIENT_ID") || !strings.Contains(hint, base+"/oauth/mailchimp/callback") {
		b.fail("mailchimp hint", fmt.Errorf("hint %q", hint))
	}
	b.review("oauth-not-configured-form")

	// A refusal at the vendor comes back as an error banner, and connects nothing.
	auth.Deny(true)
	b.run("connect, denied", 30*time.Second,
		chromedp.Navigate(wsURL+"/connections/new"),
		chromedp.Click(chromedp.CSS(`[data-testid="oauth-connect-hubspot"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="oauth-error"]`)),
	)
	auth.Deny(false)
	if code := b.text(`[data-testid="oauth-error-code"]`); code != "access_denied" {
		b.fail("error banner", fmt.Errorf("code %q", code))
	}
	b.review("oauth-denied")

	// Connections → New → HubSpot → Connect HubSpot: the fake approves and the browser
	// comes back to the connections page.
	b.run("pick hubspot", 20*time.Second,
		chromedp.Navigate(wsURL+"/connections/new"),
		chromedp.Click(chromedp.CSS(`[data-testid="kind-hubspot"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="oauth-panel"]`)),
	)
	b.review("oauth-hubspot-form")
	b.run("connect hubspot", 30*time.Second,
		chromedp.Click(chromedp.CSS(`[data-testid="oauth-connect"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="oauth-connected"]`)),
	)
	cs, err := env.Store.ListConnections(ctx, ws)
	if err != nil || len(cs) != 1 {
		t.Fatalf("connections %v %v", cs, err)
	}
	conn := cs[0]
	if loc, _ := chromedp.Run(b.ctx, chromedp.Location()); loc != wsURL+"/connections?connected="+conn.ID {
		b.fail("back on the connections page", fmt.Errorf("at %s", loc))
	}
	if acct := b.text(`[data-testid="connected-account"]`); acct != "acme.example.com" {
		b.fail("connected banner", fmt.Errorf("names %q", acct))
	}
	row := fmt.Sprintf(`[data-testid="connection-row"][data-id=%q][data-status="active"]`, conn.ID)
	if name := b.text(row + ` [data-testid="connection-link"]`); name != "HubSpot (acme.example.com)" {
		b.fail("connection row", fmt.Errorf("named %q", name))
	}
	b.review("oauth-connected")

	// The tokens are sealed: no column of the row holds them in clear.
	creds, err := jobs.OpenCredentials(env.Keyring, conn)
	if err != nil {
		t.Fatal(err)
	}
	access, refresh := creds[connectors.CredAccessToken], creds[connectors.CredRefreshToken]
	if tokens.Check(access) != fakes.TokenValid || refresh == "" {
		t.Fatalf("stored credentials do not hold the issued tokens")
	}
	row0, _ := json.Marshal(conn)
	for _, secret := range []string{access, refresh} {
		if bytes.Contains(conn.Credentials, []byte(secret)) || bytes.Contains(row0, []byte(secret)) {
			t.Error("a token is stored in clear")
		}
	}

	b.run("open the connection", 20*time.Second,
		chromedp.Navigate(wsURL+"/connections/"+conn.ID),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="connection-account"]`)),
	)
	if acct := b.text(`[data-testid="connection-account"]`); acct != "acme.example.com" {
		b.fail("account on the connection page", fmt.Errorf("%q", acct))
	}

	// HubSpot revokes the tokens (the app was uninstalled). The connection's next
	// delivery is refused, the refresh too, and the connection waits for a reconnect.
	// The connect flow names the account, not the API host: point it at the fake API.
	var cfg map[string]any
	_ = json.Unmarshal(conn.Config, &cfg)
	cfg["api_base"] = hubspot.URL
	conn.Config, _ = json.Marshal(cfg)
	if err := env.Store.UpdateConnection(ctx, conn); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{access, refresh} {
		res, err := http.PostForm(auth.URL+fakes.HubSpotRevokePath, url.Values{"token": {tok}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	key, _, err := env.Store.CreateAPIKey(ctx, ws, "browser test", db.ScopeAdmin)
	if err != nil {
		t.Fatal(err)
	}
	apiCall(t, http.MethodPost, base+"/v1/rules", key, map[string]any{
		"name": "Leads to HubSpot", "event_type": "lead.created",
		"actions": []any{map[string]any{"connection_id": conn.ID, "action": "hubspot.upsert_contact", "mapping": map[string]any{"email": "data.email"}}},
	})
	ev := apiCall(t, http.MethodPost, base+"/v1/events", key, map[string]any{"type": "lead.created", "data": map[string]any{"email": "ada@example.com"}})
	waitConnection(t, env.Store, ws, conn.ID, db.ConnectionNeedsReconnect)

	b.waitFor(wsURL+"/connections", `[data-testid="reconnect-banner"]`, 20*time.Second)
	if acct := b.text(`[data-testid="reconnect-account"]`); acct != "acme.example.com" {
		b.fail("reconnect banner", fmt.Errorf("names %q", acct))
	}
	if note := b.text(`[data-testid="reconnect-note"]`); note == "" {
		b.fail("reconnect banner", errors.New("no reason shown"))
	}
	b.review("oauth-needs-reconnect-list")
	b.run("open the parked connection", 20*time.Second,
		chromedp.Click(chromedp.CSS(`[data-testid="connection-link"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="reconnect"]`)),
	)
	b.review("oauth-needs-reconnect-detail")
	b.run("reconnect", 30*time.Second,
		chromedp.Click(chromedp.CSS(`[data-testid="reconnect"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="oauth-connected"]`)),
		chromedp.WaitVisible(chromedp.CSS(row)),
	)
	if b.eval(`document.querySelector('[data-testid="reconnect-banner"]') === null`) != true {
		b.fail("reconnected", errors.New("the reconnect banner is still shown"))
	}
	b.review("oauth-reconnected")
	ds, err := env.Store.EventDeliveries(ctx, ws, ev["id"].(string))
	if err != nil || len(ds) != 1 {
		t.Fatalf("deliveries %v %v", ds, err)
	}
	d := jobstest.WaitDelivery(t, env.Store, ws, ds[0].ID, 15*time.Second, db.DeliverySucceeded)
	if d.FailureCount != 0 {
		t.Errorf("the parked delivery counted %d failures", d.FailureCount)
	}
	if up := hubspot.Contact("ada@example.com"); up == nil {
		t.Error("the waiting event did not reach HubSpot after the reconnect")
	}

	// A token kind in the same state gets its credentials form on its page.
	mc, _, err := env.Handlers.NewConnection(ctx, ws, "mailchimp", "Newsletter", nil, connectors.Credentials{"api_key": "0123456789abcdef-us6"})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Store.SetConnectionStatus(ctx, ws, mc.ID, db.ConnectionNeedsReconnect, "Mailchimp answered 401 API Key Invalid: Your API key may be invalid, or you've attempted to access the wrong datacenter."); err != nil {
		t.Fatal(err)
	}
	b.run("open connections", 20*time.Second,
		chromedp.Navigate(wsURL+"/connections"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="reconnect-banner"]`)),
	)
	b.review("token-needs-reconnect-list")
	b.run("update credentials", 20*time.Second,
		chromedp.Click(chromedp.CSS(`[data-testid="reconnect"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="credentials-form"]`)),
	)
	b.eval("window.scrollTo(0, 0)") // the link scrolled to the form; review the whole page
	b.review("token-needs-reconnect-detail")
	b.run("save credentials", 20*time.Second,
		chromedp.SendKeys(chromedp.CSS("#f-cred_api_key"), "fedcba9876543210-us6"),
		chromedp.Click(chromedp.CSS(`[data-testid="credentials-submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="flash"]`)),
	)
	waitConnection(t, env.Store, ws, mc.ID, db.ConnectionActive)
}

// waitConnection polls until the connection has status, or fails the test.
func waitConnection(t *testing.T, s *db.Store, ws, id, status string) *db.Connection {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := s.ConnectionByID(context.Background(), ws, id)
		if err != nil {
			t.Fatal(err)
		}
		if c.Status == status {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection %s is %s (%s), want %s", id, c.Status, c.StatusNote, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
