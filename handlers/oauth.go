package handlers

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/jobs"
	"github.com/fanout-dev/fanout/jobs/connectors"
	"github.com/gorilla/securecookie"
	"github.com/labstack/echo/v4"
)

// OAuthReturnRoute is the fixed redirect URI registered with every vendor
// (connectors.OAuthCallbackPath). It lies outside the workspace's pages because vendors
// only redirect to URIs registered in advance; it relays the browser to the workspace's
// callback named in the signed flow cookie.
const OAuthReturnRoute = "/oauth/:kind/callback"

// oauthFlowTTL bounds a connect flow, from start to callback, in seconds.
const oauthFlowTTL = 10 * 60

// OAuthFlow serves the OAuth connect flow of destinations (goth providers from
// connectors.Registry.OAuthProvider). It shares the API's dependencies (NewConnection,
// ResumeConnection), as Dashboard does.
//
// Start puts a random state, the workspace, the user and the provider's session (its PKCE
// verifier) in a short-lived cookie, encrypted and signed with securecookie, and sends the
// browser to the vendor; the vendor sends it back to Return, which relays it to Callback,
// which checks the state against the cookie, exchanges the code, and creates the
// connection (or reconnects one: new tokens, status active, parked deliveries resumed).
// A state given by the caller is never used.
type OAuthFlow struct {
	*Handlers
	codecs []securecookie.Codec
}

// NewOAuthFlow returns the flow. cookieKeys are securecookie pairs, current pair first
// (older pairs only decode, for rotation): a hash key of 32 or 64 bytes, then a block key
// of 32 bytes (AES-256), which keeps the PKCE verifier secret.
func NewOAuthFlow(h *Handlers, cookieKeys ...[]byte) (*OAuthFlow, error) {
	if len(cookieKeys) == 0 || len(cookieKeys)%2 != 0 {
		return nil, errors.New("oauth: cookie keys come in pairs (hash key, block key)")
	}
	for i := 0; i < len(cookieKeys); i += 2 {
		if n := len(cookieKeys[i]); n != 32 && n != 64 {
			return nil, fmt.Errorf("oauth: cookie hash key %d is %d bytes, want 32 or 64", i/2+1, n)
		}
		if n := len(cookieKeys[i+1]); n != 32 {
			return nil, fmt.Errorf("oauth: cookie block key %d is %d bytes, want 32", i/2+1, n)
		}
	}
	codecs := securecookie.CodecsFromPairs(cookieKeys...)
	for _, c := range codecs {
		c.(*securecookie.SecureCookie).MaxAge(oauthFlowTTL).SetSerializer(securecookie.JSONEncoder{})
	}
	return &OAuthFlow{Handlers: h, codecs: codecs}, nil
}

// OAuthKinds lists the connector kinds whose OAuth connect is configured, sorted: the
// dashboard shows a "Connect" button for these and the API-key form for the others.
func (h *Handlers) OAuthKinds() []string { return h.Connectors.OAuthKinds() }

// oauthState is the flow cookie's content.
type oauthState struct {
	State        string `json:"s"`
	Kind         string `json:"k"`
	WorkspaceID  string `json:"w"`
	UserID       string `json:"u,omitempty"`
	ConnectionID string `json:"c,omitempty"` // a reconnect
	Callback     string `json:"cb"`          // the workspace's callback path
	Session      string `json:"g"`           // the goth session: PKCE verifier
}

func oauthCookieName(kind string) string { return "fanout_oauth_" + kind }

func oauthStateError() *Error {
	return newError(http.StatusBadRequest, "oauth_state", "this connect link expired or was started in another browser; start again from the connections page")
}

// Start answers GET …/connections/oauth/:kind/start[?connection_id=conn_…] by redirecting
// to the vendor's authorization page. With connection_id the flow reconnects that
// connection instead of creating one.
func (f *OAuthFlow) Start(c echo.Context) error {
	ctx := c.Request().Context()
	kind := c.Param("kind")
	p, ok := f.Connectors.OAuthProvider(kind)
	if !ok {
		return newError(http.StatusNotFound, "oauth_not_configured", "OAuth connect is not configured for %q on this server; use its API key form", kind)
	}
	id := IdentityOf(c)
	if id.WorkspaceID == "" {
		return newError(http.StatusUnauthorized, "unauthorized", "sign in first")
	}
	if id.Role != "" && db.RoleRank(id.Role) < db.RoleRank(db.RoleAdmin) {
		return newError(http.StatusForbidden, "forbidden", "only admins and owners connect destinations")
	}
	st := oauthState{Kind: kind, WorkspaceID: id.WorkspaceID}
	if id.User != nil {
		st.UserID = id.User.ID
	}
	if cid := c.QueryParam("connection_id"); cid != "" {
		conn, err := f.Store.ConnectionByID(ctx, id.WorkspaceID, cid)
		if err != nil {
			return err
		}
		if conn.Kind != kind {
			return invalid("connection_id", "is a %s connection", conn.Kind)
		}
		st.ConnectionID = conn.ID
	}
	state := db.RandomSecret(32)
	sess, err := p.BeginAuth(state)
	if err != nil {
		return err
	}
	authURL, err := sess.GetAuthURL()
	if err != nil {
		return err
	}
	st.State, st.Session = state, sess.Marshal()
	st.Callback = strings.TrimSuffix(c.Request().URL.Path, "/start") + "/callback"
	value, err := securecookie.EncodeMulti(oauthCookieName(kind), st, f.codecs...)
	if err != nil {
		return fmt.Errorf("oauth: encode flow cookie: %w", err)
	}
	c.SetCookie(&http.Cookie{
		Name: oauthCookieName(kind), Value: value, Path: "/", MaxAge: oauthFlowTTL,
		// The redirect URI is the public base URL: https there means https here, whatever
		// a TLS-terminating proxy forwards.
		HttpOnly: true, Secure: strings.HasPrefix(p.RedirectURL(), "https://") || c.Scheme() == "https",
		// Lax: the vendor's redirect back is a top-level GET from another site.
		SameSite: http.SameSiteLaxMode,
	})
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Redirect(http.StatusFound, authURL)
}

// Return answers the vendor's redirect (OAuthReturnRoute): it relays the browser, with
// the query, to the callback of the workspace that started the flow.
func (f *OAuthFlow) Return(c echo.Context) error {
	st, err := f.readState(c, c.Param("kind"))
	if err != nil || !strings.HasPrefix(st.Callback, "/") || strings.HasPrefix(st.Callback, "//") || strings.Contains(st.Callback, "\\") {
		return oauthStateError()
	}
	c.Response().Header().Set("Referrer-Policy", "no-referrer")
	return c.Redirect(http.StatusSeeOther, st.Callback+"?"+c.Request().URL.RawQuery)
}

// Callback answers GET …/connections/oauth/:kind/callback?code=…&state=…: it checks the
// state against the flow cookie (which it clears), exchanges the code, names the
// account, stores the connection with its tokens sealed, and redirects to the connections
// page (?connected=<id>, or ?oauth_error=<code> when the vendor or the exchange failed).
func (f *OAuthFlow) Callback(c echo.Context) error {
	ctx := c.Request().Context()
	kind := c.Param("kind")
	st, err := f.readState(c, kind)
	c.SetCookie(&http.Cookie{Name: oauthCookieName(kind), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	c.Response().Header().Set("Referrer-Policy", "no-referrer")
	c.Response().Header().Set("Cache-Control", "no-store")
	if err != nil {
		return oauthStateError()
	}
	id := IdentityOf(c)
	if st.WorkspaceID != id.WorkspaceID || (st.UserID != "" && (id.User == nil || id.User.ID != st.UserID)) {
		return newError(http.StatusForbidden, "oauth_state", "this connect flow was started by another user or for another workspace")
	}
	q := c.QueryParams()
	if st.State == "" || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(st.State)) != 1 {
		return newError(http.StatusBadRequest, "oauth_state", "the state does not match this browser's connect flow")
	}
	page := strings.TrimSuffix(c.Request().URL.Path, "/oauth/"+kind+"/callback")
	fail := func(code string) error {
		return c.Redirect(http.StatusSeeOther, page+"?oauth_error="+url.QueryEscape(code))
	}
	if e := q.Get("error"); e != "" {
		return fail(sanitizeOAuthCode(e))
	}
	p, ok := f.Connectors.OAuthProvider(kind)
	if !ok {
		return newError(http.StatusNotFound, "oauth_not_configured", "OAuth connect is not configured for %q on this server", kind)
	}
	sess, err := p.UnmarshalSession(st.Session)
	if err != nil {
		return oauthStateError()
	}
	if _, err := sess.Authorize(p, q); err != nil {
		f.Log.Warn("oauth: code exchange failed", "kind", kind, "workspace_id", st.WorkspaceID, "err", err)
		return fail("exchange_failed")
	}
	user, err := p.FetchUser(sess)
	if err != nil {
		f.Log.Warn("oauth: account look-up failed", "kind", kind, "workspace_id", st.WorkspaceID, "err", err)
		return fail("account_failed")
	}
	oc, err := p.Connection(user)
	if err != nil {
		return err
	}
	conn, err := f.saveOAuthConnection(ctx, st, oc)
	if err != nil {
		if e, ok := AsError(err); ok && e.Status < 500 {
			f.Log.Warn("oauth: connection refused", "kind", kind, "workspace_id", st.WorkspaceID, "err", err)
			return fail("invalid_connection")
		}
		return err
	}
	return c.Redirect(http.StatusSeeOther, page+"?connected="+url.QueryEscape(conn.ID))
}

// saveOAuthConnection creates the connection, or reconnects the one the flow names (or
// the one already connected to the same vendor account): new credentials replace the old
// entirely, the account's config keys are updated and the user's others kept, the status
// becomes active and parked deliveries resume.
func (f *OAuthFlow) saveOAuthConnection(ctx context.Context, st oauthState, oc connectors.OAuthConnection) (*db.Connection, error) {
	conn, err := f.reconnectTarget(ctx, st, oc.AccountID)
	if err != nil {
		return nil, err
	}
	if conn == nil {
		conn, _, err := f.NewConnection(ctx, st.WorkspaceID, st.Kind, oc.Name, oc.Config, oc.Credentials)
		return conn, err
	}
	connector, ok := f.Connectors.Get(conn.Kind)
	if !ok {
		return nil, invalid("kind", "unknown connector kind %q", conn.Kind)
	}
	cfg := map[string]any{}
	_ = json.Unmarshal(conn.Config, &cfg)
	var fresh map[string]any
	if err := json.Unmarshal(oc.Config, &fresh); err != nil {
		return nil, err
	}
	for k, v := range fresh {
		cfg[k] = v
	}
	if conn.Config, err = json.Marshal(cfg); err != nil {
		return nil, err
	}
	wasActive := conn.Status == db.ConnectionActive
	conn.Status, conn.StatusNote = db.ConnectionActive, ""
	if err := f.checkConnection(connector, conn, oc.Credentials); err != nil {
		return nil, err
	}
	if err := jobs.SealCredentials(f.Keyring, conn, oc.Credentials); err != nil {
		return nil, err
	}
	if err := f.Store.UpdateConnection(ctx, conn); err != nil {
		return nil, err
	}
	if !wasActive {
		if err := f.ResumeConnection(ctx, conn); err != nil {
			return nil, err
		}
	}
	return conn, nil
}

// reconnectTarget is the connection the flow updates: the one named at start, else the
// workspace's connection of this kind to the same vendor account, else none.
func (f *OAuthFlow) reconnectTarget(ctx context.Context, st oauthState, accountID string) (*db.Connection, error) {
	if st.ConnectionID != "" {
		conn, err := f.Store.ConnectionByID(ctx, st.WorkspaceID, st.ConnectionID)
		if err != nil {
			return nil, err
		}
		if conn.Kind != st.Kind {
			return nil, invalid("connection_id", "is a %s connection", conn.Kind)
		}
		return conn, nil
	}
	if accountID == "" {
		return nil, nil
	}
	cs, err := f.Store.ListConnections(ctx, st.WorkspaceID)
	if err != nil {
		return nil, err
	}
	for _, conn := range cs {
		var cfg struct {
			AccountID string `json:"account_id"`
		}
		if conn.Kind == st.Kind && json.Unmarshal(conn.Config, &cfg) == nil && cfg.AccountID == accountID {
			return conn, nil
		}
	}
	return nil, nil
}

// readState decodes and checks the flow cookie of kind.
func (f *OAuthFlow) readState(c echo.Context, kind string) (oauthState, error) {
	var st oauthState
	cookie, err := c.Cookie(oauthCookieName(kind))
	if err != nil {
		return st, err
	}
	if err := securecookie.DecodeMulti(oauthCookieName(kind), cookie.Value, &st, f.codecs...); err != nil {
		return st, err
	}
	if st.Kind != kind {
		return st, errors.New("oauth: cookie of another kind")
	}
	return st, nil
}

var oauthCodeChars = regexp.MustCompile(`[^a-z0-9_]`)

// sanitizeOAuthCode keeps a vendor's error code fit for a URL and a page.
func sanitizeOAuthCode(s string) string {
	s = oauthCodeChars.ReplaceAllString(strings.ToLower(s), "")
	if len(s) > 64 {
		s = s[:64]
	}
	if s == "" {
		s = "denied"
	}
	return s
}
