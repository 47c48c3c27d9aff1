package web

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/handlers"
	"github.com/labstack/echo/v4"
)

// Dashboard sessions live in the database (table sessions): the cookie holds 32 random
// bytes and the table their SHA-256. See docs/decisions.md ("Dashboard sessions") for
// why this and not signed cookies. Behind https the cookies take the __Host- prefix,
// which pins them to this host and path / and requires Secure.
const (
	sessionCookie = "fanout_session"
	anonCSRF      = "fanout_csrf" // CSRF token of visitors not signed in (login, signup)
	hostPrefix    = "__Host-"
	csrfHeader    = "X-CSRF-Token"
	csrfField     = "_csrf"
)

func cookieName(c echo.Context, base string) string {
	if handlers.IsSecure(c) {
		return hostPrefix + base
	}
	return base
}

func readCookie(c echo.Context, base string) string {
	for _, name := range []string{hostPrefix + base, base} {
		if ck, err := c.Cookie(name); err == nil && ck.Value != "" {
			return ck.Value
		}
	}
	return ""
}

func setCookie(c echo.Context, base, value string, maxAge int) {
	c.SetCookie(&http.Cookie{
		Name: cookieName(c, base), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: handlers.IsSecure(c), SameSite: http.SameSiteLaxMode,
	})
}

// sessions implements handlers.SessionManager on the store.
type sessions struct {
	store *db.Store
	// secure: the dashboard is served over https (FANOUT_BASE_URL), so cookies are
	// Secure and __Host- prefixed even when TLS ends at a proxy that does not say so.
	secure bool
}

// Start ends the request's session, if any, and creates a new one: the id rotates at
// every sign-in, and the new session brings a new CSRF token.
func (m *sessions) Start(c echo.Context, u *db.User) (*handlers.Session, error) {
	ctx := c.Request().Context()
	if token := readCookie(c, sessionCookie); token != "" {
		if err := m.store.DeleteSession(ctx, token); err != nil {
			return nil, err
		}
	}
	token, sess, err := m.store.CreateSession(ctx, u.ID, c.Request().UserAgent(), c.RealIP())
	if err != nil {
		return nil, err
	}
	setCookie(c, sessionCookie, token, int(db.SessionMaxAge.Seconds()))
	setCookie(c, anonCSRF, "", -1)
	s := &handlers.Session{Session: sess, User: u}
	handlers.SetSession(c, s)
	handlers.SetCSRFToken(c, sess.CSRFToken)
	return s, nil
}

// End deletes the request's session and its cookie.
func (m *sessions) End(c echo.Context) error {
	if token := readCookie(c, sessionCookie); token != "" {
		if err := m.store.DeleteSession(c.Request().Context(), token); err != nil {
			return err
		}
	}
	setCookie(c, sessionCookie, "", -1)
	return nil
}

// load finds the request's session (if any) and the CSRF token its forms must carry:
// the session's, or for visitors not signed in a random token in its own cookie.
func (m *sessions) load(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if m.secure {
			handlers.MarkSecure(c)
		}
		if token := readCookie(c, sessionCookie); token != "" {
			sess, u, err := m.store.SessionByToken(c.Request().Context(), token)
			switch {
			case err == nil:
				handlers.SetSession(c, &handlers.Session{Session: sess, User: u})
				handlers.SetCSRFToken(c, sess.CSRFToken)
				return next(c)
			case errors.Is(err, db.ErrSessionExpired):
				setCookie(c, sessionCookie, "", -1)
			default:
				return err
			}
		}
		token := readCookie(c, anonCSRF)
		if len(token) < 32 {
			token = db.RandomSecret(32)
			setCookie(c, anonCSRF, token, 12*3600)
		}
		handlers.SetCSRFToken(c, token)
		return next(c)
	}
}

var (
	errCrossSite = &handlers.Error{Status: http.StatusForbidden, Code: "csrf",
		Message: "cross-site request refused; submit the form from the Fanout dashboard"}
	errCSRFToken = &handlers.Error{Status: http.StatusForbidden, Code: "csrf",
		Message: "this form has expired or did not come from the Fanout dashboard; reload the page and try again"}
)

func isSafeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// sameOrigin refuses a state-changing request that the browser says comes from another
// site (Sec-Fetch-Site), or whose Origin is neither this host nor publicHost (the host of
// the configured base URL, for proxies that rewrite Host).
func sameOrigin(c echo.Context, publicHost string) error {
	r := c.Request()
	if isSafeMethod(r.Method) {
		return nil
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return errCrossSite
	}
	if o := r.Header.Get(echo.HeaderOrigin); o != "" {
		u, err := url.Parse(o)
		if o == "null" || err != nil || (!strings.EqualFold(u.Host, r.Host) && !strings.EqualFold(u.Host, publicHost)) {
			return errCrossSite
		}
	}
	return nil
}

// csrfProtect checks every state-changing request, forms and htmx alike: same origin,
// and the token (X-CSRF-Token header from htmx's hx-headers, or the _csrf form field)
// equal to the session's. Run it after sessions.load.
func csrfProtect(publicHost string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			return checkCSRF(c, publicHost, next)
		}
	}
}

func checkCSRF(c echo.Context, publicHost string, next echo.HandlerFunc) error {
	{
		if isSafeMethod(c.Request().Method) {
			return next(c)
		}
		if err := sameOrigin(c, publicHost); err != nil {
			return err
		}
		want := handlers.CSRFToken(c)
		got := c.Request().Header.Get(csrfHeader)
		if got == "" {
			got = c.FormValue(csrfField)
		}
		if want == "" || got == "" || subtle.ConstantTimeCompare([]byte(want), []byte(got)) != 1 {
			return errCSRFToken
		}
		return next(c)
	}
}

// contentSecurityPolicy lets pages load only this origin's scripts and styles: no
// inline script, no eval (htmx runs with allowEval off), no framing.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// pageHeaders sets the dashboard's security headers.
func pageHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		if c.Response().Header().Get("Cache-Control") == "" {
			h.Set("Cache-Control", "no-cache, private")
		}
		return next(c)
	}
}
