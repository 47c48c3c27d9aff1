package handlers_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/db/secrets"
	"github.com/fanout-dev/fanout/handlers"
	"github.com/fanout-dev/fanout/handlers/apitest"
	"github.com/fanout-dev/fanout/jobs"
	"github.com/fanout-dev/fanout/jobs/connectors"
	"github.com/fanout-dev/fanout/jobs/connectors/fakes"
	"github.com/labstack/echo/v4"
)

// oauthEnv is the application with OAuth configured for HubSpot and Slack against fake
// authorization servers, and the flow mounted as web mounts it: the return route at the
// root, start and callback under /w/:workspace, where a stand-in for the dashboard's
// middleware sets the identity (user from X-User, role from X-Role).
type oauthEnv struct {
	t       *testing.T
	app     *apitest.Env
	echo    *echo.Echo
	hubspot *fakes.AuthServer
	slack   *fakes.AuthServer
}

const oauthBase = "https://fanout.test"

func newOAuthEnv(t *testing.T) *oauthEnv {
	t.Helper()
	env := &oauthEnv{t: t, app: apitest.New(t, apitest.Options{AllowPrivate: true})}
	env.hubspot = fakes.NewAuthServer(t, fakes.AuthOptions{Flavor: fakes.FlavorHubSpot, ClientID: "hs-id", ClientSecret: "hs-secret"})
	env.slack = fakes.NewAuthServer(t, fakes.AuthOptions{Flavor: fakes.FlavorSlack, ClientID: "sl-id", ClientSecret: "sl-secret", AccountID: "T0TEAM", AccountName: "Acme"})
	policy := connectors.ClientOptions{AllowPrivate: true}
	cfg := connectors.OAuthConfig{
		BaseURL:    oauthBase,
		HTTPClient: connectors.NewHTTPClient(policy),
		HubSpot: connectors.OAuthApp{ClientID: "hs-id", ClientSecret: "hs-secret", AuthURL: env.hubspot.URL + fakes.HubSpotAuthorizePath,
			TokenURL: env.hubspot.URL + fakes.HubSpotTokenPath, MetadataURL: env.hubspot.URL + fakes.HubSpotMetadataPath},
		Slack: connectors.OAuthApp{ClientID: "sl-id", ClientSecret: "sl-secret", AuthURL: env.slack.URL + fakes.SlackAuthorizePath,
			TokenURL: env.slack.URL + fakes.SlackTokenPath},
	}
	h := env.app.Handlers
	h.Connectors = connectors.DefaultWithOAuth(policy, cfg)
	flow, err := handlers.NewOAuthFlow(h, bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32))
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		if ae, ok := handlers.AsError(err); ok {
			_ = c.JSON(ae.Status, map[string]any{"error": ae})
			return
		}
		t.Errorf("unexpected error: %v", err)
		_ = c.NoContent(http.StatusInternalServerError)
	}
	e.GET(handlers.OAuthReturnRoute, flow.Return)
	g := e.Group("/w/:workspace", func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			user, role := c.Request().Header.Get("X-User"), c.Request().Header.Get("X-Role")
			if user == "" {
				user = "usr_owner"
			}
			if role == "" {
				role = db.RoleOwner
			}
			handlers.SetIdentity(c, &handlers.Identity{WorkspaceID: c.Param("workspace"), User: &db.User{ID: user}, Role: role})
			return next(c)
		}
	})
	g.GET("/connections/oauth/:kind/start", flow.Start)
	g.GET("/connections/oauth/:kind/callback", flow.Callback)
	env.echo = e
	return env
}

// get sends a GET with cookies and headers (name, value pairs) and records the answer.
func (env *oauthEnv) get(target string, cookies []*http.Cookie, header ...string) *httptest.ResponseRecorder {
	env.t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	env.echo.ServeHTTP(rec, req)
	return rec
}

// flow is one browser's connect flow, as far as it got.
type flow struct {
	authURL *url.URL       // where start sent the browser
	cookies []*http.Cookie // the flow cookie
	back    *url.URL       // where the vendor sent it back (the registered redirect URI)
}

// start runs start and the vendor's consent page.
func (env *oauthEnv) start(ws, kind, query string, header ...string) flow {
	env.t.Helper()
	rec := env.get("/w/"+ws+"/connections/oauth/"+kind+"/start"+query, nil, header...)
	if rec.Code != http.StatusFound {
		env.t.Fatalf("start: %d %s", rec.Code, rec.Body)
	}
	f := flow{cookies: rec.Result().Cookies()}
	f.authURL, _ = url.Parse(rec.Header().Get("Location"))
	f.back = fakes.Approve(env.t, f.authURL.String())
	return f
}

// finish follows the vendor's redirect through the return route to the callback, and
// returns the callback's answer.
func (env *oauthEnv) finish(f flow, header ...string) *httptest.ResponseRecorder {
	env.t.Helper()
	if got := f.back.Scheme + "://" + f.back.Host; got != oauthBase {
		env.t.Fatalf("the vendor redirected to %s, not to the registered redirect URI", f.back)
	}
	rec := env.get(f.back.RequestURI(), f.cookies)
	if rec.Code != http.StatusSeeOther {
		env.t.Fatalf("return: %d %s", rec.Code, rec.Body)
	}
	return env.get(rec.Header().Get("Location"), f.cookies, header...)
}

func (env *oauthEnv) connections(ws string) []*db.Connection {
	env.t.Helper()
	cs, err := env.app.Store.ListConnections(context.Background(), ws)
	if err != nil {
		env.t.Fatal(err)
	}
	return cs
}

func expectErrorCode(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	var body struct {
		Error struct{ Code string }
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	if rec.Code != status || body.Error.Code != code {
		t.Errorf("got %d %s, want %d %s", rec.Code, rec.Body, status, code)
	}
}

func TestOAuthConnectHubSpot(t *testing.T) {
	t.Parallel()
	env := newOAuthEnv(t)
	ws := env.app.Workspace().ID

	f := env.start(ws, "hubspot", "")
	q := f.authURL.Query()
	if q.Get("client_id") != "hs-id" || q.Get("redirect_uri") != oauthBase+"/oauth/hubspot/callback" || len(q.Get("state")) < 40 {
		t.Errorf("authorize URL %s", f.authURL)
	}
	if len(f.cookies) != 1 {
		t.Fatalf("cookies %v", f.cookies)
	}
	ck := f.cookies[0]
	if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.MaxAge != 600 || ck.Path != "/" {
		t.Errorf("flow cookie %+v", ck)
	}
	if plain, _ := base64.URLEncoding.DecodeString(ck.Value); bytes.Contains(plain, []byte(ws)) || strings.Contains(ck.Value, ws) {
		t.Error("the flow cookie is readable: it must be encrypted")
	}

	rec := env.finish(f)
	cs := env.connections(ws)
	if len(cs) != 1 {
		t.Fatalf("%d connections", len(cs))
	}
	conn := cs[0]
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/w/"+ws+"/connections?connected="+conn.ID {
		t.Errorf("callback: %d to %q", rec.Code, rec.Header().Get("Location"))
	}
	if c := rec.Result().Cookies(); len(c) != 1 || c[0].MaxAge >= 0 {
		t.Errorf("the flow cookie is not cleared: %v", c)
	}
	if conn.Kind != "hubspot" || conn.Status != db.ConnectionActive || conn.Name != "HubSpot (acme.example.com)" {
		t.Errorf("connection %+v", conn)
	}
	var cfg map[string]string
	_ = json.Unmarshal(conn.Config, &cfg)
	if cfg["account_id"] != "62515" || cfg["account_name"] != "acme.example.com" {
		t.Errorf("config %s", conn.Config)
	}
	creds, err := jobs.OpenCredentials(env.app.Keyring, conn)
	if err != nil {
		t.Fatal(err)
	}
	access := creds[connectors.CredAccessToken]
	if env.hubspot.Tokens().Check(access) != fakes.TokenValid || creds[connectors.CredRefreshToken] == "" || creds[connectors.CredExpiresAt] == "" {
		t.Errorf("credentials %v", creds)
	}
	for _, secret := range []string{access, creds[connectors.CredRefreshToken]} {
		if bytes.Contains(conn.Credentials, []byte(secret)) {
			t.Error("a token is stored in clear")
		}
	}
	tok := env.hubspot.Calls(http.MethodPost, fakes.HubSpotTokenPath)
	if len(tok) != 1 || !strings.Contains(string(tok[0].Body), "redirect_uri="+url.QueryEscape(oauthBase+"/oauth/hubspot/callback")) {
		t.Errorf("token requests %+v", tok)
	}

	// A moved ciphertext does not open: credentials are bound to their row.
	other, _, err := env.app.Handlers.NewConnection(context.Background(), ws, "hubspot", "other", nil, connectors.Credentials{connectors.CredAccessToken: "pat-other"})
	if err != nil {
		t.Fatal(err)
	}
	other.Credentials = conn.Credentials
	if err := env.app.Store.UpdateConnection(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	other, _ = env.app.Store.ConnectionByID(context.Background(), ws, other.ID)
	if _, err := jobs.OpenCredentials(env.app.Keyring, other); !errors.Is(err, secrets.ErrDecrypt) {
		t.Errorf("moved credentials opened: %v", err)
	}
	if _, err := jobs.OpenCredentials(env.app.Keyring, conn); err != nil {
		t.Errorf("the original no longer opens: %v", err)
	}

	// Connecting the same portal again updates that connection instead of adding one.
	rec = env.finish(env.start(ws, "hubspot", ""))
	if cs := env.connections(ws); len(cs) != 2 || rec.Header().Get("Location") != "/w/"+ws+"/connections?connected="+conn.ID {
		t.Errorf("reconnect made %d connections, went to %q", len(cs), rec.Header().Get("Location"))
	}
}

func TestOAuthStateIsChecked(t *testing.T) {
	t.Parallel()
	env := newOAuthEnv(t)
	ws := env.app.Workspace().ID
	otherWS := env.app.Workspace().ID

	t.Run("a state given to start is ignored", func(t *testing.T) {
		f := env.start(ws, "hubspot", "?state=attacker-chosen")
		if st := f.authURL.Query().Get("state"); st == "attacker-chosen" || st == "" {
			t.Fatalf("state %q", st)
		}
		// The attacker's state does not pass the callback either.
		back := *f.back
		q := back.Query()
		q.Set("state", "attacker-chosen")
		back.RawQuery = q.Encode()
		f.back = &back
		expectErrorCode(t, env.finish(f), http.StatusBadRequest, "oauth_state")
	})
	t.Run("missing cookie", func(t *testing.T) {
		f := env.start(ws, "hubspot", "")
		rec := env.get(f.back.RequestURI(), nil)
		expectErrorCode(t, rec, http.StatusBadRequest, "oauth_state")
		rec = env.get("/w/"+ws+"/connections/oauth/hubspot/callback?"+f.back.RawQuery, nil)
		expectErrorCode(t, rec, http.StatusBadRequest, "oauth_state")
	})
	t.Run("forged cookie", func(t *testing.T) {
		f := env.start(ws, "hubspot", "")
		forged := *f.cookies[0]
		forged.Value = forged.Value[:len(forged.Value)-4] + "AAAA"
		rec := env.get("/w/"+ws+"/connections/oauth/hubspot/callback?"+f.back.RawQuery, []*http.Cookie{&forged})
		expectErrorCode(t, rec, http.StatusBadRequest, "oauth_state")
	})
	t.Run("missing state", func(t *testing.T) {
		f := env.start(ws, "hubspot", "")
		q := f.back.Query()
		q.Del("state")
		rec := env.get("/w/"+ws+"/connections/oauth/hubspot/callback?"+q.Encode(), f.cookies)
		expectErrorCode(t, rec, http.StatusBadRequest, "oauth_state")
	})
	t.Run("another kind's cookie", func(t *testing.T) {
		f := env.start(ws, "hubspot", "")
		moved := *f.cookies[0]
		moved.Name = "fanout_oauth_slack"
		rec := env.get("/w/"+ws+"/connections/oauth/slack/callback?"+f.back.RawQuery, []*http.Cookie{&moved})
		expectErrorCode(t, rec, http.StatusBadRequest, "oauth_state")
	})
	t.Run("another workspace or user", func(t *testing.T) {
		f := env.start(ws, "hubspot", "")
		rec := env.get("/w/"+otherWS+"/connections/oauth/hubspot/callback?"+f.back.RawQuery, f.cookies)
		expectErrorCode(t, rec, http.StatusForbidden, "oauth_state")
		rec = env.get("/w/"+ws+"/connections/oauth/hubspot/callback?"+f.back.RawQuery, f.cookies, "X-User", "usr_someone_else")
		expectErrorCode(t, rec, http.StatusForbidden, "oauth_state")
	})
	if n := len(env.hubspot.Calls(http.MethodPost, fakes.HubSpotTokenPath)); n != 0 {
		t.Errorf("%d codes were exchanged for rejected callbacks", n)
	}
	if len(env.connections(ws))+len(env.connections(otherWS)) != 0 {
		t.Error("a rejected callback stored a connection")
	}

	t.Run("a replayed callback does not connect twice", func(t *testing.T) {
		f := env.start(ws, "hubspot", "")
		if rec := env.finish(f); rec.Code != http.StatusSeeOther || !strings.Contains(rec.Header().Get("Location"), "connected=") {
			t.Fatalf("first callback %d %s", rec.Code, rec.Header().Get("Location"))
		}
		rec := env.finish(f) // the same cookie and code again
		if loc := rec.Header().Get("Location"); !strings.HasSuffix(loc, "/connections?oauth_error=exchange_failed") {
			t.Errorf("replay went to %q", loc)
		}
		if n := len(env.connections(ws)); n != 1 {
			t.Errorf("%d connections", n)
		}
	})
}

func TestOAuthSlackPKCEAndDenial(t *testing.T) {
	t.Parallel()
	env := newOAuthEnv(t)
	ws := env.app.Workspace().ID

	env.slack.Deny(true)
	rec := env.finish(env.start(ws, "slack", ""))
	if loc := rec.Header().Get("Location"); loc != "/w/"+ws+"/connections?oauth_error=access_denied" {
		t.Errorf("denied: %d to %q", rec.Code, loc)
	}
	env.slack.Deny(false)

	f := env.start(ws, "slack", "")
	q := f.authURL.Query()
	if q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256" || q.Get("scope") != "chat:write,chat:write.public,channels:read,groups:read" {
		t.Errorf("authorize URL %s", f.authURL)
	}
	rec = env.finish(f)
	if rec.Code != http.StatusSeeOther || !strings.Contains(rec.Header().Get("Location"), "connected=") {
		t.Fatalf("callback %d %s", rec.Code, rec.Header().Get("Location"))
	}
	tok := env.slack.Calls(http.MethodPost, fakes.SlackTokenPath)
	if len(tok) != 1 || !strings.Contains(string(tok[0].Body), "code_verifier=") {
		t.Errorf("token request without the PKCE verifier: %+v", tok)
	}
	cs := env.connections(ws)
	creds, _ := jobs.OpenCredentials(env.app.Keyring, cs[0])
	if cs[0].Name != "Slack (Acme)" || env.slack.Tokens().Check(creds[connectors.CredBotToken]) != fakes.TokenValid {
		t.Errorf("connection %s, credentials %v", cs[0].Name, creds)
	}
}

func TestOAuthReconnectsConnection(t *testing.T) {
	t.Parallel()
	env := newOAuthEnv(t)
	ws := env.app.Workspace().ID
	ctx := context.Background()
	conn, _, err := env.app.Handlers.NewConnection(ctx, ws, "hubspot", "CRM", json.RawMessage(`{"api_base":"http://127.0.0.1:9","account_id":"old"}`),
		connectors.Credentials{connectors.CredAccessToken: "revoked-token"})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.app.Store.SetConnectionStatus(ctx, ws, conn.ID, db.ConnectionNeedsReconnect, "401"); err != nil {
		t.Fatal(err)
	}

	rec := env.finish(env.start(ws, "hubspot", "?connection_id="+conn.ID))
	if loc := rec.Header().Get("Location"); loc != "/w/"+ws+"/connections?connected="+conn.ID {
		t.Fatalf("callback %d to %q", rec.Code, loc)
	}
	cs := env.connections(ws)
	got := cs[0]
	if len(cs) != 1 || got.Status != db.ConnectionActive || got.StatusNote != "" || got.Name != "CRM" {
		t.Errorf("connection %+v", got)
	}
	var cfg map[string]string
	_ = json.Unmarshal(got.Config, &cfg)
	if cfg["api_base"] != "http://127.0.0.1:9" || cfg["account_id"] != "62515" {
		t.Errorf("config %s: the user's api_base stays, the account is updated", got.Config)
	}
	creds, _ := jobs.OpenCredentials(env.app.Keyring, got)
	if creds[connectors.CredAccessToken] == "revoked-token" || creds[connectors.CredRefreshToken] == "" {
		t.Errorf("credentials %v", creds)
	}

	for query, status := range map[string]int{"?connection_id=conn_nope": http.StatusNotFound} {
		rec := env.get("/w/"+ws+"/connections/oauth/hubspot/start"+query, nil)
		if rec.Code != status {
			t.Errorf("start%s: %d %s", query, rec.Code, rec.Body)
		}
	}
	hook, _, err := env.app.Handlers.NewConnection(ctx, ws, "webhook", "hook", json.RawMessage(`{"url":"https://93.184.215.14/x"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	rec = env.get("/w/"+ws+"/connections/oauth/hubspot/start?connection_id="+hook.ID, nil)
	expectErrorCode(t, rec, http.StatusUnprocessableEntity, "invalid")
}

func TestOAuthStartRefusals(t *testing.T) {
	t.Parallel()
	env := newOAuthEnv(t)
	ws := env.app.Workspace().ID
	expectErrorCode(t, env.get("/w/"+ws+"/connections/oauth/mailchimp/start", nil), http.StatusNotFound, "oauth_not_configured")
	expectErrorCode(t, env.get("/w/"+ws+"/connections/oauth/webhook/start", nil), http.StatusNotFound, "oauth_not_configured")
	expectErrorCode(t, env.get("/w/"+ws+"/connections/oauth/hubspot/start", nil, "X-Role", db.RoleViewer), http.StatusForbidden, "forbidden")
	if kinds := env.app.Handlers.OAuthKinds(); !slices.Equal(kinds, []string{"hubspot", "slack"}) {
		t.Errorf("OAuthKinds %v", kinds)
	}
	if len(env.hubspot.Requests()) != 0 {
		t.Error("a refused start reached the vendor")
	}
}

func TestNewOAuthFlowKeys(t *testing.T) {
	t.Parallel()
	h := &handlers.Handlers{}
	for name, keys := range map[string][][]byte{
		"none":        nil,
		"odd":         {make([]byte, 32)},
		"short hash":  {make([]byte, 16), make([]byte, 32)},
		"short block": {make([]byte, 32), make([]byte, 16)},
	} {
		if _, err := handlers.NewOAuthFlow(h, keys...); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := handlers.NewOAuthFlow(h, make([]byte, 64), make([]byte, 32), make([]byte, 32), make([]byte, 32)); err != nil {
		t.Error(err)
	}
}
