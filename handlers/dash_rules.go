package handlers

import (
	"net/http"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/views"
	"github.com/labstack/echo/v4"
)

// RulesPage answers GET /w/:workspace/rules: rules in evaluation order (the twin of
// GET /v1/rules). Rules are created through the API until the visual builder lands.
func (d *Dashboard) RulesPage(c echo.Context) error {
	ctx := c.Request().Context()
	rs, err := d.Store.ListRules(ctx, workspaceID(c), db.RuleFilter{})
	if err != nil {
		return err
	}
	conns, err := d.connectionsByID(c)
	if err != nil {
		return err
	}
	s, err := d.shell(c, "Rules", "rules")
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.RulesPage(s, views.RulesData{Rules: rs, Connections: conns, BaseURL: d.baseURL(c)}))
}

func (d *Dashboard) connectionsByID(c echo.Context) (map[string]*db.Connection, error) {
	cs, err := d.Store.ListConnections(c.Request().Context(), workspaceID(c))
	if err != nil {
		return nil, err
	}
	m := make(map[string]*db.Connection, len(cs))
	for _, cn := range cs {
		m[cn.ID] = cn
	}
	return m, nil
}

// ToggleRule answers POST /w/:workspace/rules/:id/toggle (the twin of PATCH
// /v1/rules/:id {"enabled": …}); htmx gets the updated row.
func (d *Dashboard) ToggleRule(c echo.Context) error {
	ctx := c.Request().Context()
	r, err := d.Store.RuleByID(ctx, workspaceID(c), c.Param("id"))
	if err != nil {
		return err
	}
	r.Enabled = !r.Enabled
	if err := d.Store.UpdateRule(ctx, r); err != nil {
		return err
	}
	d.Engine.InvalidateRules(r.WorkspaceID)
	msg := "Rule disabled."
	if r.Enabled {
		msg = "Rule enabled."
	}
	if !isPartial(c) {
		setFlash(c, "success", msg)
		return redirect(c, wsPath(c, "/rules"))
	}
	conns, err := d.connectionsByID(c)
	if err != nil {
		return err
	}
	toast(c, "success", msg)
	s := views.Shell{CSRF: CSRFToken(c), Workspace: MembershipOf(c), Now: d.Store.Now()}
	return render(c, http.StatusOK, views.RuleRow(s, r, conns))
}

// DeleteRulePage answers POST /w/:workspace/rules/:id/delete (the twin of DELETE
// /v1/rules/:id); htmx gets an empty row, which removes it.
func (d *Dashboard) DeleteRulePage(c echo.Context) error {
	if err := d.Store.DeleteRule(c.Request().Context(), workspaceID(c), c.Param("id")); err != nil {
		return err
	}
	d.Engine.InvalidateRules(workspaceID(c))
	if isPartial(c) {
		toast(c, "success", "Rule deleted.")
		return c.HTML(http.StatusOK, "")
	}
	setFlash(c, "success", "Rule deleted.")
	return redirect(c, wsPath(c, "/rules"))
}
