package web

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/db/dbtest"
	"github.com/fanout-dev/fanout/db/secrets"
	"github.com/fanout-dev/fanout/handlers"
	"github.com/fanout-dev/fanout/jobs/connectors"
	"github.com/fanout-dev/fanout/jobs/connectors/fakes"
	"github.com/fanout-dev/fanout/jobs/jobstest"
	"github.com/labstack/echo/v4"
)

// TestOAuthRoutes runs the connect flow through oauthRoutes and oauthReturnRoute as
// mounted here: the vendor returns to the fixed redirect URI, which relays to the
// workspace's callback. A stand-in for requireMember sets the identity.
func TestOAuthRoutes(t *testing.T) {
	t.Parallel()
	store := dbtest.New(t)
	ws := dbtest.Workspace(t, store).ID
	key, _ := secrets.GenerateKey()
	keyring, err := secrets.ParseKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	h := &handlers.Handlers{Store: store, Keyring: keyring, Log: jobstest.Logger(t), AllowPrivate: true}
	auth := fakes.NewAuthServer(t, fakes.AuthOptions{Flavor: fakes.FlavorSlack, ClientID: "id", ClientSecret: "secret", AccountName: "Acme", AccountID: "T1"})
	policy := connectors.ClientOptions{AllowPrivate: true}
	h.Connectors = connectors.DefaultWithOAuth(policy, connectors.OAuthConfig{
		BaseURL: "https://fanout.test", HTTPClient: connectors.NewHTTPClient(policy),
		Slack: connectors.OAuthApp{ClientID: "id", ClientSecret: "secret", AuthURL: auth.URL + fakes.SlackAuthorizePath, TokenURL: auth.URL + fakes.SlackTokenPath},
	})
	flow, err := handlers.NewOAuthFlow(h, bytes.Repeat([]byte{3}, 64), bytes.Repeat([]byte{4}, 32))
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	e.HTTPErrorHandler = errorHandler(jobstest.Logger(t))
	oauthReturnRoute(e, flow)
	oauthRoutes(e.Group("/w/:workspace", func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			handlers.SetIdentity(c, &handlers.Identity{WorkspaceID: c.Param("workspace"), User: &db.User{ID: "usr_1"}, Role: db.RoleOwner})
			return next(c)
		}
	}), flow)
	get := func(target string, cookies []*http.Cookie) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		for _, c := range cookies {
			req.AddCookie(c)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec
	}

	start := get("/w/"+ws+"/connections/oauth/slack/start", nil)
	if start.Code != http.StatusFound || !strings.HasPrefix(start.Header().Get("Location"), auth.URL+fakes.SlackAuthorizePath) {
		t.Fatalf("start %d %s", start.Code, start.Header().Get("Location"))
	}
	cookies := start.Result().Cookies()
	if len(cookies) != 1 || !cookies[0].Secure {
		t.Errorf("flow cookie %+v: want Secure under an https base URL", cookies)
	}
	back := fakes.Approve(t, start.Header().Get("Location"))
	if back.Path != "/oauth/slack/callback" {
		t.Fatalf("the vendor returned to %s", back)
	}
	relay := get(back.RequestURI(), cookies)
	if loc := relay.Header().Get("Location"); relay.Code != http.StatusSeeOther || !strings.HasPrefix(loc, "/w/"+ws+"/connections/oauth/slack/callback?") {
		t.Fatalf("return %d to %q", relay.Code, loc)
	}
	done := get(relay.Header().Get("Location"), cookies)
	if loc := done.Header().Get("Location"); done.Code != http.StatusSeeOther || !strings.HasPrefix(loc, "/w/"+ws+"/connections?connected=con_") {
		t.Fatalf("callback %d to %q", done.Code, loc)
	}

	// Without the flow cookie the return route refuses, with the dashboard's error page.
	if rec := get(back.RequestURI(), nil); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "connect link expired") {
		t.Errorf("return without cookie: %d %s", rec.Code, rec.Body)
	}
}
