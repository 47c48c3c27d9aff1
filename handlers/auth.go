package handlers

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/views"
	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/argon2"
)

// Password hashing: argon2id with the OWASP-recommended minimum (19 MiB, 2 passes, one
// lane), stored in the PHC string format so parameters can be raised later: a hash
// records the parameters it was made with.
const (
	argonMemory  = 19 * 1024
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
	minPassword  = 10
	maxPassword  = 256
)

// HashPassword returns the argon2id PHC string of a password.
func HashPassword(password string) string {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		panic(err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// CheckPassword reports whether password matches a hash made by HashPassword.
func CheckPassword(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m > 1<<20 || t > 10 || p == 0 {
		return false
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	want, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// dummyHash is compared against when the email is unknown, so a sign-in takes as long
// whether or not the account exists.
var dummyHash = HashPassword("not a real password, only spends the same time")

// Throttling of failed sign-ins, per email and per client address: the first few
// failures are free; after that each further try must wait twice as long as the last,
// up to throttleMax.
const (
	throttleWindow    = 15 * time.Minute
	freeEmailFailures = 5
	freeIPFailures    = 20
	throttleMax       = 15 * time.Minute
)

func (d *Dashboard) throttleWait(ctx context.Context, email, ip string) (time.Duration, error) {
	now := d.Store.Now()
	var wait time.Duration
	for _, k := range []struct {
		key  string
		free int
	}{{"email:" + email, freeEmailFailures}, {"ip:" + ip, freeIPFailures}} {
		n, last, err := d.Store.LoginFailures(ctx, k.key, now.Add(-throttleWindow))
		if err != nil {
			return 0, err
		}
		if n < k.free {
			continue
		}
		delay := min(time.Second<<min(n-k.free, 20), throttleMax)
		wait = max(wait, delay-now.Sub(last))
	}
	return wait, nil
}

// LoginPage answers GET /login.
func (d *Dashboard) LoginPage(c echo.Context) error {
	if SessionOf(c) != nil {
		return c.Redirect(http.StatusSeeOther, "/")
	}
	f := views.AuthForm{CSRF: CSRFToken(c), Next: safeNext(c.QueryParam("next"))}
	f.InviteTo = d.inviteWorkspace(c.Request().Context(), f.Next)
	return render(c, http.StatusOK, views.LoginPage(f))
}

// Login answers POST /login: a new session on success; failures are counted and, past
// a few, slowed down with 429 and Retry-After.
func (d *Dashboard) Login(c echo.Context) error {
	ctx := c.Request().Context()
	f := views.AuthForm{CSRF: CSRFToken(c), Email: strings.TrimSpace(c.FormValue("email")), Next: safeNext(c.FormValue("next"))}
	f.InviteTo = d.inviteWorkspace(ctx, f.Next)
	email := db.NormalizeEmail(f.Email)
	ip := c.RealIP()
	wait, err := d.throttleWait(ctx, email, ip)
	if err != nil {
		return err
	}
	if wait > 0 {
		secs := int(wait.Seconds() + 0.999)
		c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
		f.Error = fmt.Sprintf("Too many failed sign-ins. Try again in %s.", views.Duration(time.Duration(secs)*time.Second))
		return render(c, http.StatusTooManyRequests, views.LoginPage(f))
	}
	password := c.FormValue("password")
	u, err := d.Store.UserByEmail(ctx, email)
	switch {
	case errors.Is(err, db.ErrNotFound):
		CheckPassword(dummyHash, password)
	case err != nil:
		return err
	case len(password) <= maxPassword && CheckPassword(u.PasswordHash, password):
		_ = d.Store.ClearLoginFailures(ctx, "email:"+email)
		if err := d.Store.PruneSessions(ctx); err != nil {
			d.Log.Warn("prune expired sessions", "err", err)
		}
		if _, err := d.Sessions.Start(c, u); err != nil {
			return err
		}
		return c.Redirect(http.StatusSeeOther, orDefault(f.Next, "/"))
	}
	if err := d.Store.RecordLoginFailure(ctx, "email:"+email, "ip:"+ip); err != nil {
		return err
	}
	f.Error = "That email and password don't match an account."
	return render(c, http.StatusUnauthorized, views.LoginPage(f))
}

// SignupPage answers GET /signup.
func (d *Dashboard) SignupPage(c echo.Context) error {
	if SessionOf(c) != nil {
		return c.Redirect(http.StatusSeeOther, "/")
	}
	f := views.AuthForm{CSRF: CSRFToken(c), Next: safeNext(c.QueryParam("next"))}
	f.InviteTo = d.inviteWorkspace(c.Request().Context(), f.Next)
	return render(c, http.StatusOK, views.SignupPage(f))
}

// Signup answers POST /signup: the account, its first workspace (or the workspace of
// the invitation it came from), and a session.
func (d *Dashboard) Signup(c echo.Context) error {
	ctx := c.Request().Context()
	f := views.AuthForm{
		CSRF: CSRFToken(c), Email: strings.TrimSpace(c.FormValue("email")),
		Workspace: strings.TrimSpace(c.FormValue("workspace")), Next: safeNext(c.FormValue("next")),
		Errors: map[string]string{},
	}
	inviteToken := inviteTokenOf(f.Next)
	f.InviteTo = d.inviteWorkspace(ctx, f.Next)
	password := c.FormValue("password")
	if addr, err := mail.ParseAddress(f.Email); err != nil || addr.Address != f.Email || len(f.Email) > 254 {
		f.Errors["email"] = "Enter an email address like ada@example.com."
	}
	switch {
	case len(password) < minPassword:
		f.Errors["password"] = fmt.Sprintf("Use at least %d characters.", minPassword)
	case len(password) > maxPassword:
		f.Errors["password"] = fmt.Sprintf("Use at most %d characters.", maxPassword)
	}
	if f.InviteTo == "" {
		inviteToken = ""
		if f.Workspace == "" {
			f.Errors["workspace"] = "Name your first workspace."
		} else if len(f.Workspace) > 80 {
			f.Errors["workspace"] = "Use at most 80 characters."
		}
	}
	if len(f.Errors) > 0 {
		return render(c, http.StatusUnprocessableEntity, views.SignupPage(f))
	}
	hash := HashPassword(password)
	var u *db.User
	var wsID string
	err := d.Store.InTx(ctx, func(tx *db.Store) error {
		var err error
		if u, err = tx.CreateUser(ctx, f.Email, hash); err != nil {
			return err
		}
		if inviteToken != "" {
			inv, err := tx.AcceptInvite(ctx, inviteToken, u.ID)
			if err != nil {
				return err
			}
			wsID = inv.WorkspaceID
			return nil
		}
		w, err := tx.CreateWorkspaceWithOwner(ctx, f.Workspace, u.ID)
		if err != nil {
			return err
		}
		wsID = w.ID
		return nil
	})
	switch {
	case errors.Is(err, db.ErrConflict):
		f.Errors["email"] = "An account with this email already exists. Sign in instead."
		return render(c, http.StatusUnprocessableEntity, views.SignupPage(f))
	case errors.Is(err, db.ErrInviteUsed):
		f.Error = "That invitation was used or has expired; ask for a new one."
		f.Next, f.InviteTo = "", ""
		return render(c, http.StatusUnprocessableEntity, views.SignupPage(f))
	case err != nil:
		return err
	}
	if _, err := d.Sessions.Start(c, u); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, views.WorkspaceURL(wsID, ""))
}

// Logout answers POST /logout.
func (d *Dashboard) Logout(c echo.Context) error {
	if err := d.Sessions.End(c); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/login")
}

// Home answers GET /: the last workspace of the session, the first one, or sign-in.
func (d *Dashboard) Home(c echo.Context) error {
	sess := SessionOf(c)
	if sess == nil {
		return c.Redirect(http.StatusSeeOther, "/login")
	}
	ws, err := d.Store.UserWorkspaces(c.Request().Context(), sess.User.ID)
	if err != nil {
		return err
	}
	if len(ws) == 0 {
		return c.Redirect(http.StatusSeeOther, "/workspaces/new")
	}
	target := ws[0].ID
	for _, w := range ws {
		if w.ID == sess.WorkspaceID {
			target = w.ID
		}
	}
	return c.Redirect(http.StatusSeeOther, views.WorkspaceURL(target, ""))
}

// InvitePage answers GET /invite/:token.
func (d *Dashboard) InvitePage(c echo.Context) error {
	ctx := c.Request().Context()
	token := c.Param("token")
	inv, err := d.Store.InviteByToken(ctx, token)
	if errors.Is(err, db.ErrInviteUsed) {
		return render(c, http.StatusNotFound, views.InviteInvalidPage(CSRFToken(c)))
	}
	if err != nil {
		return err
	}
	sess := SessionOf(c)
	if sess == nil {
		return c.Redirect(http.StatusSeeOther, "/signup?next="+url.QueryEscape("/invite/"+token))
	}
	w, err := d.Store.WorkspaceByID(ctx, inv.WorkspaceID)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Referrer-Policy", "no-referrer")
	return render(c, http.StatusOK, views.InvitePage(CSRFToken(c), token, w.Name, inv.Role, sess.User.Email))
}

// AcceptInvite answers POST /invite/:token.
func (d *Dashboard) AcceptInvite(c echo.Context) error {
	sess := SessionOf(c)
	if sess == nil {
		return c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape("/invite/"+c.Param("token")))
	}
	inv, err := d.Store.AcceptInvite(c.Request().Context(), c.Param("token"), sess.User.ID)
	if errors.Is(err, db.ErrInviteUsed) {
		return render(c, http.StatusNotFound, views.InviteInvalidPage(CSRFToken(c)))
	}
	if err != nil {
		return err
	}
	setFlash(c, "success", "Welcome! You joined the workspace as "+inv.Role+".")
	return c.Redirect(http.StatusSeeOther, views.WorkspaceURL(inv.WorkspaceID, ""))
}

func inviteTokenOf(next string) string {
	t, ok := strings.CutPrefix(next, "/invite/")
	if !ok || strings.ContainsAny(t, "/?#") {
		return ""
	}
	return t
}

// inviteWorkspace names the workspace of the invitation next points at, if it is valid.
func (d *Dashboard) inviteWorkspace(ctx context.Context, next string) string {
	token := inviteTokenOf(next)
	if token == "" {
		return ""
	}
	inv, err := d.Store.InviteByToken(ctx, token)
	if err != nil {
		return ""
	}
	w, err := d.Store.WorkspaceByID(ctx, inv.WorkspaceID)
	if err != nil {
		return ""
	}
	return w.Name
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
