package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/jobs"
	"github.com/fanout-dev/fanout/views"
	"github.com/labstack/echo/v4"
)

// ranges maps the filter's time-range choices to durations.
var ranges = map[string]time.Duration{"1h": time.Hour, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "30d": 30 * 24 * time.Hour}

// timeRange turns a range choice or since/until (RFC 3339, as in /v1) into bounds.
func (d *Dashboard) timeRange(rng, since, until string) (time.Time, time.Time, error) {
	var s, u time.Time
	var err error
	if dur, ok := ranges[rng]; ok {
		s = d.Store.Now().Add(-dur)
	} else if rng != "" {
		return s, u, invalid("range", "must be one of 1h, 24h, 7d, 30d")
	}
	if since != "" {
		if s, err = parseTime("since", since); err != nil {
			return s, u, err
		}
	}
	u, err = parseTime("until", until)
	return s, u, err
}

// EventsPage answers GET /w/:workspace/events: the list with filters and cursor paging
// (the twin of GET /v1/events). An htmx request gets only the results region.
func (d *Dashboard) EventsPage(c echo.Context) error {
	ctx := c.Request().Context()
	f := views.EventsFilter{
		Type: c.QueryParam("type"), Status: c.QueryParam("status"), Range: c.QueryParam("range"),
		Since: c.QueryParam("since"), Until: c.QueryParam("until"), Q: c.QueryParam("q"),
	}
	data := views.EventsData{Filter: f, Cursor: c.QueryParam("cursor")}
	search := db.EventSearch{EventFilter: db.EventFilter{Type: f.Type, Status: f.Status, Page: db.Page{Cursor: data.Cursor, Limit: 50}}, Query: f.Q}
	var err error
	search.Since, search.Until, err = d.timeRange(f.Range, f.Since, f.Until)
	if err == nil {
		err = checkStatus(f.Status)
	}
	if err != nil {
		if _, msg, ferr := fieldErrors(err); ferr == nil {
			e, _ := AsError(err)
			data.Error = orDefault(msg, sentence(e.Field+" "+e.Message))
		} else {
			return ferr
		}
	} else {
		if data.Events, data.Next, err = d.Store.SearchEvents(ctx, workspaceID(c), search); err != nil {
			return err
		}
		ids := make([]string, len(data.Events))
		for i, e := range data.Events {
			ids[i] = e.ID
		}
		if data.Counts, err = d.Store.EventDeliveryCounts(ctx, workspaceID(c), ids); err != nil {
			return err
		}
	}
	s, err := d.shell(c, "Events", "events")
	if err != nil {
		return err
	}
	if isPartial(c) {
		return render(c, http.StatusOK, views.EventsResults(s, data))
	}
	if data.Types, err = d.Store.EventTypes(ctx, workspaceID(c), 2000, 100); err != nil {
		return err
	}
	return render(c, http.StatusOK, views.EventsPage(s, data))
}

// EventPage answers GET /w/:workspace/events/:id (the twin of GET /v1/events/:id): the
// payload, each rule's verdict and the live delivery timeline.
func (d *Dashboard) EventPage(c echo.Context) error {
	ev, rs, tl, err := d.loadEvent(c)
	if err != nil {
		return err
	}
	s, err := d.shell(c, ev.Type, "events")
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.EventPage(s, views.EventPageData{Event: ev, Rules: d.verdicts(ev, rs), Timeline: tl}))
}

// EventTimeline answers GET /w/:workspace/events/:id/timeline: the timeline region the
// event page polls while deliveries are in flight.
func (d *Dashboard) EventTimeline(c echo.Context) error {
	_, _, tl, err := d.loadEvent(c)
	if err != nil {
		return err
	}
	s := views.Shell{CSRF: CSRFToken(c), Workspace: MembershipOf(c), Now: d.Store.Now()}
	return render(c, http.StatusOK, views.EventTimeline(s, tl))
}

// loadEvent loads the event named in the path with the workspace's rules and its timeline.
func (d *Dashboard) loadEvent(c echo.Context) (*db.Event, []*db.Rule, views.TimelineData, error) {
	ctx := c.Request().Context()
	ev, err := d.Store.EventByID(ctx, workspaceID(c), c.Param("id"))
	if err != nil {
		return nil, nil, views.TimelineData{}, err
	}
	rs, err := d.Store.ListRules(ctx, ev.WorkspaceID, db.RuleFilter{})
	if err != nil {
		return nil, nil, views.TimelineData{}, err
	}
	tl, err := d.timeline(ctx, c, ev, rs)
	return ev, rs, tl, err
}

// verdicts evaluates every current rule on the event, with the reason a rule did not
// match (the event type, or the failing condition).
func (d *Dashboard) verdicts(ev *db.Event, rs []*db.Rule) []views.RuleVerdict {
	env := jobs.EventEnv(ev)
	out := make([]views.RuleVerdict, 0, len(rs))
	for _, r := range rs {
		m := d.Engine.MatchRule(r, ev.Type, env)
		v := views.RuleVerdict{RuleID: r.ID, Name: r.Name, EventType: r.EventType, Enabled: r.Enabled, Matched: m.Matched, Reason: m.Reason}
		if m.Matched && !r.Enabled {
			v.Matched, v.Reason = false, "the rule is disabled (it would match)"
		}
		out = append(out, v)
	}
	return out
}

// timeline loads the event's deliveries and attempts (two queries) and names them from
// the workspace's connections and rules (one query; the rules are given).
func (d *Dashboard) timeline(ctx context.Context, c echo.Context, ev *db.Event, rs []*db.Rule) (views.TimelineData, error) {
	ds, err := d.Store.EventDeliveries(ctx, ev.WorkspaceID, ev.ID)
	if err != nil {
		return views.TimelineData{}, err
	}
	conns, err := d.Store.ListConnections(ctx, ev.WorkspaceID)
	if err != nil {
		return views.TimelineData{}, err
	}
	connByID := make(map[string]*db.Connection, len(conns))
	for _, cn := range conns {
		connByID[cn.ID] = cn
	}
	ruleByID := make(map[string]*db.Rule, len(rs))
	for _, r := range rs {
		ruleByID[r.ID] = r
	}
	tl := views.TimelineData{EventID: ev.ID, Routed: ev.RoutedAt != nil, Now: d.Store.Now(), CanReplay: RequireRole(c, db.RoleAdmin) == nil}
	for _, dl := range ds {
		v := views.DeliveryView{Delivery: dl, ConnectionName: "deleted connection", RuleName: "deleted rule"}
		if cn := connByID[dl.ConnectionID]; cn != nil {
			v.ConnectionName, v.ConnectionKind = cn.Name, cn.Kind
		}
		if r := ruleByID[dl.RuleID]; r != nil {
			v.RuleName = r.Name
		}
		tl.Deliveries = append(tl.Deliveries, v)
	}
	return tl, nil
}

// ReplayDeliveryPage answers POST /w/:workspace/deliveries/:id/replay (the twin of POST
// /v1/deliveries/:id/replay). htmx gets the event's timeline back, now live again.
func (d *Dashboard) ReplayDeliveryPage(c echo.Context) error {
	ctx := c.Request().Context()
	dl, err := d.replayOne(ctx, workspaceID(c), c.Param("id"))
	if err != nil {
		return err
	}
	if !isPartial(c) {
		setFlash(c, "success", "Replay queued.")
		return redirect(c, wsPath(c, "/events/"+dl.EventID))
	}
	ev, err := d.Store.EventByID(ctx, dl.WorkspaceID, dl.EventID)
	if err != nil {
		return err
	}
	rs, err := d.Store.ListRules(ctx, ev.WorkspaceID, db.RuleFilter{})
	if err != nil {
		return err
	}
	tl, err := d.timeline(ctx, c, ev, rs)
	if err != nil {
		return err
	}
	toast(c, "success", "Replay queued.")
	s := views.Shell{CSRF: CSRFToken(c), Workspace: MembershipOf(c), Now: d.Store.Now()}
	return render(c, http.StatusOK, views.EventTimeline(s, tl))
}

// replayOne does what POST /v1/deliveries/:id/replay does: back to work now, attempts
// continuing the delivery's history.
func (d *Dashboard) replayOne(ctx context.Context, workspaceID, id string) (*db.Delivery, error) {
	dl, err := d.Store.ReplayDelivery(ctx, workspaceID, id)
	if err != nil {
		return nil, err
	}
	if err := d.Queue.EnqueueDelivery(ctx, dl, d.Store.Now(), jobs.QueueDefault); err != nil {
		d.Log.Warn("enqueue replay; the reconciler will retry", "delivery_id", dl.ID, "err", err)
	}
	return dl, nil
}
