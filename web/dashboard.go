package web

import (
	"net/http"
	"net/url"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/handlers"
	"github.com/fanout-dev/fanout/static"
	"github.com/hibiken/asynqmon"
	"github.com/labstack/echo/v4"
)

// dashboardRoutes mounts the server-rendered dashboard: sign-in under /, every
// workspace page under /w/:workspace (so links can be shared and several workspaces
// open in tabs), the static assets, and asynqmon for instance administrators.
func dashboardRoutes(e *echo.Echo, cfg Config, h *handlers.Handlers) {
	publicHost, secure := "", false
	if u, err := url.Parse(cfg.BaseURL); err == nil {
		publicHost, secure = u.Host, u.Scheme == "https"
	}
	sm := &sessions{store: h.Store, secure: secure}
	d := &handlers.Dashboard{Handlers: h, Sessions: sm, BaseURL: cfg.BaseURL}
	page := []echo.MiddlewareFunc{pageHeaders, sm.load, csrfProtect(publicHost)}
	signedIn := append(page[:len(page):len(page)], requireSession)

	e.GET(static.Prefix+"*", echo.WrapHandler(static.Handler()))

	e.GET("/", d.Home, page...)
	e.GET("/login", d.LoginPage, page...)
	e.POST("/login", d.Login, page...)
	e.GET("/signup", d.SignupPage, page...)
	e.POST("/signup", d.Signup, page...)
	e.POST("/logout", d.Logout, page...)
	e.GET("/invite/:token", d.InvitePage, page...)
	e.POST("/invite/:token", d.AcceptInvite, page...)
	e.GET("/workspaces/new", d.NewWorkspacePage, signedIn...)
	e.POST("/workspaces", d.CreateWorkspacePage, signedIn...)

	w := e.Group("/w/:workspace", append(signedIn, requireMember(h.Store))...)
	w.GET("", d.OverviewPage)
	w.GET("/events", d.EventsPage)
	w.GET("/events/:id", d.EventPage)
	w.GET("/events/:id/timeline", d.EventTimeline)
	w.POST("/deliveries/:id/replay", d.ReplayDeliveryPage)

	if cfg.OAuth != nil {
		oauthRoutes(w, cfg.OAuth)
		oauthReturnRoute(e, cfg.OAuth)
	}
	w.GET("/connections", d.ConnectionsPage)
	w.GET("/connections/new", d.NewConnectionPage)
	w.POST("/connections", d.CreateConnectionPage)
	w.GET("/connections/:id", d.ConnectionPage)
	w.POST("/connections/:id/test", d.TestConnectionPage)
	w.POST("/connections/:id/rotate-secret", d.RotateSecretPage)
	w.POST("/connections/:id/enable", d.SetConnectionEnabled(true))
	w.POST("/connections/:id/disable", d.SetConnectionEnabled(false))
	w.POST("/connections/:id/credentials", d.UpdateCredentialsPage)
	w.POST("/connections/:id/delete", d.DeleteConnectionPage)

	w.GET("/rules", d.RulesPage)
	w.POST("/rules/:id/toggle", d.ToggleRule)
	w.POST("/rules/:id/delete", d.DeleteRulePage)

	w.GET("/dead-letters", d.DeadLettersPage)
	w.POST("/dead-letters/replay", d.ReplaySelected)
	w.POST("/dead-letters/discard", d.DiscardSelected)
	w.GET("/dead-letters/replay-all", d.ReplayAllConfirm)
	w.POST("/dead-letters/replay-all", d.ReplayAll)

	w.GET("/api-keys", d.KeysPage)
	w.POST("/api-keys", d.CreateKeyPage)
	w.POST("/api-keys/:id/revoke", d.RevokeKeyPage)

	w.GET("/members", d.MembersPage)
	w.POST("/members/invites", d.CreateInvitePage)
	w.POST("/members/invites/:id/revoke", d.RevokeInvitePage)
	w.POST("/members/:user/role", d.SetMemberRolePage)
	w.POST("/members/:user/remove", d.RemoveMemberPage)

	mountQueues(e, cfg, sm)
}

// requireSession sends visitors who are not signed in to the sign-in page.
func requireSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if handlers.SessionOf(c) != nil {
			return next(c)
		}
		if c.Request().Method != http.MethodGet {
			return &handlers.Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "sign in first"}
		}
		login := "/login?next=" + url.QueryEscape(c.Request().URL.RequestURI())
		if c.Request().Header.Get("HX-Request") == "true" {
			c.Response().Header().Set("HX-Redirect", login)
			return c.NoContent(http.StatusUnauthorized)
		}
		return c.Redirect(http.StatusSeeOther, login)
	}
}

// requireMember lets a request into /w/:workspace only for members: anyone else gets
// 404, the same answer as for a workspace that does not exist. A viewer's
// state-changing request is refused with 403; handlers check finer rules (owners).
func requireMember(store *db.Store) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			sess := handlers.SessionOf(c)
			m, err := store.MembershipOf(c.Request().Context(), c.Param("workspace"), sess.User.ID)
			if err != nil {
				return err
			}
			handlers.SetMembership(c, m)
			if c.Request().Method != http.MethodGet && c.Request().Method != http.MethodHead {
				if err := handlers.RequireRole(c, db.RoleAdmin); err != nil {
					return err
				}
			}
			if sess.WorkspaceID != m.ID {
				if err := store.SetSessionWorkspace(c.Request().Context(), sess.ID, m.ID); err != nil {
					return err
				}
			}
			return next(c)
		}
	}
}

// QueuesPath is where asynqmon is mounted.
const QueuesPath = "/admin/queues"

// mountQueues serves asynqmon to instance administrators (users promoted with `fanout
// user promote EMAIL`); everyone else gets 404. asynqmon's own UI posts JSON without
// our CSRF token, so its state-changing requests must at least come from this origin.
func mountQueues(e *echo.Echo, cfg Config, sm *sessions) {
	var mon http.Handler
	if cfg.QueueRedis != nil {
		mon = asynqmon.New(asynqmon.Options{RootPath: QueuesPath, RedisConnOpt: cfg.QueueRedis})
	}
	publicHost := ""
	if u, err := url.Parse(cfg.BaseURL); err == nil {
		publicHost = u.Host
	}
	handler := func(c echo.Context) error {
		sess := handlers.SessionOf(c)
		if sess == nil || !sess.User.IsAdmin {
			return echo.ErrNotFound
		}
		if err := sameOrigin(c, publicHost); err != nil {
			return err
		}
		if mon == nil {
			return &handlers.Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "the queue monitor is not configured in this process"}
		}
		c.Response().Header().Set("X-Frame-Options", "DENY")
		mon.ServeHTTP(c.Response(), c.Request())
		return nil
	}
	e.Any(QueuesPath, handler, sm.load)
	e.Any(QueuesPath+"/*", handler, sm.load)
}
