package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/handlers"
	"github.com/labstack/echo/v4"
)

var (
	errUnauthorized = &handlers.Error{Status: http.StatusUnauthorized, Code: "unauthorized",
		Message: "missing or invalid API key: send Authorization: Bearer <key>"}
	errForbidden = &handlers.Error{Status: http.StatusForbidden, Code: "forbidden",
		Message: "this API key's scope does not allow this request; an admin key is needed"}
)

// apiKeyAuth authenticates /v1 requests by their bearer key. Keys in the query string are
// refused: they end up in logs. ingestOK lets ingest-scoped keys through.
func apiKeyAuth(store *db.Store, ingestOK bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			auth := c.Request().Header.Get(echo.HeaderAuthorization)
			plain, ok := strings.CutPrefix(auth, "Bearer ")
			if !ok || plain == "" {
				return errUnauthorized
			}
			ctx := c.Request().Context()
			key, err := store.AuthenticateAPIKey(ctx, strings.TrimSpace(plain))
			if errors.Is(err, db.ErrInvalidKey) {
				return errUnauthorized
			}
			if err != nil {
				return err
			}
			if key.Scope != db.ScopeAdmin && !ingestOK {
				return errForbidden
			}
			_ = store.TouchAPIKey(ctx, key)
			handlers.SetIdentity(c, &handlers.Identity{WorkspaceID: key.WorkspaceID, Key: key})
			return next(c)
		}
	}
}
