package connectors_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/fanout-dev/fanout/jobs/connectors"
	"github.com/fanout-dev/fanout/jobs/connectors/fakes"
	"github.com/markbates/goth"
)

// oauthApp points an app of flavor at the fake authorization server.
func oauthApp(a *fakes.AuthServer) connectors.OAuthApp {
	app := connectors.OAuthApp{ClientID: "client-id", ClientSecret: "client-secret", AuthURL: a.URL + a.AuthorizePath(), TokenURL: a.URL + a.TokenPath()}
	if p := a.MetadataPath(); p != "" {
		app.MetadataURL = a.URL + p
	}
	return app
}

func oauthConfig(kind string, app connectors.OAuthApp) connectors.OAuthConfig {
	cfg := connectors.OAuthConfig{BaseURL: "https://fanout.test/", HTTPClient: loopbackClient}
	switch kind {
	case "hubspot":
		cfg.HubSpot = app
	case "mailchimp":
		cfg.Mailchimp = app
	case "intercom":
		cfg.Intercom = app
	case "slack":
		cfg.Slack = app
	}
	return cfg
}

// runFlow plays start, approve and callback against the fake: the provider's session is
// marshalled and unmarshalled as the handlers do through the flow cookie.
func runFlow(t *testing.T, p *connectors.OAuthProvider, state string) (goth.User, *url.URL) {
	t.Helper()
	sess, err := p.BeginAuth(state)
	if err != nil {
		t.Fatal(err)
	}
	authURL, err := sess.GetAuthURL()
	if err != nil {
		t.Fatal(err)
	}
	back := fakes.Approve(t, authURL)
	if back.Query().Get("state") != state {
		t.Fatalf("state came back as %q", back.Query().Get("state"))
	}
	sess, err = p.UnmarshalSession(sess.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Authorize(p, back.Query()); err != nil {
		t.Fatalf("authorize: %v", err)
	}
	u, err := p.FetchUser(sess)
	if err != nil {
		t.Fatalf("fetch user: %v", err)
	}
	auth, _ := url.Parse(authURL)
	return u, auth
}

func TestOAuthFlows(t *testing.T) {
	t.Parallel()
	tests := []struct {
		flavor     string
		opts       fakes.AuthOptions
		scope      string // as sent in the authorize URL
		pkce       bool
		tokenKey   string
		wantConfig map[string]any
		expires    bool
	}{
		{flavor: fakes.FlavorHubSpot, scope: "crm.objects.contacts.write crm.objects.contacts.read oauth", tokenKey: "access_token", expires: true,
			wantConfig: map[string]any{"account_id": "62515", "account_name": "acme.example.com"}},
		{flavor: fakes.FlavorHubSpot, opts: fakes.AuthOptions{CamelCase: true}, scope: "crm.objects.contacts.write crm.objects.contacts.read oauth", tokenKey: "access_token", expires: true,
			wantConfig: map[string]any{"account_id": "62515", "account_name": "acme.example.com"}},
		{flavor: fakes.FlavorMailchimp, opts: fakes.AuthOptions{APIEndpoint: "http://127.0.0.1:9"}, tokenKey: "access_token",
			wantConfig: map[string]any{"account_id": "62515", "account_name": "acme.example.com", "dc": "us6", "api_base": "http://127.0.0.1:9"}},
		{flavor: fakes.FlavorIntercom, opts: fakes.AuthOptions{Region: "Europe", AccountID: "abc123"}, tokenKey: "access_token",
			wantConfig: map[string]any{"account_id": "abc123", "account_name": "acme.example.com", "region": "eu"}},
		{flavor: fakes.FlavorSlack, opts: fakes.AuthOptions{AccountID: "T0TEAM", AccountName: "Acme"}, scope: "chat:write,chat:write.public,channels:read,groups:read", pkce: true, tokenKey: "bot_token",
			wantConfig: map[string]any{"account_id": "T0TEAM", "account_name": "Acme"}},
	}
	for _, tc := range tests {
		t.Run(tc.flavor, func(t *testing.T) {
			t.Parallel()
			o := tc.opts
			o.Flavor, o.ClientID, o.ClientSecret = tc.flavor, "client-id", "client-secret"
			a := fakes.NewAuthServer(t, o)
			reg := connectors.DefaultWithOAuth(loopback, oauthConfig(tc.flavor, oauthApp(a)))
			p, ok := reg.OAuthProvider(tc.flavor)
			if !ok || !slices.Equal(reg.OAuthKinds(), []string{tc.flavor}) {
				t.Fatalf("provider %v, kinds %v", ok, reg.OAuthKinds())
			}
			if p.RedirectURL() != "https://fanout.test/oauth/"+tc.flavor+"/callback" {
				t.Errorf("redirect URL %q", p.RedirectURL())
			}
			u, auth := runFlow(t, p, "state-123")
			q := auth.Query()
			if q.Get("client_id") != "client-id" || q.Get("redirect_uri") != p.RedirectURL() || q.Get("response_type") != "code" || q.Get("scope") != tc.scope {
				t.Errorf("authorize query %v", q)
			}
			if got := q.Get("code_challenge") != "" && q.Get("code_challenge_method") == "S256"; got != tc.pkce {
				t.Errorf("PKCE %v, want %v", got, tc.pkce)
			}
			oc, err := p.Connection(u)
			if err != nil {
				t.Fatal(err)
			}
			var cfg map[string]any
			_ = json.Unmarshal(oc.Config, &cfg)
			for k, v := range tc.wantConfig {
				if cfg[k] != v {
					t.Errorf("config[%s] = %v, want %v (%s)", k, cfg[k], v, oc.Config)
				}
			}
			if len(cfg) != len(tc.wantConfig) {
				t.Errorf("config %s, want %v", oc.Config, tc.wantConfig)
			}
			token := oc.Credentials[tc.tokenKey]
			if a.Tokens().Check(token) != fakes.TokenValid {
				t.Errorf("credentials %v: %s is not the issued token", oc.Credentials, tc.tokenKey)
			}
			_, hasExpiry := oc.Credentials[connectors.CredExpiresAt]
			if hasExpiry != tc.expires || (tc.expires && oc.Credentials[connectors.CredRefreshToken] == "") {
				t.Errorf("credentials %v: expiry and refresh token expected %v", oc.Credentials, tc.expires)
			}
			if !strings.Contains(oc.Name, "acme.example.com") && !strings.Contains(oc.Name, "Acme") {
				t.Errorf("name %q", oc.Name)
			}
			// The connection the flow makes is valid for its connector.
			c, _ := reg.Get(tc.flavor)
			if err := c.ValidateConfig(oc.Config, oc.Credentials); err != nil {
				t.Errorf("ValidateConfig: %v", err)
			}
			// A code is good once.
			tok := a.Calls(http.MethodPost, a.TokenPath())
			if len(tok) != 1 {
				t.Fatalf("%d token calls", len(tok))
			}
		})
	}
}

func TestOAuthRejections(t *testing.T) {
	t.Parallel()
	a := fakes.NewAuthServer(t, fakes.AuthOptions{Flavor: fakes.FlavorSlack, ClientID: "client-id", ClientSecret: "client-secret"})
	p := connectors.NewOAuthProviders(oauthConfig("slack", oauthApp(a)))["slack"]

	begin := func() (goth.Session, url.Values) {
		sess, _ := p.BeginAuth("s")
		authURL, _ := sess.GetAuthURL()
		return sess, fakes.Approve(t, authURL).Query()
	}
	t.Run("wrong PKCE verifier", func(t *testing.T) {
		_, q := begin()
		other, _ := p.BeginAuth("s") // a session with another verifier
		if _, err := other.Authorize(p, q); err == nil || !strings.Contains(err.Error(), "invalid_code") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("code replay", func(t *testing.T) {
		sess, q := begin()
		if _, err := sess.Authorize(p, q); err != nil {
			t.Fatal(err)
		}
		if _, err := sess.Authorize(p, q); err == nil {
			t.Error("a used code was accepted")
		}
	})
	t.Run("wrong client secret", func(t *testing.T) {
		app := oauthApp(a)
		app.ClientSecret = "wrong"
		bad := connectors.NewOAuthProviders(oauthConfig("slack", app))["slack"]
		sess, q := begin()
		if _, err := sess.Authorize(bad, q); err == nil {
			t.Error("wrong secret accepted")
		}
	})
	t.Run("no code", func(t *testing.T) {
		sess, _ := p.BeginAuth("s")
		if _, err := sess.Authorize(p, url.Values{"error": {"access_denied"}}); err == nil {
			t.Error("authorized without a code")
		}
	})
	t.Run("goth refresh", func(t *testing.T) {
		if !p.RefreshTokenAvailable() {
			t.Error("Slack refresh (token rotation) unavailable")
		}
		if _, err := p.RefreshToken("unknown"); err == nil {
			t.Error("refreshed an unknown token")
		}
	})
}

func TestOAuthConfigValidate(t *testing.T) {
	t.Parallel()
	ok := connectors.OAuthConfig{BaseURL: "https://fanout.example.com", HubSpot: connectors.OAuthApp{ClientID: "a", ClientSecret: "b"}}
	if err := ok.Validate(); err != nil {
		t.Error(err)
	}
	if err := (connectors.OAuthConfig{}).Validate(); err != nil {
		t.Errorf("nothing configured: %v", err)
	}
	for name, cfg := range map[string]connectors.OAuthConfig{
		"FANOUT_SLACK_CLIENT_ID":      {BaseURL: "https://x", Slack: connectors.OAuthApp{ClientSecret: "b"}},
		"FANOUT_BASE_URL":             {Mailchimp: connectors.OAuthApp{ClientID: "a", ClientSecret: "b"}},
		"FANOUT_INTERCOM_TOKEN_URL":   {BaseURL: "https://x", Intercom: connectors.OAuthApp{ClientID: "a", ClientSecret: "b", TokenURL: "/relative"}},
		"FANOUT_HUBSPOT_METADATA_URL": {BaseURL: "https://x", HubSpot: connectors.OAuthApp{ClientID: "a", ClientSecret: "b", MetadataURL: "ftp://x"}},
	} {
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if kinds := connectors.DefaultWithOAuth(loopback, ok).OAuthKinds(); !slices.Equal(kinds, []string{"hubspot"}) {
		t.Errorf("OAuthKinds %v", kinds)
	}
	if kinds := connectors.Default().OAuthKinds(); len(kinds) != 0 {
		t.Errorf("Default() OAuthKinds %v", kinds)
	}
	if _, ok := connectors.Default().OAuthProvider("webhook"); ok {
		t.Error("webhook has an OAuth provider")
	}
}
