package fakes

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Flavors of AuthServer: which vendor's OAuth it imitates.
const (
	FlavorHubSpot   = "hubspot"
	FlavorMailchimp = "mailchimp"
	FlavorIntercom  = "intercom"
	FlavorSlack     = "slack"
)

// Paths of AuthServer, the vendors' own (VENDOR_APIS.md §1.2, §2.2, §3.2, §4.3). Every
// flavor serves all of them; the flavor decides the shape of the answers.
const (
	HubSpotAuthorizePath   = "/oauth/authorize"
	HubSpotTokenPath       = "/oauth/v1/token"
	HubSpotTokenPath202603 = "/oauth/2026-03/token"
	HubSpotRevokePath      = "/oauth/2026-03/token/revoke"
	HubSpotMetadataPath    = "/oauth/v1/access-tokens/" // + token
	MailchimpAuthorizePath = "/oauth2/authorize"
	MailchimpTokenPath     = "/oauth2/token"
	MailchimpMetadataPath  = "/oauth2/metadata"
	IntercomAuthorizePath  = "/oauth"
	IntercomTokenPath      = "/auth/eagle/token"
	IntercomMePath         = "/me"
	SlackAuthorizePath     = "/oauth/v2/authorize"
	SlackTokenPath         = "/api/oauth.v2.access"
	SlackRevokePath        = "/api/auth.revoke"
)

// authCodeLifetime: Intercom's codes expire after about 5 minutes (§3.2).
const authCodeLifetime = 5 * time.Minute

// AuthOptions configure an AuthServer.
type AuthOptions struct {
	Flavor       string
	ClientID     string
	ClientSecret string
	// Tokens receives what the server issues; the vendor fake checks against it.
	Tokens *Tokens
	// Lifetime of access tokens; 0 means HubSpot's 30 minutes for hubspot, and tokens
	// that never expire for the others (Slack without rotation, Mailchimp, Intercom).
	Lifetime time.Duration
	// Rotate makes Slack issue refresh tokens and expiring access tokens (token rotation).
	Rotate bool
	// CamelCase answers HubSpot token requests in the camelCase the dated endpoint's
	// reference shows (unverified: §1.2).
	CamelCase bool
	// APIEndpoint is what Mailchimp's metadata names as api_endpoint (the fake API's URL).
	APIEndpoint string
	// AccountID and AccountName describe the account the user "signs in" to.
	AccountID, AccountName string
	// Region is Intercom's app.region ("US", "Europe", "Australia").
	Region string
}

type authCode struct {
	clientID, redirectURI, challenge string
	expires                          time.Time
	used                             bool
}

// AuthServer is a fake OAuth 2 authorization server in a vendor's flavor: the browser's
// authorize redirect (always approving, unless Deny), the code exchange (checking the
// client, the redirect URI and the PKCE verifier), refresh, revocation and the vendor's
// account metadata.
type AuthServer struct {
	*httptest.Server
	Recorder
	opts AuthOptions

	mu    sync.Mutex
	codes map[string]*authCode
	deny  bool
}

// NewAuthServer starts an authorization server for the test.
func NewAuthServer(tb testing.TB, o AuthOptions) *AuthServer {
	if o.Tokens == nil {
		o.Tokens = NewTokens()
	}
	if o.Lifetime == 0 && o.Flavor == FlavorHubSpot {
		o.Lifetime = 30 * time.Minute
	}
	if o.Lifetime == 0 && o.Flavor == FlavorSlack && o.Rotate {
		o.Lifetime = 12 * time.Hour
	}
	if o.AccountID == "" {
		o.AccountID = "62515"
	}
	if o.AccountName == "" {
		o.AccountName = "acme.example.com"
	}
	a := &AuthServer{opts: o, codes: map[string]*authCode{}}
	mux := http.NewServeMux()
	for _, p := range []string{HubSpotAuthorizePath, MailchimpAuthorizePath, IntercomAuthorizePath, SlackAuthorizePath} {
		mux.HandleFunc("GET "+p, a.authorize)
	}
	for _, p := range []string{HubSpotTokenPath, HubSpotTokenPath202603, MailchimpTokenPath, IntercomTokenPath, SlackTokenPath} {
		mux.HandleFunc("POST "+p, a.token)
	}
	mux.HandleFunc("GET "+HubSpotMetadataPath+"{token}", a.hubspotMetadata)
	mux.HandleFunc("GET "+MailchimpMetadataPath, a.mailchimpMetadata)
	mux.HandleFunc("GET "+IntercomMePath, a.intercomMe)
	mux.HandleFunc("POST "+HubSpotRevokePath, a.revokeForm)
	mux.HandleFunc("POST "+SlackRevokePath, a.revokeBearer)
	mux.HandleFunc("GET "+SlackRevokePath, a.revokeBearer)
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.record(r)
		mux.ServeHTTP(w, r)
	}))
	tb.Cleanup(a.Close)
	return a
}

// Tokens returns the token set the server issues into.
func (a *AuthServer) Tokens() *Tokens { return a.opts.Tokens }

// Deny makes the authorize page refuse (error=access_denied), as a user clicking Cancel.
func (a *AuthServer) Deny(deny bool) {
	a.mu.Lock()
	a.deny = deny
	a.mu.Unlock()
}

// AuthorizePath is the flavor's authorize path; TokenPath and MetadataPath likewise.
func (a *AuthServer) AuthorizePath() string {
	return map[string]string{FlavorHubSpot: HubSpotAuthorizePath, FlavorMailchimp: MailchimpAuthorizePath, FlavorIntercom: IntercomAuthorizePath, FlavorSlack: SlackAuthorizePath}[a.opts.Flavor]
}

// TokenPath is the flavor's token path.
func (a *AuthServer) TokenPath() string {
	return map[string]string{FlavorHubSpot: HubSpotTokenPath, FlavorMailchimp: MailchimpTokenPath, FlavorIntercom: IntercomTokenPath, FlavorSlack: SlackTokenPath}[a.opts.Flavor]
}

// MetadataPath is the flavor's account path ("" for Slack).
func (a *AuthServer) MetadataPath() string {
	return map[string]string{FlavorHubSpot: HubSpotMetadataPath, FlavorMailchimp: MailchimpMetadataPath, FlavorIntercom: IntercomMePath}[a.opts.Flavor]
}

// authorize is the browser's consent page: it approves at once and redirects back with a
// code bound to the client, the redirect URI and the PKCE challenge.
func (a *AuthServer) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || !redirect.IsAbs() {
		http.Error(w, "invalid redirect_uri", http.StatusBadRequest)
		return
	}
	if q.Get("client_id") != a.opts.ClientID {
		http.Error(w, "unknown client_id", http.StatusBadRequest)
		return
	}
	if a.opts.Flavor == FlavorMailchimp && q.Get("response_type") != "code" {
		http.Error(w, "response_type must be code", http.StatusBadRequest)
		return
	}
	if m := q.Get("code_challenge_method"); q.Get("code_challenge") != "" && m != "S256" {
		http.Error(w, "code_challenge_method must be S256", http.StatusBadRequest)
		return
	}
	back := redirect.Query()
	if st := q.Get("state"); st != "" {
		back.Set("state", st)
	}
	a.mu.Lock()
	deny := a.deny
	if !deny {
		code := randomID("code-")
		a.codes[code] = &authCode{clientID: q.Get("client_id"), redirectURI: q.Get("redirect_uri"), challenge: q.Get("code_challenge"), expires: time.Now().Add(authCodeLifetime)}
		back.Set("code", code)
	}
	a.mu.Unlock()
	if deny {
		back.Set("error", "access_denied")
	}
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// clientOK checks the client credentials: HTTP Basic (Slack's preference) or the form.
func (a *AuthServer) clientOK(r *http.Request) bool {
	id, secret, basic := r.BasicAuth()
	if basic {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		if a.opts.Flavor == FlavorIntercom && secret == "" {
			secret = r.URL.Query().Get("client_secret") // goth's Intercom provider puts it there
		}
	}
	return id == a.opts.ClientID && subtle.ConstantTimeCompare([]byte(secret), []byte(a.opts.ClientSecret)) == 1
}

func (a *AuthServer) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		a.fail(w, http.StatusBadRequest, "invalid_request", "BAD_REQUEST", "the body must be form-encoded")
		return
	}
	if !a.clientOK(r) {
		a.fail(w, http.StatusUnauthorized, "invalid_client", "BAD_CLIENT_ID", "unknown client or wrong secret")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "authorization_code", "": // Slack and Intercom may omit grant_type
		a.mu.Lock()
		c := a.codes[r.PostForm.Get("code")]
		ok := c != nil && !c.used && time.Now().Before(c.expires) && c.clientID == a.opts.ClientID
		if ok {
			c.used = true
		}
		a.mu.Unlock()
		switch {
		case !ok:
			a.fail(w, http.StatusBadRequest, "invalid_grant", "BAD_AUTH_CODE", "the code is unknown, used or expired")
			return
		case a.opts.Flavor != FlavorIntercom && r.PostForm.Get("redirect_uri") != c.redirectURI:
			a.fail(w, http.StatusBadRequest, "invalid_grant", "BAD_REDIRECT_URI", "redirect_uri differs from the authorize request's")
			return
		case c.challenge != "" && !pkceMatches(r.PostForm.Get("code_verifier"), c.challenge):
			a.fail(w, http.StatusBadRequest, "invalid_grant", "BAD_CODE_VERIFIER", "code_verifier does not match the code_challenge")
			return
		}
		a.issue(w, "")
	case "refresh_token":
		rt := r.PostForm.Get("refresh_token")
		if a.opts.Tokens.CheckRefresh(rt) != TokenValid {
			a.fail(w, http.StatusBadRequest, "invalid_grant", "BAD_REFRESH_TOKEN", "missing or unknown refresh token")
			return
		}
		a.issue(w, rt)
	default:
		a.fail(w, http.StatusBadRequest, "unsupported_grant_type", "BAD_GRANT_TYPE", "unsupported grant_type")
	}
}

func pkceMatches(verifier, challenge string) bool {
	sum := sha256.Sum256([]byte(verifier))
	return verifier != "" && base64.RawURLEncoding.EncodeToString(sum[:]) == challenge
}

// issue answers a successful grant in the flavor's shape. A refresh answer for HubSpot
// keeps the refresh token; Slack's rotation replaces it.
func (a *AuthServer) issue(w http.ResponseWriter, usedRefresh string) {
	o := a.opts
	tokens := o.Tokens
	switch o.Flavor {
	case FlavorHubSpot:
		access := randomID("hs-oauth-")
		tokens.Add(access, o.Lifetime, "crm.objects.contacts.write", "crm.objects.contacts.read", "oauth")
		refresh := usedRefresh
		if refresh == "" {
			refresh = randomID("hs-refresh-")
			tokens.AddRefresh(refresh)
		}
		secs := int(o.Lifetime / time.Second)
		if o.CamelCase {
			writeJSON(w, http.StatusOK, "", map[string]any{"accessToken": access, "refreshToken": refresh, "expiresIn": secs, "tokenType": "bearer", "hubId": o.AccountID, "scopes": []string{"oauth"}})
			return
		}
		writeJSON(w, http.StatusOK, "", map[string]any{"access_token": access, "refresh_token": refresh, "expires_in": secs, "token_type": "bearer"})
	case FlavorMailchimp:
		access := randomID("mc-oauth-")
		tokens.Add(access, 0)
		writeJSON(w, http.StatusOK, "", map[string]any{"access_token": access, "expires_in": 0, "scope": nil})
	case FlavorIntercom:
		access := randomID("ic-oauth-")
		tokens.Add(access, 0)
		writeJSON(w, http.StatusOK, "", map[string]any{"token": access, "access_token": access, "token_type": "Bearer"})
	case FlavorSlack:
		access := randomID("xoxb-fake-")
		tokens.Add(access, o.Lifetime, "chat:write", "chat:write.public", "channels:read", "groups:read")
		body := map[string]any{
			"ok": true, "access_token": access, "token_type": "bot", "scope": "chat:write,chat:write.public,channels:read,groups:read",
			"bot_user_id": "U0BOT", "app_id": "A0APP", "team": map[string]any{"id": o.AccountID, "name": o.AccountName},
			"enterprise": nil, "is_enterprise_install": false, "authed_user": map[string]any{"id": "U0USER"},
		}
		if o.Rotate {
			if usedRefresh != "" {
				tokens.Revoke(usedRefresh)
			}
			refresh := randomID("xoxe-1-")
			tokens.AddRefresh(refresh)
			body["refresh_token"], body["expires_in"] = refresh, int(o.Lifetime/time.Second)
		}
		writeJSON(w, http.StatusOK, "", body)
	}
}

// fail answers a refused grant in the flavor's shape: Slack's HTTP 200 ok:false, HubSpot's
// RFC 6749 fields plus its legacy status and message, RFC 6749 otherwise.
func (a *AuthServer) fail(w http.ResponseWriter, status int, code, hubspotStatus, msg string) {
	switch a.opts.Flavor {
	case FlavorSlack:
		slack := map[string]string{"invalid_client": "invalid_client_id", "invalid_grant": "invalid_code"}[code]
		if hubspotStatus == "BAD_REFRESH_TOKEN" {
			slack = "invalid_refresh_token"
		}
		if slack == "" {
			slack = code
		}
		writeJSON(w, http.StatusOK, "", map[string]any{"ok": false, "error": slack})
	case FlavorHubSpot:
		writeJSON(w, status, "", map[string]any{"error": code, "error_description": msg, "status": hubspotStatus, "message": msg})
	default:
		writeJSON(w, status, "", map[string]any{"error": code, "error_description": msg})
	}
}

func (a *AuthServer) hubspotMetadata(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	if a.opts.Tokens.Check(token) != TokenValid {
		writeJSON(w, http.StatusNotFound, "", map[string]any{"status": "error", "message": "Token not found", "category": "OBJECT_NOT_FOUND"})
		return
	}
	writeJSON(w, http.StatusOK, "", map[string]any{
		"token": token, "user": "owner@" + a.opts.AccountName, "hub_domain": a.opts.AccountName,
		"scopes": []string{"oauth", "crm.objects.contacts.write"}, "hub_id": jsonNumber(a.opts.AccountID),
		"app_id": 1234, "expires_in": int(a.opts.Lifetime / time.Second), "user_id": 42, "token_type": "access",
	})
}

func (a *AuthServer) mailchimpMetadata(w http.ResponseWriter, r *http.Request) {
	h := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(h, "OAuth ")
	if !ok {
		token = bearerToken(r)
	}
	if a.opts.Tokens.Check(token) != TokenValid {
		writeJSON(w, http.StatusUnauthorized, "", map[string]any{"error": "invalid_token"})
		return
	}
	endpoint := a.opts.APIEndpoint
	if endpoint == "" {
		endpoint = "https://us6.api.mailchimp.com"
	}
	writeJSON(w, http.StatusOK, "", map[string]any{
		"dc": "us6", "role": "owner", "accountname": a.opts.AccountName, "user_id": jsonNumber(a.opts.AccountID),
		"login":     map[string]any{"email": "owner@example.com", "login_id": jsonNumber(a.opts.AccountID), "login_name": "owner"},
		"login_url": "https://login.mailchimp.com", "api_endpoint": endpoint,
	})
}

func (a *AuthServer) intercomMe(w http.ResponseWriter, r *http.Request) {
	token := bearerToken(r)
	if token == "" {
		token, _, _ = r.BasicAuth() // goth sends the token as the Basic user name
	}
	if a.opts.Tokens.Check(token) != TokenValid {
		writeJSON(w, http.StatusUnauthorized, "", intercomErrorBody("unauthorized", "Access Token Invalid"))
		return
	}
	region := a.opts.Region
	if region == "" {
		region = "US"
	}
	writeJSON(w, http.StatusOK, "", map[string]any{
		"type": "admin", "id": "991267", "email": "owner@example.com", "name": "Owner",
		"app": map[string]any{"type": "app", "id_code": a.opts.AccountID, "name": a.opts.AccountName, "region": region},
	})
}

func (a *AuthServer) revokeForm(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	a.opts.Tokens.Revoke(r.PostForm.Get("token"))
	w.WriteHeader(http.StatusOK)
}

func (a *AuthServer) revokeBearer(w http.ResponseWriter, r *http.Request) {
	a.opts.Tokens.Revoke(bearerToken(r))
	writeJSON(w, http.StatusOK, "", map[string]any{"ok": true, "revoked": true})
}

// Approve runs the browser's part of the flow: it follows authURL (the provider's
// authorize page) and returns the redirect it answers with, without following it.
func Approve(tb testing.TB, authURL string) *url.URL {
	tb.Helper()
	client := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(authURL)
	if err != nil {
		tb.Fatalf("fakes: authorize: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		tb.Fatalf("fakes: authorize answered %d, want 302", resp.StatusCode)
	}
	loc, err := resp.Location()
	if err != nil {
		tb.Fatalf("fakes: authorize redirect: %v", err)
	}
	return loc
}
