package connectors

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/markbates/goth"
	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"
)

// oauthCallTimeout bounds each call of the connect flow (token exchange, account look-up):
// goth's Session and Provider methods take no context.
const oauthCallTimeout = 15 * time.Second

// OAuthConfig is the operator's OAuth set-up, read from the environment by cmd and handed
// to DefaultWithOAuth. A kind whose app has no client id and secret offers no OAuth
// connect (the dashboard then shows its API-key form) and cannot refresh tokens.
type OAuthConfig struct {
	// BaseURL is Fanout's public URL (FANOUT_BASE_URL). An app's redirect URI defaults to
	// BaseURL + "/oauth/{kind}/callback"; register exactly that URI with the vendor.
	BaseURL   string
	HubSpot   OAuthApp
	Mailchimp OAuthApp
	Intercom  OAuthApp
	Slack     OAuthApp
	// HTTPClient makes the connect flow's token and account calls. Nil means a client
	// with the strict network policy and a 15-second timeout; pass one built with the
	// process's policy (NewHTTPClient) when the endpoints are local, as in tests.
	HTTPClient *http.Client
}

// OAuthApp is one vendor app. Empty URLs and scopes mean the vendor's (see the
// connector's oauthSpec); they are overridable so tests and staging run the real flow
// against a fake authorization server.
type OAuthApp struct {
	ClientID     string // FANOUT_<VENDOR>_CLIENT_ID
	ClientSecret string // FANOUT_<VENDOR>_CLIENT_SECRET
	AuthURL      string // FANOUT_<VENDOR>_AUTH_URL: the browser's authorization page
	TokenURL     string // FANOUT_<VENDOR>_TOKEN_URL: code exchange and refresh
	// MetadataURL (FANOUT_<VENDOR>_METADATA_URL) names the connected account: HubSpot's
	// access-token info (the token is appended), Mailchimp's /oauth2/metadata (which also
	// gives the data centre), Intercom's /me. Slack needs none.
	MetadataURL string
	RedirectURL string   // FANOUT_<VENDOR>_REDIRECT_URL; default BaseURL + "/oauth/{kind}/callback"
	Scopes      []string // FANOUT_<VENDOR>_SCOPES; nil means Fanout's defaults
}

// Configured reports whether the app has its client credentials.
func (a OAuthApp) Configured() bool { return a.ClientID != "" && a.ClientSecret != "" }

// Validate reports a configuration that cannot work, naming the variable at fault: half a
// client credential, a URL that is not absolute http(s), or no base URL to build the
// redirect URI from.
func (c OAuthConfig) Validate() error {
	for _, s := range oauthSpecs() {
		app := c.app(s.kind)
		env := "FANOUT_" + strings.ToUpper(s.kind) + "_"
		if (app.ClientID == "") != (app.ClientSecret == "") {
			return fmt.Errorf("%sCLIENT_ID and %sCLIENT_SECRET must be set together", env, env)
		}
		if !app.Configured() {
			continue
		}
		for name, v := range map[string]string{"AUTH_URL": app.AuthURL, "TOKEN_URL": app.TokenURL, "METADATA_URL": app.MetadataURL, "REDIRECT_URL": app.RedirectURL} {
			if v == "" {
				continue
			}
			if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("%s%s must be an absolute http(s) URL", env, name)
			}
		}
		if app.RedirectURL == "" {
			if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("FANOUT_BASE_URL must be an absolute http(s) URL to build the OAuth redirect URI of %s", s.kind)
			}
		}
	}
	return nil
}

func (c OAuthConfig) app(kind string) OAuthApp {
	switch kind {
	case "hubspot":
		return c.HubSpot
	case "mailchimp":
		return c.Mailchimp
	case "intercom":
		return c.Intercom
	case "slack":
		return c.Slack
	}
	return OAuthApp{}
}

// oauthSpecs are the kinds that connect through OAuth; each connector file declares its
// vendor's spec.
func oauthSpecs() []*oauthSpec {
	return []*oauthSpec{&hubspotOAuth, &mailchimpOAuth, &intercomOAuth, &slackOAuth}
}

// NewOAuthProviders builds the goth providers of every kind whose app is configured,
// keyed by kind. DefaultWithOAuth hands each to its connector, which uses it to refresh
// tokens; the connect flow reaches them through Registry.OAuthProvider.
func NewOAuthProviders(cfg OAuthConfig) map[string]*OAuthProvider {
	ps := map[string]*OAuthProvider{}
	for _, s := range oauthSpecs() {
		if p := newOAuthProvider(s, cfg.app(s.kind), cfg); p != nil {
			ps[s.kind] = p
		}
	}
	return ps
}

// oauthSpec is how one vendor does OAuth 2.
type oauthSpec struct {
	kind, displayName              string
	authURL, tokenURL, metadataURL string
	scopes                         []string
	scopeSep                       string // " " (RFC 6749) or "," (Slack)
	pkce                           bool   // send an S256 code challenge (RFC 7636)
	basicAuth                      bool   // client credentials in HTTP Basic rather than the form
	refreshable                    bool   // the vendor issues refresh tokens
	tokenKey                       string // the credential that holds the access token
	// account names the account a fresh token belongs to, and the connection config it
	// implies (a data centre, a region).
	account func(ctx context.Context, p *OAuthProvider, tok *oauthToken) (OAuthAccount, error)
}

// OAuthAccount is the vendor account a token was granted for.
type OAuthAccount struct {
	ID     string
	Name   string
	Config map[string]any // connection config the account implies: {"dc": "us6"}, {"region": "eu"}
}

// OAuthConnection is what a completed connect flow stores.
type OAuthConnection struct {
	Name        string          // e.g. "HubSpot (acme.hubspot.com)", at most 100 characters
	AccountID   string          // the vendor's account id, also in Config.account_id
	Config      json.RawMessage // the account's config (account_id, account_name, dc, region)
	Credentials Credentials     // the access token (access_token or bot_token), refresh_token, expires_at
}

// OAuthProvider is the goth.Provider of one connector kind, written for Fanout: endpoints
// from OAuthApp (so tests use a fake authorization server), PKCE where the vendor takes
// it, the vendor's token response spellings, and context-aware refresh for connectors.
// goth's own providers do not fit: Slack's uses the retired v1 flow, Intercom's ignores
// its HTTP client for the exchange and puts the client secret in the URL, HubSpot's keeps
// its endpoints in package variables, and Mailchimp has none.
type OAuthProvider struct {
	spec   *oauthSpec
	app    OAuthApp // with the vendor's defaults filled in
	client *http.Client
	name   string

	// Attempts of one connection run concurrently, and a vendor that rotates refresh
	// tokens (Slack) takes each only once: refreshes with the same refresh token share
	// one token request, and its answer for refreshShare after.
	flight singleflight.Group
	mu     sync.Mutex
	recent map[[sha256.Size]byte]sharedRefresh
}

// refreshShare is how long a refresh's answer is handed to later attempts that present
// the same (now used) refresh token: those that loaded the credentials before the new
// ones were saved.
const refreshShare = time.Minute

type sharedRefresh struct {
	tok *oauthToken
	at  time.Time
}

var _ goth.Provider = (*OAuthProvider)(nil)

func newOAuthProvider(spec *oauthSpec, app OAuthApp, cfg OAuthConfig) *OAuthProvider {
	if !app.Configured() {
		return nil
	}
	app.AuthURL = cmpOr(app.AuthURL, spec.authURL)
	app.TokenURL = cmpOr(app.TokenURL, spec.tokenURL)
	app.MetadataURL = cmpOr(app.MetadataURL, spec.metadataURL)
	if app.RedirectURL == "" {
		app.RedirectURL = strings.TrimRight(cfg.BaseURL, "/") + OAuthCallbackPath(spec.kind)
	}
	if app.Scopes == nil {
		app.Scopes = spec.scopes
	}
	client := cfg.HTTPClient
	if client == nil {
		client = NewHTTPClient(ClientOptions{})
		client.Timeout = oauthCallTimeout
	}
	return &OAuthProvider{spec: spec, app: app, client: client, name: spec.kind, recent: map[[sha256.Size]byte]sharedRefresh{}}
}

// OAuthCallbackPath is the path of the redirect URI of kind, relative to the base URL.
func OAuthCallbackPath(kind string) string { return "/oauth/" + kind + "/callback" }

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Kind returns the connector kind the provider connects.
func (p *OAuthProvider) Kind() string { return p.spec.kind }

// DisplayName returns the vendor's name for buttons ("Connect HubSpot").
func (p *OAuthProvider) DisplayName() string { return p.spec.displayName }

// RedirectURL returns the redirect URI sent to the vendor.
func (p *OAuthProvider) RedirectURL() string { return p.app.RedirectURL }

// Name implements goth.Provider: the kind, unless SetName changed it.
func (p *OAuthProvider) Name() string { return p.name }

// SetName implements goth.Provider.
func (p *OAuthProvider) SetName(name string) { p.name = name }

// Debug implements goth.Provider; it does nothing.
func (p *OAuthProvider) Debug(bool) {}

// BeginAuth implements goth.Provider: the session holds the authorization URL carrying
// state and, for PKCE vendors, a fresh code verifier whose challenge is in the URL. The
// caller must keep the session (Marshal) where only this browser can return it.
func (p *OAuthProvider) BeginAuth(state string) (goth.Session, error) {
	if state == "" {
		return nil, errors.New("oauth: empty state")
	}
	u, err := url.Parse(p.app.AuthURL)
	if err != nil {
		return nil, fmt.Errorf("oauth: %s authorization URL: %w", p.spec.kind, err)
	}
	q := u.Query()
	q.Set("response_type", "code")
	q.Set("client_id", p.app.ClientID)
	q.Set("redirect_uri", p.app.RedirectURL)
	q.Set("state", state)
	if len(p.app.Scopes) > 0 {
		q.Set("scope", strings.Join(p.app.Scopes, p.spec.scopeSep))
	}
	s := &OAuthSession{}
	if p.spec.pkce {
		s.Verifier = oauth2.GenerateVerifier()
		q.Set("code_challenge", oauth2.S256ChallengeFromVerifier(s.Verifier))
		q.Set("code_challenge_method", "S256")
	}
	u.RawQuery = q.Encode()
	s.AuthURL = u.String()
	return s, nil
}

// UnmarshalSession implements goth.Provider.
func (p *OAuthProvider) UnmarshalSession(data string) (goth.Session, error) {
	s := &OAuthSession{}
	if err := json.Unmarshal([]byte(data), s); err != nil {
		return nil, fmt.Errorf("oauth: decode session: %w", err)
	}
	return s, nil
}

// FetchUser implements goth.Provider: after Authorize, it names the account the token
// was granted for. UserID is the account id, Name the account name, RawData["config"] the
// connection config the account implies.
func (p *OAuthProvider) FetchUser(session goth.Session) (goth.User, error) {
	s, ok := session.(*OAuthSession)
	if !ok || s.token == nil {
		return goth.User{}, errors.New("oauth: fetch user before authorize")
	}
	ctx, cancel := context.WithTimeout(context.Background(), oauthCallTimeout)
	defer cancel()
	acct, err := p.spec.account(ctx, p, s.token)
	if err != nil {
		return goth.User{}, fmt.Errorf("oauth: %s account: %w", p.spec.kind, err)
	}
	u := goth.User{
		Provider: p.Name(), UserID: acct.ID, Name: acct.Name, NickName: acct.Name,
		AccessToken: s.token.AccessToken, RefreshToken: s.token.RefreshToken,
		RawData: map[string]any{"config": acct.Config},
	}
	if s.token.ExpiresIn > 0 {
		u.ExpiresAt = s.token.obtained.Add(time.Duration(s.token.ExpiresIn) * time.Second)
	}
	return u, nil
}

// RefreshTokenAvailable implements goth.Provider.
func (p *OAuthProvider) RefreshTokenAvailable() bool { return p.spec.refreshable }

// RefreshToken implements goth.Provider. Connectors use refreshCredentials, which takes
// the attempt's context and HTTP client.
func (p *OAuthProvider) RefreshToken(refreshToken string) (*oauth2.Token, error) {
	ctx, cancel := context.WithTimeout(context.Background(), oauthCallTimeout)
	defer cancel()
	tok, err := p.refresh(ctx, p.client, refreshToken)
	if err != nil {
		return nil, err
	}
	t := &oauth2.Token{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, TokenType: "Bearer"}
	if tok.ExpiresIn > 0 {
		t.Expiry = tok.obtained.Add(time.Duration(tok.ExpiresIn) * time.Second)
	}
	return t, nil
}

// Connection turns the user FetchUser returned into the connection to store.
func (p *OAuthProvider) Connection(u goth.User) (OAuthConnection, error) {
	if u.AccessToken == "" {
		return OAuthConnection{}, errors.New("oauth: no access token")
	}
	creds := Credentials{p.spec.tokenKey: u.AccessToken}
	if u.RefreshToken != "" {
		creds[CredRefreshToken] = u.RefreshToken
	}
	if !u.ExpiresAt.IsZero() {
		creds[CredExpiresAt] = u.ExpiresAt.UTC().Format(time.RFC3339)
	}
	cfg := map[string]any{}
	if extra, ok := u.RawData["config"].(map[string]any); ok {
		for k, v := range extra {
			cfg[k] = v
		}
	}
	if u.UserID != "" {
		cfg["account_id"] = u.UserID
	}
	if u.Name != "" {
		cfg["account_name"] = u.Name
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return OAuthConnection{}, fmt.Errorf("oauth: encode config: %w", err)
	}
	name := p.spec.displayName
	if u.Name != "" {
		name += " (" + u.Name + ")"
	}
	return OAuthConnection{Name: truncateRunes(name, 100), AccountID: u.UserID, Config: raw, Credentials: creds}, nil
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// OAuthSession is the goth.Session of an OAuthProvider. Marshal keeps only the
// authorization URL and the PKCE verifier, for the round trip through the browser (in an
// encrypted cookie); the tokens that Authorize obtains stay in memory.
type OAuthSession struct {
	AuthURL  string `json:"auth_url"`
	Verifier string `json:"verifier,omitempty"`
	token    *oauthToken
}

var _ goth.Session = (*OAuthSession)(nil)

// GetAuthURL implements goth.Session.
func (s *OAuthSession) GetAuthURL() (string, error) {
	if s.AuthURL == "" {
		return "", errors.New(goth.NoAuthUrlErrorMessage)
	}
	return s.AuthURL, nil
}

// Marshal implements goth.Session.
func (s *OAuthSession) Marshal() string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Authorize implements goth.Session: it exchanges params' code (with the PKCE verifier)
// for tokens at the provider's token endpoint.
func (s *OAuthSession) Authorize(provider goth.Provider, params goth.Params) (string, error) {
	p, ok := provider.(*OAuthProvider)
	if !ok {
		return "", errors.New("oauth: session of another provider")
	}
	code := params.Get("code")
	if code == "" {
		return "", errors.New("oauth: the callback has no code")
	}
	ctx, cancel := context.WithTimeout(context.Background(), oauthCallTimeout)
	defer cancel()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {p.app.RedirectURL}}
	if s.Verifier != "" {
		form.Set("code_verifier", s.Verifier)
	}
	tok, err := p.tokenRequest(ctx, p.client, form)
	if err != nil {
		return "", err
	}
	s.token = tok
	return tok.AccessToken, nil
}

// refresh trades a refresh token for a new access token, sharing the answer with
// concurrent and recent refreshes of the same refresh token.
func (p *OAuthProvider) refresh(ctx context.Context, client *http.Client, refreshToken string) (*oauthToken, error) {
	key := sha256.Sum256([]byte(refreshToken))
	p.mu.Lock()
	if r, ok := p.recent[key]; ok && time.Since(r.at) < refreshShare {
		p.mu.Unlock()
		return r.tok, nil
	}
	p.mu.Unlock()
	v, err, _ := p.flight.Do(hex.EncodeToString(key[:]), func() (any, error) {
		tok, err := p.tokenRequest(ctx, client, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}})
		if err != nil {
			return nil, err
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		for k, r := range p.recent {
			if time.Since(r.at) >= refreshShare {
				delete(p.recent, k)
			}
		}
		p.recent[key] = sharedRefresh{tok: tok, at: time.Now()}
		return tok, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*oauthToken), nil
}

// deadRefreshCodes are token endpoint refusals that condemn the refresh token itself
// (not the app's configuration, not the endpoint's health).
var deadRefreshCodes = map[string]bool{"invalid_grant": true, "BAD_REFRESH_TOKEN": true, "invalid_refresh_token": true}

// refreshFailure is a failed refresh: what to report, and whether the vendor refused the
// refresh token itself.
type refreshFailure struct {
	Result
	dead bool
}

// refreshCredentials refreshes the token of creds for a connector's attempt. It returns
// the new credentials, or the Result to report: AuthFailed when the vendor refuses the
// refresh token (or OAuth is not configured here), RateLimited or Retry when the token
// endpoint is only unavailable.
func (p *OAuthProvider) refreshCredentials(ctx context.Context, client *http.Client, v *vendorHTTP, creds Credentials, tokenKey string) (Credentials, *refreshFailure) {
	if p == nil {
		return nil, &refreshFailure{Result: Result{Outcome: AuthFailed, ErrorClass: ClassAuth, Message: "the OAuth token must be refreshed, but OAuth is not configured for this kind on this server"}}
	}
	if client == nil {
		client = defaultClient()
	}
	v.hide(p.app.ClientSecret)
	summary := "POST " + summarizeURL(mustParseURL(p.app.TokenURL))
	tok, err := p.refresh(ctx, client, creds[CredRefreshToken])
	if err != nil {
		var oe *OAuthError
		f := &refreshFailure{}
		switch {
		case errors.As(err, &oe):
			f.Result, f.dead = oe.result(), deadRefreshCodes[oe.Code]
		default:
			f.Result = ClassifyError(err)
		}
		f.Request = summary
		f.Message = v.redact("refresh the OAuth token: " + f.Message)
		return nil, f
	}
	v.hide(tok.AccessToken, tok.RefreshToken)
	nc := make(Credentials, len(creds)+2)
	for k, val := range creds {
		nc[k] = val
	}
	nc[tokenKey] = tok.AccessToken
	if tok.RefreshToken != "" {
		nc[CredRefreshToken] = tok.RefreshToken
	}
	if tok.ExpiresIn > 0 {
		nc[CredExpiresAt] = tok.obtained.Add(time.Duration(tok.ExpiresIn) * time.Second).UTC().Format(time.RFC3339)
	} else {
		delete(nc, CredExpiresAt)
	}
	return nc, nil
}

func mustParseURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		return &url.URL{}
	}
	return u
}

// oauthConnector is a connector kind that can connect through OAuth.
type oauthConnector interface {
	// OAuthProvider returns the kind's provider, or nil when its app is not configured.
	OAuthProvider() *OAuthProvider
}

// OAuthProvider returns the OAuth provider of kind, when the kind connects through OAuth
// and the operator configured its app.
func (r *Registry) OAuthProvider(kind string) (*OAuthProvider, bool) {
	c, ok := r.Get(kind)
	if !ok {
		return nil, false
	}
	oc, ok := c.(oauthConnector)
	if !ok {
		return nil, false
	}
	p := oc.OAuthProvider()
	return p, p != nil
}

// OAuthKinds lists, sorted, the kinds whose OAuth connect is configured.
func (r *Registry) OAuthKinds() []string {
	var kinds []string
	for _, c := range r.All() {
		if _, ok := r.OAuthProvider(c.Kind()); ok {
			kinds = append(kinds, c.Kind())
		}
	}
	return kinds
}
