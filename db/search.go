package db

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/uptrace/bun"
)

// EventSearch narrows SearchEvents: the filters of ListEvents plus a search query.
//
// Query forms: an event id ("evt_…") finds that event; "path=value" (data.email=a@b.c,
// or customer.id=42) finds events whose payload field equals value; anything else finds
// events with that external id, or whose payload contains the text.
type EventSearch struct {
	EventFilter
	Query string
}

var fieldPathRE = regexp.MustCompile(`^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$`)

// plainValueRE matches values that appear verbatim in any JSON encoding of them, so a
// substring test on the raw payload can cheaply rule rows out before the JSON comparison.
var plainValueRE = regexp.MustCompile(`^[A-Za-z0-9@._+\- ]+$`)

// ParseFieldQuery splits "data.a.b=value" into its path segments and value; ok is false
// when q is not a field query.
func ParseFieldQuery(q string) (path []string, value string, ok bool) {
	k, v, found := strings.Cut(q, "=")
	k = strings.TrimSpace(k)
	if !found || !fieldPathRE.MatchString(k) {
		return nil, "", false
	}
	k = strings.TrimPrefix(k, "data.")
	return strings.Split(k, "."), strings.TrimSpace(v), true
}

// SearchEvents returns a page of events, newest first, and the next cursor.
func (s *Store) SearchEvents(ctx context.Context, workspaceID string, f EventSearch) ([]*Event, string, error) {
	var es []*Event
	q := f.EventFilter.apply(s.db.NewSelect().Model(&es).Where("event.workspace_id = ?", workspaceID))
	if query := strings.TrimSpace(f.Query); query != "" {
		q = s.applySearch(q, query)
	}
	q = applyPage(q, "event.id", f.Page)
	if err := q.Scan(ctx); err != nil {
		return nil, "", translate(err)
	}
	es, next := nextCursor(es, f.Page, func(e *Event) string { return e.ID })
	return es, next, nil
}

func (s *Store) applySearch(q *bun.SelectQuery, query string) *bun.SelectQuery {
	if strings.HasPrefix(query, PrefixEvent+"_") && !strings.ContainsAny(query, " =") {
		return q.Where("event.id = ?", query)
	}
	if path, value, ok := ParseFieldQuery(query); ok {
		if plainValueRE.MatchString(value) {
			q = q.Where(s.contains("event.data"), value)
		}
		expr, args := s.jsonFieldEquals(path, value)
		return q.Where(expr, args...)
	}
	return q.Where("(event.external_id = ? OR "+s.contains("event.data")+")", query, query)
}

// contains is a substring test of a text column against one argument: instr on SQLite
// (several times faster than LIKE, which parses a pattern per row), strpos on PostgreSQL.
func (s *Store) contains(col string) string {
	if s.IsPostgres() {
		return "strpos(" + col + ", ?) > 0"
	}
	return "instr(" + col + ", ?) > 0"
}

// jsonFieldEquals compares a payload field with a value given as text: strings compare
// as they are, numbers and booleans by their JSON text.
func (s *Store) jsonFieldEquals(path []string, value string) (string, []any) {
	if s.IsPostgres() {
		return "(event.data::jsonb #>> ?) = ?", []any{"{" + strings.Join(path, ",") + "}", value}
	}
	var jp strings.Builder
	jp.WriteString("$")
	for _, p := range path {
		jp.WriteString("." + strconv.Quote(p))
	}
	expr := "json_extract(event.data, ?)"
	switch {
	case value == "true" || value == "false":
		return fmt.Sprintf("(%s = ? AND json_type(event.data, ?) = ?)", expr), []any{jp.String(), map[string]int{"true": 1, "false": 0}[value], jp.String(), value}
	default:
		if n, err := strconv.ParseFloat(value, 64); err == nil {
			return fmt.Sprintf("(%s = ? OR %s = ?)", expr, expr), []any{jp.String(), n, jp.String(), value}
		}
	}
	return expr + " = ?", []any{jp.String(), value}
}

// EventDeliveryCounts returns, for each of the given events, how many of its deliveries
// are in each status: one query for a whole page of events.
func (s *Store) EventDeliveryCounts(ctx context.Context, workspaceID string, eventIDs []string) (map[string]map[string]int, error) {
	out := make(map[string]map[string]int, len(eventIDs))
	if len(eventIDs) == 0 {
		return out, nil
	}
	var rows []struct {
		EventID string `bun:"event_id"`
		Status  string `bun:"status"`
		N       int    `bun:"n"`
	}
	err := s.db.NewSelect().Model((*Delivery)(nil)).
		ColumnExpr("event_id, status, COUNT(*) AS n").
		Where("workspace_id = ? AND event_id IN (?)", workspaceID, bun.In(eventIDs)).
		GroupExpr("event_id, status").Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("delivery counts: %w", translate(err))
	}
	for _, r := range rows {
		if out[r.EventID] == nil {
			out[r.EventID] = map[string]int{}
		}
		out[r.EventID][r.Status] = r.N
	}
	return out, nil
}

// EventsByIDs loads the given events of the workspace, keyed by id.
func (s *Store) EventsByIDs(ctx context.Context, workspaceID string, ids []string) (map[string]*Event, error) {
	out := make(map[string]*Event, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var es []*Event
	err := s.db.NewSelect().Model(&es).Column("id", "type", "received_at", "external_id").
		Where("workspace_id = ? AND id IN (?)", workspaceID, bun.In(ids)).Scan(ctx)
	if err != nil {
		return nil, translate(err)
	}
	for _, e := range es {
		out[e.ID] = e
	}
	return out, nil
}

// EventTypes lists the distinct types of the workspace's latest recent events (for
// filter menus), at most limit. Looking at a bounded window keeps it fast at any size;
// types not seen lately can still be filtered by name.
func (s *Store) EventTypes(ctx context.Context, workspaceID string, recent, limit int) ([]string, error) {
	var types []string
	latest := s.db.NewSelect().Model((*Event)(nil)).Column("type").
		Where("workspace_id = ?", workspaceID).OrderExpr("id DESC").Limit(int64(recent))
	err := s.db.NewSelect().TableExpr("(?) AS recent", latest).ColumnExpr("DISTINCT type").
		OrderExpr("type").Limit(int64(limit)).Scan(ctx, &types)
	return types, translate(err)
}
