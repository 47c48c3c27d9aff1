package handlers

import (
	"github.com/fanout-dev/fanout/db"
	"github.com/labstack/echo/v4"
)

// Identity is who a request acts as: always a workspace, with an API key (the /v1 API) or
// a signed-in user (the dashboard).
type Identity struct {
	WorkspaceID string
	Key         *db.APIKey
	User        *db.User
	Role        string
}

const identityKey = "fanout.identity"

// SetIdentity is called by web's authentication middleware.
func SetIdentity(c echo.Context, id *Identity) { c.Set(identityKey, id) }

// IdentityOf returns the request's identity; authentication middleware guarantees one on
// every route that reaches a handler needing it.
func IdentityOf(c echo.Context) *Identity {
	id, _ := c.Get(identityKey).(*Identity)
	if id == nil {
		return &Identity{}
	}
	return id
}

func workspaceID(c echo.Context) string { return IdentityOf(c).WorkspaceID }
