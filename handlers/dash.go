package handlers

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/a-h/templ"
	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/views"
	"github.com/labstack/echo/v4"
)

// SessionManager starts and ends dashboard sessions; web implements it (cookies).
type SessionManager interface {
	// Start signs u in: it ends the request's current session, if any, and creates a new
	// one with a new id and CSRF token (so a session id planted before sign-in is useless).
	Start(c echo.Context, u *db.User) (*Session, error)
	// End signs the request's session out.
	End(c echo.Context) error
}

// Dashboard serves the server-rendered pages. It shares the API's dependencies and
// helpers (NewConnection, TestSend, RotateSecret, replay …), so each page action does
// what its JSON twin in /v1 does.
type Dashboard struct {
	*Handlers
	Sessions SessionManager
	// BaseURL is the public URL of the dashboard (invitation links, curl examples); when
	// empty it is taken from the request.
	BaseURL string
}

// Session is the signed-in browser of a request.
type Session struct {
	*db.Session
	User *db.User
}

const (
	sessionKey    = "fanout.session"
	csrfKey       = "fanout.csrf"
	membershipKey = "fanout.membership"
)

// SetSession is called by web's session middleware.
func SetSession(c echo.Context, s *Session) { c.Set(sessionKey, s) }

// SessionOf returns the request's session, or nil when signed out.
func SessionOf(c echo.Context) *Session {
	s, _ := c.Get(sessionKey).(*Session)
	return s
}

// SetCSRFToken is called by web's CSRF middleware with the token forms must carry.
func SetCSRFToken(c echo.Context, token string) { c.Set(csrfKey, token) }

// CSRFToken returns the token to put in forms and the hx-headers of the page.
func CSRFToken(c echo.Context) string {
	t, _ := c.Get(csrfKey).(string)
	return t
}

// SetMembership is called by web's workspace middleware once it checked the membership.
func SetMembership(c echo.Context, m *db.UserWorkspace) {
	c.Set(membershipKey, m)
	SetIdentity(c, &Identity{WorkspaceID: m.ID, User: userOf(c), Role: m.Role})
}

// MembershipOf returns the workspace of a /w/:workspace request and the user's role in it.
func MembershipOf(c echo.Context) *db.UserWorkspace {
	m, _ := c.Get(membershipKey).(*db.UserWorkspace)
	return m
}

func userOf(c echo.Context) *db.User {
	if s := SessionOf(c); s != nil {
		return s.User
	}
	return nil
}

// errForbidden answers a viewer's attempt to change something.
var errViewer = &Error{Status: http.StatusForbidden, Code: "forbidden", Message: "your role in this workspace can only view it"}

// RequireRole refuses the request unless the member's role is at least role.
func RequireRole(c echo.Context, role string) error {
	m := MembershipOf(c)
	if m == nil || db.RoleRank(m.Role) < db.RoleRank(role) {
		return errViewer
	}
	return nil
}

// shell builds the layout data of a workspace page.
func (d *Dashboard) shell(c echo.Context, title, nav string) (views.Shell, error) {
	s := views.Shell{Title: title, Nav: nav, CSRF: CSRFToken(c), Now: d.Store.Now(), Flash: takeFlash(c)}
	if sess := SessionOf(c); sess != nil {
		s.User = sess.User
		ws, err := d.Store.UserWorkspaces(c.Request().Context(), sess.User.ID)
		if err != nil {
			return s, err
		}
		s.Workspaces = ws
	}
	s.Workspace = MembershipOf(c)
	return s, nil
}

// render writes a component as the response. It renders into a buffer first, so a
// failing component becomes a clean error page instead of half a page.
func render(c echo.Context, status int, comp templ.Component) error {
	var buf bytes.Buffer
	if err := comp.Render(c.Request().Context(), &buf); err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	h.Add(echo.HeaderVary, "HX-Request")
	return c.HTMLBlob(status, buf.Bytes())
}

// renderSecret renders a page that shows a secret once: no cache may keep it.
func renderSecret(c echo.Context, status int, comp templ.Component) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	return render(c, status, comp)
}

// isPartial reports whether htmx asked for a region rather than a page.
func isPartial(c echo.Context) bool {
	r := c.Request()
	return r.Header.Get("HX-Request") == "true" && r.Header.Get("HX-Boosted") != "true"
}

// redirect sends the browser to path: 303 for forms, HX-Redirect for htmx requests.
func redirect(c echo.Context, path string) error {
	if c.Request().Header.Get("HX-Request") == "true" {
		c.Response().Header().Set("HX-Redirect", path)
		return c.NoContent(http.StatusOK)
	}
	return c.Redirect(http.StatusSeeOther, path)
}

// toast asks the page to show a short message (see static/js/app.js).
func toast(c echo.Context, kind, message string) {
	b, _ := json.Marshal(map[string]map[string]string{"toast": {"kind": kind, "message": message}})
	c.Response().Header().Set("HX-Trigger", string(b))
}

const flashCookie = "fanout_flash"

// setFlash keeps a message for the next page (POST-redirect-GET).
func setFlash(c echo.Context, kind, message string) {
	c.SetCookie(&http.Cookie{
		Name: flashCookie, Value: kind + "." + base64.RawURLEncoding.EncodeToString([]byte(message)),
		Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: IsSecure(c), MaxAge: 60,
	})
}

func takeFlash(c echo.Context) views.Flash {
	ck, err := c.Cookie(flashCookie)
	if err != nil || ck.Value == "" {
		return views.Flash{}
	}
	c.SetCookie(&http.Cookie{Name: flashCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: IsSecure(c)})
	kind, enc, _ := strings.Cut(ck.Value, ".")
	msg, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil || (kind != "success" && kind != "error") || len(msg) > 500 {
		return views.Flash{}
	}
	return views.Flash{Kind: kind, Message: string(msg)}
}

const secureKey = "fanout.secure"

// MarkSecure records that the dashboard is served over https (an https FANOUT_BASE_URL),
// whatever the request says.
func MarkSecure(c echo.Context) { c.Set(secureKey, true) }

// IsSecure reports whether the browser reaches us over https: an https base URL, TLS, or
// a proxy that says so. Cookies are then Secure and __Host- prefixed.
func IsSecure(c echo.Context) bool {
	if s, _ := c.Get(secureKey).(bool); s {
		return true
	}
	return c.Request().TLS != nil || strings.EqualFold(c.Request().Header.Get("X-Forwarded-Proto"), "https")
}

// fieldErrors turns a validation error into the form's error map; other errors are
// returned for the error handler.
func fieldErrors(err error) (map[string]string, string, error) {
	e, ok := AsError(err)
	if !ok || (e.Status != http.StatusUnprocessableEntity && e.Status != http.StatusBadRequest && e.Status != http.StatusConflict) {
		return nil, "", err
	}
	if e.Field == "" {
		return map[string]string{}, sentence(e.Message), nil
	}
	return map[string]string{e.Field: sentence(e.Message)}, "", nil
}

func sentence(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// safeNext returns next when it is a path on this site, else "".
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || len(next) > 500 {
		return ""
	}
	u, err := url.Parse(next)
	if err != nil || u.Host != "" || u.Scheme != "" {
		return ""
	}
	return next
}

// baseURL is the dashboard's public origin, for links shown to copy elsewhere.
func (d *Dashboard) baseURL(c echo.Context) string {
	if d.BaseURL != "" {
		return strings.TrimSuffix(d.BaseURL, "/")
	}
	scheme := "http"
	if IsSecure(c) {
		scheme = "https"
	}
	return scheme + "://" + c.Request().Host
}

// wsPath is a path inside the request's workspace.
func wsPath(c echo.Context, path string) string {
	return views.WorkspaceURL(workspaceID(c), path)
}

// RenderError answers a dashboard request with the HTML error page, or for htmx with a
// toast (htmx does not swap error responses).
func RenderError(c echo.Context, e *Error, requestID string) error {
	msg := sentence(e.Message)
	if e.Field != "" {
		msg = sentence(e.Field + " " + e.Message)
	}
	if c.Request().Header.Get("HX-Request") == "true" {
		toast(c, "error", msg)
		return c.String(e.Status, msg)
	}
	title := map[int]string{
		http.StatusNotFound: "Not found", http.StatusForbidden: "Not allowed", http.StatusUnauthorized: "Sign in first",
		http.StatusTooManyRequests: "Slow down", http.StatusConflict: "Conflict", http.StatusServiceUnavailable: "Temporarily unavailable",
		http.StatusMethodNotAllowed: "Not allowed", http.StatusBadRequest: "Bad request", http.StatusUnprocessableEntity: "Check your input",
	}[e.Status]
	if title == "" {
		title = "Something went wrong"
	}
	if e.Status == http.StatusNotFound {
		msg = "There is nothing here, or it belongs to a workspace you are not a member of."
	}
	if e.Status < 500 {
		requestID = ""
	}
	c.Response().Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
	return render(c, e.Status, views.ErrorPage(e.Status, title, msg, requestID))
}
