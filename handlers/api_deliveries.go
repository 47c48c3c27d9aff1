package handlers

import (
	"net/http"
	"strconv"
	"time"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/jobs"
	"github.com/labstack/echo/v4"
)

// ListEvents answers GET /v1/events?type=&status=&since=&until=&cursor=&limit=.
func (h *Handlers) ListEvents(c echo.Context) error {
	page, err := parsePage(c)
	if err != nil {
		return err
	}
	f := db.EventFilter{Type: c.QueryParam("type"), Status: c.QueryParam("status"), Page: page}
	if f.Since, f.Until, err = parseRange(c); err != nil {
		return err
	}
	if err := checkStatus(f.Status); err != nil {
		return err
	}
	es, next, err := h.Store.ListEvents(c.Request().Context(), workspaceID(c), f)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, list(es, next))
}

// GetEvent answers GET /v1/events/:id: the event with every delivery and attempt.
func (h *Handlers) GetEvent(c echo.Context) error {
	ctx := c.Request().Context()
	ev, err := h.Store.EventByID(ctx, workspaceID(c), c.Param("id"))
	if err != nil {
		return err
	}
	ds, err := h.Store.EventDeliveries(ctx, ev.WorkspaceID, ev.ID)
	if err != nil {
		return err
	}
	if ds == nil {
		ds = []*db.Delivery{}
	}
	for _, d := range ds {
		if d.Attempts == nil {
			d.Attempts = []*db.Attempt{}
		}
	}
	return c.JSON(http.StatusOK, struct {
		*db.Event
		Deliveries []*db.Delivery `json:"deliveries"`
	}{ev, ds})
}

// ListDeliveries answers GET /v1/deliveries with filters (status, connection_id, rule_id,
// event_id, error_class, since, until) and a cursor.
func (h *Handlers) ListDeliveries(c echo.Context) error {
	f, err := deliveryFilter(c)
	if err != nil {
		return err
	}
	if f.Page, err = parsePage(c); err != nil {
		return err
	}
	ds, next, err := h.Store.ListDeliveries(c.Request().Context(), workspaceID(c), f)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, list(ds, next))
}

// ReplayDelivery sends one delivery back to work; its attempts continue its history.
func (h *Handlers) ReplayDelivery(c echo.Context) error {
	ctx := c.Request().Context()
	d, err := h.Store.ReplayDelivery(ctx, workspaceID(c), c.Param("id"))
	if err != nil {
		return err
	}
	if err := h.Queue.EnqueueDelivery(ctx, d, h.Store.Now(), jobs.QueueDefault); err != nil {
		h.Log.Warn("enqueue replay; the reconciler will retry", "delivery_id", d.ID, "err", err)
	}
	return c.JSON(http.StatusAccepted, d)
}

// maxBulkReplay bounds one bulk replay; replayPace spaces the queued attempts so a bulk
// replay trickles in beside live traffic (which also has a higher-priority queue).
const (
	maxBulkReplay = 10000
	replayPace    = 10 * time.Millisecond
)

// ReplayDeliveries replays every delivery matching a filter (status defaults to dead)
// and answers with how many.
func (h *Handlers) ReplayDeliveries(c echo.Context) error {
	var body struct {
		Status       string `json:"status"`
		ConnectionID string `json:"connection_id"`
		RuleID       string `json:"rule_id"`
		ErrorClass   string `json:"error_class"`
		Since        string `json:"since"`
		Until        string `json:"until"`
	}
	if err := bindJSON(c, &body); err != nil {
		return err
	}
	f := db.DeliveryFilter{Status: body.Status, ConnectionID: body.ConnectionID, RuleID: body.RuleID, ErrorClass: body.ErrorClass}
	if f.Status == "" {
		f.Status = db.DeliveryDead
	}
	if err := checkStatus(f.Status); err != nil {
		return err
	}
	var err error
	if f.Since, err = parseTime("since", body.Since); err != nil {
		return err
	}
	if f.Until, err = parseTime("until", body.Until); err != nil {
		return err
	}
	n, err := h.replay(c, f)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, map[string]int{"replayed": n})
}

func (h *Handlers) replay(c echo.Context, f db.DeliveryFilter) (int, error) {
	ctx := c.Request().Context()
	ids, err := h.Store.DeliveryIDs(ctx, workspaceID(c), f, maxBulkReplay)
	if err != nil {
		return 0, err
	}
	at := h.Store.Now()
	for i, id := range ids {
		d, err := h.Store.ReplayDelivery(ctx, workspaceID(c), id)
		if err != nil {
			return i, err
		}
		if err := h.Queue.EnqueueDelivery(ctx, d, at.Add(time.Duration(i)*replayPace), jobs.QueueReplay); err != nil {
			h.Log.Warn("enqueue replay; the reconciler will retry", "delivery_id", d.ID, "err", err)
		}
	}
	return len(ids), nil
}

func deliveryFilter(c echo.Context) (db.DeliveryFilter, error) {
	f := db.DeliveryFilter{
		Status: c.QueryParam("status"), ConnectionID: c.QueryParam("connection_id"),
		RuleID: c.QueryParam("rule_id"), EventID: c.QueryParam("event_id"), ErrorClass: c.QueryParam("error_class"),
	}
	var err error
	if f.Since, f.Until, err = parseRange(c); err != nil {
		return f, err
	}
	return f, checkStatus(f.Status)
}

func checkStatus(s string) error {
	switch s {
	case "", db.DeliveryPending, db.DeliveryRetrying, db.DeliverySucceeded, db.DeliveryDead, db.DeliveryDiscarded:
		return nil
	}
	return invalid("status", "must be one of pending, retrying, succeeded, dead, discarded")
}

func parsePage(c echo.Context) (db.Page, error) {
	p := db.Page{Cursor: c.QueryParam("cursor")}
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 200 {
			return p, invalid("limit", "must be a number from 1 to 200")
		}
		p.Limit = n
	}
	return p, nil
}

func parseRange(c echo.Context) (since, until time.Time, err error) {
	if since, err = parseTime("since", c.QueryParam("since")); err != nil {
		return
	}
	until, err = parseTime("until", c.QueryParam("until"))
	return
}

func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, invalid(field, "must be an RFC 3339 timestamp (2026-01-02T15:04:05Z)")
	}
	return t, nil
}

// listResponse is the shape of every list: {"data": [...], "next_cursor": "..."}.
type listResponse[T any] struct {
	Data       []T    `json:"data"`
	NextCursor string `json:"next_cursor"`
}

func list[T any](rows []T, next string) listResponse[T] {
	if rows == nil {
		rows = []T{}
	}
	return listResponse[T]{Data: rows, NextCursor: next}
}

// bindJSON decodes a JSON request body strictly (see decodeStrict).
func bindJSON(c echo.Context, v any) error {
	if err := requireJSON(c.Request()); err != nil {
		return err
	}
	body, err := readLimited(c, 1<<20)
	if err != nil {
		return err
	}
	return decodeStrict(body, v)
}
