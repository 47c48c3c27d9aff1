package web

import (
	"github.com/fanout-dev/fanout/handlers"
	"github.com/labstack/echo/v4"
)

// oauthRoutes mounts the OAuth connect flow on the dashboard's signed-in workspace group
// g (its middleware sets handlers.IdentityOf(c).WorkspaceID): start, and the callback
// that finishes it. The dashboard links to <g>/connections/oauth/<kind>/start, with
// ?connection_id=<id> to reconnect.
func oauthRoutes(g *echo.Group, f *handlers.OAuthFlow) {
	g.GET("/connections/oauth/:kind/start", f.Start)
	g.GET("/connections/oauth/:kind/callback", f.Callback)
}

// oauthReturnRoute mounts the redirect URI registered with every vendor,
// <FANOUT_BASE_URL>/oauth/<kind>/callback, outside the workspace group: it only relays
// the browser to the callback of the workspace that started the flow.
func oauthReturnRoute(e *echo.Echo, f *handlers.OAuthFlow) {
	e.GET(handlers.OAuthReturnRoute, f.Return)
}
