package connectors_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/jobs/connectors"
	"github.com/fanout-dev/fanout/jobs/connectors/fakes"
)

// hubspotEnv is a fake HubSpot API and authorization server sharing one token set, and
// a connector whose OAuth app points at the fake.
type hubspotEnv struct {
	api  *fakes.HubSpot
	auth *fakes.AuthServer
	c    *connectors.HubSpot
}

func newHubSpotEnv(t *testing.T, o fakes.AuthOptions) *hubspotEnv {
	t.Helper()
	tokens := fakes.NewTokens()
	o.Flavor, o.ClientID, o.ClientSecret, o.Tokens = fakes.FlavorHubSpot, "hs-client", "hs-client-secret", tokens
	e := &hubspotEnv{api: fakes.NewHubSpot(t, tokens), auth: fakes.NewAuthServer(t, o)}
	ps := connectors.NewOAuthProviders(connectors.OAuthConfig{
		BaseURL:    "https://fanout.test",
		HubSpot:    connectors.OAuthApp{ClientID: "hs-client", ClientSecret: "hs-client-secret", AuthURL: e.auth.URL + fakes.HubSpotAuthorizePath, TokenURL: e.auth.URL + e.auth.TokenPath(), MetadataURL: e.auth.URL + fakes.HubSpotMetadataPath},
		HTTPClient: loopbackClient,
	})
	e.c = connectors.NewHubSpot(loopback, ps["hubspot"])
	return e
}

func (e *hubspotEnv) request(payload string, creds connectors.Credentials) *connectors.Request {
	return &connectors.Request{
		Action: "hubspot.upsert_contact", Payload: json.RawMessage(payload),
		Config: raw(map[string]string{"api_base": e.api.URL}), Credentials: creds,
	}
}

func TestHubSpotUpsertRequest(t *testing.T) {
	t.Parallel()
	e := newHubSpotEnv(t, fakes.AuthOptions{})
	e.api.Tokens.Add("pat-na1-private", 0)
	r := send(t, e.c, e.request(`{"email":" Ada@Example.com ","firstname":"Ada","phone":15551234567,"plan":["pro","beta"],"lastname":null}`,
		connectors.Credentials{connectors.CredAccessToken: "pat-na1-private"}))
	expectOutcome(t, r, connectors.Succeeded, "")

	calls := e.api.Calls(http.MethodPost, "/crm/v3/objects/contacts/batch/upsert")
	if len(calls) != 1 {
		t.Fatalf("%d upserts, want 1", len(calls))
	}
	got := calls[0]
	if h := got.Header.Get("Authorization"); h != "Bearer pat-na1-private" {
		t.Errorf("Authorization = %q", h)
	}
	if ct := got.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	jsonEqual(t, got.Body, `{"inputs":[{"idProperty":"email","id":"ada@example.com","objectWriteTraceId":"dlv_test",
		"properties":{"email":"ada@example.com","firstname":"Ada","phone":"15551234567","plan":"pro;beta"}}]}`)
	if c := e.api.Contact("ada@example.com"); c == nil || c.Properties["firstname"] != "Ada" {
		t.Errorf("stored contact = %+v", c)
	}
	if r.Request != "POST "+e.api.URL+"/crm/v3/objects/contacts/batch/upsert" {
		t.Errorf("Request = %q", r.Request)
	}
}

func TestHubSpotDatedVersionAndTest(t *testing.T) {
	t.Parallel()
	e := newHubSpotEnv(t, fakes.AuthOptions{})
	e.api.Tokens.Add("pat", 0)
	req := e.request(`{"email":"a@b.co"}`, connectors.Credentials{connectors.CredAccessToken: "pat"})
	req.Config = raw(map[string]string{"api_base": e.api.URL, "api_version": "2026-03"})
	expectOutcome(t, send(t, e.c, req), connectors.Succeeded, "")
	if n := len(e.api.Calls(http.MethodPost, "/crm/objects/2026-03/contacts/batch/upsert")); n != 1 {
		t.Errorf("%d dated upserts, want 1", n)
	}
	expectOutcome(t, e.c.Test(t.Context(), req), connectors.Succeeded, "")
	if got := e.api.Calls(http.MethodGet, "/crm/objects/2026-03/contacts"); len(got) != 1 || got[0].RawQuery != "limit=1" {
		t.Errorf("test call = %+v", got)
	}
}

func TestHubSpotFailures(t *testing.T) {
	t.Parallel()
	e := newHubSpotEnv(t, fakes.AuthOptions{})
	e.api.Tokens.Add("pat", 0)
	e.api.Tokens.Add("pat-readonly", 0, "crm.objects.contacts.read")
	creds := connectors.Credentials{connectors.CredAccessToken: "pat"}

	t.Run("207 partial failure is permanent", func(t *testing.T) {
		r := send(t, e.c, e.request(`{"email":"a@b.co","lifecyclestage":"hot"}`, creds))
		expectOutcome(t, r, connectors.Permanent, connectors.ClassVendor)
		if r.StatusCode != 207 || !strings.Contains(r.Message, "VALIDATION_ERROR") {
			t.Errorf("result %d %q", r.StatusCode, r.Message)
		}
	})
	t.Run("400 validation", func(t *testing.T) {
		// An object cannot be a property: refused before anything is sent.
		r := send(t, e.c, e.request(`{"email":"a@b.co","address":{"city":"x"}}`, creds))
		expectOutcome(t, r, connectors.Permanent, connectors.ClassMapping)
	})
	t.Run("no email", func(t *testing.T) {
		expectOutcome(t, send(t, e.c, e.request(`{"firstname":"x"}`, creds)), connectors.Permanent, connectors.ClassMapping)
	})
	t.Run("unknown token is AuthFailed", func(t *testing.T) {
		r := send(t, e.c, e.request(`{"email":"a@b.co"}`, connectors.Credentials{connectors.CredAccessToken: "nope-token"}))
		expectOutcome(t, r, connectors.AuthFailed, connectors.ClassAuth)
		if !strings.Contains(r.Message, "INVALID_AUTHENTICATION") {
			t.Errorf("message %q", r.Message)
		}
		noSecrets(t, r, "nope-token")
	})
	t.Run("missing scope is AuthFailed", func(t *testing.T) {
		r := send(t, e.c, e.request(`{"email":"a@b.co"}`, connectors.Credentials{connectors.CredAccessToken: "pat-readonly"}))
		expectOutcome(t, r, connectors.AuthFailed, connectors.ClassAuth)
		if !strings.Contains(r.Message, "crm.objects.contacts.write") {
			t.Errorf("message %q", r.Message)
		}
	})
	for policy, wait := range map[string]time.Duration{"SECONDLY": time.Second, "TEN_SECONDLY_ROLLING": 10 * time.Second, "DAILY": time.Hour} {
		t.Run("429 "+policy, func(t *testing.T) {
			api := fakes.NewHubSpot(t, e.api.Tokens)
			api.RateLimit(1, policy)
			req := e.request(`{"email":"a@b.co"}`, creds)
			req.Config = raw(map[string]string{"api_base": api.URL})
			r := send(t, e.c, req)
			expectOutcome(t, r, connectors.RateLimited, connectors.ClassRateLimited)
			if r.RetryAfter != wait {
				t.Errorf("RetryAfter = %s, want %s", r.RetryAfter, wait)
			}
		})
	}
}

func TestHubSpotRefreshesExpiringToken(t *testing.T) {
	t.Parallel()
	for _, camel := range []bool{false, true} {
		e := newHubSpotEnv(t, fakes.AuthOptions{CamelCase: camel})
		e.auth.Tokens().Add("old-access", time.Second)
		e.auth.Tokens().Expire("old-access")
		e.auth.Tokens().AddRefresh("the-refresh")
		creds := connectors.Credentials{
			connectors.CredAccessToken: "old-access", connectors.CredRefreshToken: "the-refresh",
			connectors.CredExpiresAt: time.Now().Add(-time.Minute).UTC().Format(time.RFC3339),
		}
		r := send(t, e.c, e.request(`{"email":"a@b.co"}`, creds))
		expectOutcome(t, r, connectors.Succeeded, "")
		fresh := r.Credentials[connectors.CredAccessToken]
		if fresh == "" || fresh == "old-access" || r.Credentials[connectors.CredRefreshToken] != "the-refresh" {
			t.Fatalf("credentials = %v, want a new access token and the same refresh token", r.Credentials)
		}
		exp, err := time.Parse(time.RFC3339, r.Credentials[connectors.CredExpiresAt])
		if err != nil || time.Until(exp) < 29*time.Minute || time.Until(exp) > 31*time.Minute {
			t.Errorf("expires_at = %q, want in 30 minutes", r.Credentials[connectors.CredExpiresAt])
		}
		calls := e.api.Requests()
		if len(calls) != 1 || calls[0].Header.Get("Authorization") != "Bearer "+fresh {
			t.Errorf("API saw %d calls; want one with the refreshed token", len(calls))
		}
		tok := e.auth.Calls(http.MethodPost, fakes.HubSpotTokenPath)
		if len(tok) != 1 || !strings.Contains(string(tok[0].Body), "grant_type=refresh_token") || !strings.Contains(string(tok[0].Body), "client_secret=hs-client-secret") {
			t.Errorf("token calls = %d %q", len(tok), tok)
		}
		noSecrets(t, r, fresh, "the-refresh", "hs-client-secret")
	}
}

func TestHubSpotRefreshesAfter401(t *testing.T) {
	t.Parallel()
	e := newHubSpotEnv(t, fakes.AuthOptions{})
	// The stored expiry says fine, HubSpot says expired: refresh once, then retry.
	e.auth.Tokens().Add("old-access", time.Second)
	e.auth.Tokens().Expire("old-access")
	e.auth.Tokens().AddRefresh("the-refresh")
	creds := connectors.Credentials{
		connectors.CredAccessToken: "old-access", connectors.CredRefreshToken: "the-refresh",
		connectors.CredExpiresAt: time.Now().Add(20 * time.Minute).UTC().Format(time.RFC3339),
	}
	r := send(t, e.c, e.request(`{"email":"a@b.co"}`, creds))
	expectOutcome(t, r, connectors.Succeeded, "")
	calls := e.api.Requests()
	if len(calls) != 2 || calls[0].Header.Get("Authorization") != "Bearer old-access" || calls[1].Header.Get("Authorization") != "Bearer "+r.Credentials[connectors.CredAccessToken] {
		t.Errorf("API calls = %d, want the old token refused then the new one", len(calls))
	}
}

func TestHubSpotConcurrentRefreshesShareOneTokenRequest(t *testing.T) {
	t.Parallel()
	e := newHubSpotEnv(t, fakes.AuthOptions{})
	e.auth.Tokens().AddRefresh("the-refresh")
	creds := connectors.Credentials{
		connectors.CredAccessToken: "old-access", connectors.CredRefreshToken: "the-refresh",
		connectors.CredExpiresAt: time.Now().Add(time.Minute).UTC().Format(time.RFC3339),
	}
	results := make(chan connectors.Result, 8)
	for range 8 {
		go func() { results <- send(t, e.c, e.request(`{"email":"a@b.co"}`, creds)) }()
	}
	tokens := map[string]bool{}
	for range 8 {
		r := <-results
		expectOutcome(t, r, connectors.Succeeded, "")
		tokens[r.Credentials[connectors.CredAccessToken]] = true
	}
	if n := len(e.auth.Calls(http.MethodPost, fakes.HubSpotTokenPath)); n != 1 || len(tokens) != 1 {
		t.Errorf("%d token requests, %d distinct tokens; want one of each", n, len(tokens))
	}
}

func TestHubSpotForgetsADeadRefreshToken(t *testing.T) {
	t.Parallel()
	// A PATCH gave a new private app token, merged over old OAuth credentials whose
	// refresh token HubSpot no longer takes.
	e := newHubSpotEnv(t, fakes.AuthOptions{})
	e.api.Tokens.Add("pat-new", 0)
	creds := connectors.Credentials{
		connectors.CredAccessToken: "pat-new", connectors.CredRefreshToken: "dead-refresh",
		connectors.CredExpiresAt: time.Now().Add(-time.Hour).UTC().Format(time.RFC3339),
	}
	r := send(t, e.c, e.request(`{"email":"a@b.co"}`, creds))
	expectOutcome(t, r, connectors.Succeeded, "")
	if len(r.Credentials) != 1 || r.Credentials[connectors.CredAccessToken] != "pat-new" {
		t.Errorf("credentials %v, want only the working access token", r.Credentials)
	}
}

func TestHubSpotRefreshFailures(t *testing.T) {
	t.Parallel()
	expired := connectors.Credentials{
		connectors.CredAccessToken: "old-access", connectors.CredRefreshToken: "revoked-refresh",
		connectors.CredExpiresAt: time.Now().Add(-time.Hour).UTC().Format(time.RFC3339),
	}
	t.Run("revoked refresh token", func(t *testing.T) {
		e := newHubSpotEnv(t, fakes.AuthOptions{})
		e.auth.Tokens().AddRefresh("revoked-refresh")
		e.auth.Tokens().Revoke("revoked-refresh")
		r := send(t, e.c, e.request(`{"email":"a@b.co"}`, expired))
		expectOutcome(t, r, connectors.AuthFailed, connectors.ClassAuth)
		if !strings.Contains(r.Message, "refresh") || r.Credentials != nil {
			t.Errorf("result %q %v", r.Message, r.Credentials)
		}
		noSecrets(t, r, "revoked-refresh", "hs-client-secret", "old-access")
	})
	t.Run("OAuth not configured", func(t *testing.T) {
		e := newHubSpotEnv(t, fakes.AuthOptions{})
		r := send(t, connectors.NewHubSpot(loopback, nil), e.request(`{"email":"a@b.co"}`, expired))
		expectOutcome(t, r, connectors.AuthFailed, connectors.ClassAuth)
		if !strings.Contains(r.Message, "not configured") {
			t.Errorf("message %q", r.Message)
		}
	})
	t.Run("token endpoint down", func(t *testing.T) {
		e := newHubSpotEnv(t, fakes.AuthOptions{})
		e.auth.Close()
		// The refresh ahead of time is best effort: a token HubSpot still takes is used.
		e.api.Tokens.Add("old-access", 0)
		r := send(t, e.c, e.request(`{"email":"a@b.co"}`, expired))
		expectOutcome(t, r, connectors.Succeeded, "")
		// Once HubSpot refuses it, an unreachable token endpoint means "later", not
		// "reconnect".
		e.api.Tokens.Expire("old-access")
		r = send(t, e.c, e.request(`{"email":"a@b.co"}`, expired))
		expectOutcome(t, r, connectors.Retry, connectors.ClassConnection)
		if !strings.Contains(r.Message, "refresh the OAuth token") {
			t.Errorf("message %q", r.Message)
		}
	})
	t.Run("refused refresh after a 401", func(t *testing.T) {
		e := newHubSpotEnv(t, fakes.AuthOptions{})
		e.auth.Tokens().AddRefresh("revoked-refresh")
		e.auth.Tokens().Revoke("revoked-refresh")
		e.api.Tokens.Add("old-access", time.Second)
		e.api.Tokens.Expire("old-access")
		fresh := connectors.Credentials{
			connectors.CredAccessToken: "old-access", connectors.CredRefreshToken: "revoked-refresh",
			connectors.CredExpiresAt: time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		}
		r := send(t, e.c, e.request(`{"email":"a@b.co"}`, fresh))
		expectOutcome(t, r, connectors.AuthFailed, connectors.ClassAuth)
		if len(e.api.Requests()) != 1 || len(e.auth.Calls(http.MethodPost, fakes.HubSpotTokenPath)) != 1 {
			t.Errorf("calls: api %d, token %d; want one each", len(e.api.Requests()), len(e.auth.Calls(http.MethodPost, fakes.HubSpotTokenPath)))
		}
	})
}

func TestHubSpotValidateConfig(t *testing.T) {
	t.Parallel()
	strict := connectors.NewHubSpot(connectors.ClientOptions{}, nil)
	tok := connectors.Credentials{connectors.CredAccessToken: "pat"}
	fieldErr(t, strict.ValidateConfig(raw(map[string]string{"api_base": "http://127.0.0.1:8080"}), tok), "config.api_base")
	fieldErr(t, strict.ValidateConfig(raw(map[string]string{"api_base": "https://api.hubapi.com/crm"}), tok), "config.api_base")
	fieldErr(t, strict.ValidateConfig(raw(map[string]string{"api_version": "v4"}), tok), "config.api_version")
	fieldErr(t, strict.ValidateConfig(raw(map[string]string{"api_bsae": "x"}), tok), "config")
	fieldErr(t, strict.ValidateConfig(nil, nil), "credentials.access_token")
	fieldErr(t, strict.ValidateConfig(nil, connectors.Credentials{connectors.CredAccessToken: "x", connectors.CredExpiresAt: "soon"}), "credentials.expires_at")
	if err := strict.ValidateConfig(raw(map[string]string{"api_base": "https://93.184.215.14", "api_version": "2026-03"}), tok); err != nil {
		t.Error(err)
	}
	if err := connectors.NewHubSpot(loopback, nil).ValidateConfig(raw(map[string]string{"api_base": "http://127.0.0.1:8080"}), tok); err != nil {
		t.Errorf("AllowPrivate: %v", err)
	}
}
