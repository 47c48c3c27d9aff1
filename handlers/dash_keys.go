package handlers

import (
	"net/http"
	"strings"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/views"
	"github.com/labstack/echo/v4"
)

// KeysPage answers GET /w/:workspace/api-keys.
func (d *Dashboard) KeysPage(c echo.Context) error {
	return d.renderKeys(c, http.StatusOK, views.KeysData{})
}

func (d *Dashboard) renderKeys(c echo.Context, status int, data views.KeysData) error {
	ks, err := d.Store.ListAPIKeys(c.Request().Context(), workspaceID(c))
	if err != nil {
		return err
	}
	data.Keys = ks
	s, err := d.shell(c, "API keys", "keys")
	if err != nil {
		return err
	}
	if data.Plaintext != "" {
		return renderSecret(c, status, views.KeysPage(s, data))
	}
	return render(c, status, views.KeysPage(s, data))
}

// CreateKeyPage answers POST /w/:workspace/api-keys (as `fanout apikey create` does): the
// key is shown once; only its prefix and hash are kept.
func (d *Dashboard) CreateKeyPage(c echo.Context) error {
	name, scope := strings.TrimSpace(c.FormValue("name")), c.FormValue("scope")
	data := views.KeysData{Name: name, Scope: scope}
	switch {
	case name == "":
		data.Error = "Name the key after what uses it, like \"Production backend\"."
	case len(name) > 100:
		data.Error = "Use at most 100 characters for the name."
	case scope != db.ScopeIngest && scope != db.ScopeAdmin:
		data.Error = "Choose the ingest or the admin scope."
	}
	if data.Error != "" {
		return d.renderKeys(c, http.StatusUnprocessableEntity, data)
	}
	plain, k, err := d.Store.CreateAPIKey(c.Request().Context(), workspaceID(c), name, scope)
	if err != nil {
		return err
	}
	return d.renderKeys(c, http.StatusCreated, views.KeysData{Created: k, Plaintext: plain})
}

// RevokeKeyPage answers POST /w/:workspace/api-keys/:id/revoke; htmx gets the row back.
func (d *Dashboard) RevokeKeyPage(c echo.Context) error {
	ctx := c.Request().Context()
	if err := d.Store.RevokeAPIKey(ctx, workspaceID(c), c.Param("id")); err != nil {
		return err
	}
	if !isPartial(c) {
		setFlash(c, "success", "Key revoked.")
		return redirect(c, wsPath(c, "/api-keys"))
	}
	ks, err := d.Store.ListAPIKeys(ctx, workspaceID(c))
	if err != nil {
		return err
	}
	for _, k := range ks {
		if k.ID == c.Param("id") {
			toast(c, "success", "Key revoked.")
			s := views.Shell{CSRF: CSRFToken(c), Workspace: MembershipOf(c), Now: d.Store.Now()}
			return render(c, http.StatusOK, views.KeyRow(s, k))
		}
	}
	return db.ErrNotFound
}
