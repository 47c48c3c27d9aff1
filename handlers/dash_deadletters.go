package handlers

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/jobs"
	"github.com/fanout-dev/fanout/jobs/connectors"
	"github.com/fanout-dev/fanout/views"
	"github.com/labstack/echo/v4"
)

// errorClasses are the attempt error classes the dead-letter filter offers.
var errorClasses = []string{
	connectors.ClassHTTP4xx, connectors.ClassHTTP5xx, connectors.ClassTimeout, connectors.ClassConnection,
	connectors.ClassRateLimited, connectors.ClassRedirect, connectors.ClassAuth, connectors.ClassMapping,
	connectors.ClassConfig, connectors.ClassVendor, connectors.ClassBlocked,
}

// maxSelected bounds one "replay selected" or "discard selected".
const maxSelected = 500

func deadFilterOf(c echo.Context) views.DeadFilter {
	return views.DeadFilter{
		ConnectionID: c.FormValue("connection_id"), RuleID: c.FormValue("rule_id"), ErrorClass: c.FormValue("error_class"),
		Range: c.FormValue("range"), Since: c.FormValue("since"), Until: c.FormValue("until"),
	}
}

// dbFilter turns the form's filter into the store's (status dead), as POST
// /v1/deliveries/replay reads its body.
func (d *Dashboard) dbFilter(f views.DeadFilter) (db.DeliveryFilter, error) {
	df := db.DeliveryFilter{Status: db.DeliveryDead, ConnectionID: f.ConnectionID, RuleID: f.RuleID, ErrorClass: f.ErrorClass}
	var err error
	df.Since, df.Until, err = d.timeRange(f.Range, f.Since, f.Until)
	return df, err
}

// DeadLettersPage answers GET /w/:workspace/dead-letters (the twin of GET
// /v1/deliveries?status=dead&…).
func (d *Dashboard) DeadLettersPage(c echo.Context) error {
	ctx := c.Request().Context()
	ws := workspaceID(c)
	data := views.DeadLettersData{Filter: deadFilterOf(c), Cursor: c.QueryParam("cursor"), ErrorClasses: errorClasses}
	var err error
	if data.Connections, err = d.Store.ListConnections(ctx, ws); err != nil {
		return err
	}
	if data.Rules, err = d.Store.ListRules(ctx, ws, db.RuleFilter{}); err != nil {
		return err
	}
	f, ferr := d.dbFilter(data.Filter)
	if ferr != nil {
		e, ok := AsError(ferr)
		if !ok {
			return ferr
		}
		data.Error = sentence(e.Field + " " + e.Message)
	} else {
		f.Page = db.Page{Cursor: data.Cursor, Limit: 50}
		ds, next, err := d.Store.ListDeliveries(ctx, ws, f)
		if err != nil {
			return err
		}
		data.Next = next
		if data.Total, err = d.Store.CountDeliveries(ctx, ws, f); err != nil {
			return err
		}
		ids := make([]string, len(ds))
		for i, dl := range ds {
			ids[i] = dl.EventID
		}
		events, err := d.Store.EventsByIDs(ctx, ws, ids)
		if err != nil {
			return err
		}
		conns := map[string]string{}
		for _, cn := range data.Connections {
			conns[cn.ID] = cn.Name
		}
		rules := map[string]string{}
		for _, r := range data.Rules {
			rules[r.ID] = r.Name
		}
		for _, dl := range ds {
			row := views.DeadRow{Delivery: dl, ConnectionName: orDefault(conns[dl.ConnectionID], "deleted connection"), RuleName: orDefault(rules[dl.RuleID], "deleted rule")}
			if ev := events[dl.EventID]; ev != nil {
				row.EventType = ev.Type
			}
			data.Rows = append(data.Rows, row)
		}
	}
	s, err := d.shell(c, "Dead letters", "deadletters")
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.DeadLettersPage(s, data))
}

func selectedIDs(c echo.Context) ([]string, error) {
	form, err := c.FormParams()
	if err != nil {
		return nil, badRequest("could not read the form")
	}
	ids := form["id"]
	if len(ids) == 0 {
		return nil, nil
	}
	if len(ids) > maxSelected {
		return nil, invalid("id", "select at most %d deliveries at once", maxSelected)
	}
	return ids, nil
}

// ReplaySelected answers POST /w/:workspace/dead-letters/replay: replays each selected
// delivery (the twin of POST /v1/deliveries/:id/replay, one per id), paced like a bulk
// replay on the replay queue.
func (d *Dashboard) ReplaySelected(c echo.Context) error {
	ctx := c.Request().Context()
	ids, err := selectedIDs(c)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		setFlash(c, "error", "Select the deliveries to replay first.")
		return redirect(c, wsPath(c, "/dead-letters"))
	}
	at := d.Store.Now()
	n := 0
	for _, id := range ids {
		dl, err := d.Store.ReplayDelivery(ctx, workspaceID(c), strings.TrimSpace(id))
		if err != nil {
			if e, ok := AsError(err); ok && e.Status == http.StatusNotFound {
				continue
			}
			return err
		}
		if err := d.Queue.EnqueueDelivery(ctx, dl, at.Add(time.Duration(n)*replayPace), jobs.QueueReplay); err != nil {
			d.Log.Warn("enqueue replay; the reconciler will retry", "delivery_id", dl.ID, "err", err)
		}
		n++
	}
	setFlash(c, "success", fmt.Sprintf("Replaying %s. They leave this list as they go back to work.", plural(n, "delivery", "deliveries")))
	return redirect(c, wsPath(c, "/dead-letters"))
}

// DiscardSelected answers POST /w/:workspace/dead-letters/discard: the selected dead
// deliveries leave the list (status discarded), keeping their history.
func (d *Dashboard) DiscardSelected(c echo.Context) error {
	ids, err := selectedIDs(c)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		setFlash(c, "error", "Select the deliveries to discard first.")
		return redirect(c, wsPath(c, "/dead-letters"))
	}
	n, err := d.Store.DiscardDeliveries(c.Request().Context(), workspaceID(c), ids)
	if err != nil {
		return err
	}
	setFlash(c, "success", fmt.Sprintf("Discarded %s.", plural(n, "dead delivery", "dead deliveries")))
	return redirect(c, wsPath(c, "/dead-letters"))
}

// ReplayAllConfirm answers GET /w/:workspace/dead-letters/replay-all: how many dead
// deliveries match the filter, and a button to replay them.
func (d *Dashboard) ReplayAllConfirm(c echo.Context) error {
	vf := deadFilterOf(c)
	f, err := d.dbFilter(vf)
	if err != nil {
		return err
	}
	n, err := d.Store.CountDeliveries(c.Request().Context(), workspaceID(c), f)
	if err != nil {
		return err
	}
	s, err := d.shell(c, "Replay dead letters", "deadletters")
	if err != nil {
		return err
	}
	summary := "Every dead delivery"
	if vf != (views.DeadFilter{}) {
		summary = "Every dead delivery matching the current filters"
	}
	if n > maxBulkReplay {
		summary += fmt.Sprintf("; at most %s per run", views.Count(maxBulkReplay))
		n = maxBulkReplay
	}
	return render(c, http.StatusOK, views.DeadReplayConfirmPage(s, vf, n, summary+"."))
}

// ReplayAll answers POST /w/:workspace/dead-letters/replay-all (the twin of POST
// /v1/deliveries/replay with the same filter).
func (d *Dashboard) ReplayAll(c echo.Context) error {
	f, err := d.dbFilter(deadFilterOf(c))
	if err != nil {
		return err
	}
	n, err := d.replay(c, f)
	if err != nil {
		return err
	}
	setFlash(c, "success", fmt.Sprintf("Replaying %s on the replay queue.", plural(n, "delivery", "deliveries")))
	return redirect(c, wsPath(c, "/dead-letters"))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return views.Count(n) + " " + many
}
