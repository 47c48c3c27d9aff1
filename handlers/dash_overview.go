package handlers

import (
	"net/http"
	"strings"
	"time"

	"github.com/fanout-dev/fanout/views"
	"github.com/labstack/echo/v4"
)

// OverviewPage answers GET /w/:workspace: the last 24 hours at a glance.
func (d *Dashboard) OverviewPage(c echo.Context) error {
	ctx := c.Request().Context()
	now := d.Store.Now()
	since := now.Add(-healthWindow)
	rows, err := d.connectionRows(c)
	if err != nil {
		return err
	}
	data := views.OverviewData{Connections: rows}
	for _, r := range rows {
		if r.Health != nil {
			data.Succeeded += r.Health.Succeeded
			data.Dead += r.Health.Dead
			data.Retrying += r.Health.Retrying + r.Health.Pending
		}
	}
	if data.Events, err = d.Store.CountEventsSince(ctx, workspaceID(c), since); err != nil {
		return err
	}
	// Hour-aligned buckets, the last one holding the current hour.
	end := now.Truncate(time.Hour).Add(time.Hour)
	if data.Buckets, err = d.Store.Timeline(ctx, workspaceID(c), end.Add(-healthWindow), end, 24); err != nil {
		return err
	}
	s, err := d.shell(c, "Overview", "overview")
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.OverviewPage(s, data))
}

// NewWorkspacePage answers GET /workspaces/new.
func (d *Dashboard) NewWorkspacePage(c echo.Context) error {
	s, err := d.shell(c, "New workspace", "")
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.NewWorkspacePage(s, "", ""))
}

// CreateWorkspacePage answers POST /workspaces: the signed-in user owns the new workspace.
func (d *Dashboard) CreateWorkspacePage(c echo.Context) error {
	name := strings.TrimSpace(c.FormValue("name"))
	msg := ""
	switch {
	case name == "":
		msg = "Name the workspace."
	case len(name) > 80:
		msg = "Use at most 80 characters."
	}
	if msg != "" {
		s, err := d.shell(c, "New workspace", "")
		if err != nil {
			return err
		}
		return render(c, http.StatusUnprocessableEntity, views.NewWorkspacePage(s, name, msg))
	}
	w, err := d.Store.CreateWorkspaceWithOwner(c.Request().Context(), name, userOf(c).ID)
	if err != nil {
		return err
	}
	setFlash(c, "success", "Workspace "+w.Name+" created.")
	return redirect(c, views.WorkspaceURL(w.ID, ""))
}
