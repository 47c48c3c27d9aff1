package db_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/db/dbtest"
)

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := dbtest.New(t)
	w := dbtest.Workspace(t, s)

	plain, k, err := s.CreateAPIKey(ctx, w.ID, "ci", db.ScopeIngest)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.AuthenticateAPIKey(ctx, plain)
	if err != nil || got.ID != k.ID || got.Scope != db.ScopeIngest {
		t.Fatalf("authenticate: %v %+v", err, got)
	}
	for _, bad := range []string{"", "fo_", plain + "x", k.Prefix + "_wrong", "Bearer " + plain} {
		if _, err := s.AuthenticateAPIKey(ctx, bad); !errors.Is(err, db.ErrInvalidKey) {
			t.Errorf("key %q: got %v, want ErrInvalidKey", bad, err)
		}
	}
	if err := s.RevokeAPIKey(ctx, w.ID, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AuthenticateAPIKey(ctx, plain); !errors.Is(err, db.ErrInvalidKey) {
		t.Fatalf("revoked key authenticated: %v", err)
	}
	other := dbtest.Workspace(t, s)
	if err := s.RevokeAPIKey(ctx, other.ID, k.ID); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("revoke from another workspace: %v", err)
	}
}

func TestEventIdempotency(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := dbtest.New(t)
	w := dbtest.Workspace(t, s)
	key := "order-1"
	newEvent := func(hash string) *db.Event {
		return &db.Event{WorkspaceID: w.ID, Type: "lead.created", Data: json.RawMessage(`{}`), IdempotencyKey: &key, RequestHash: hash}
	}
	first, dup, err := s.InsertEvent(ctx, newEvent("h1"))
	if err != nil || dup {
		t.Fatalf("first insert: %v dup=%v", err, dup)
	}
	again, dup, err := s.InsertEvent(ctx, newEvent("h1"))
	if err != nil || !dup || again.ID != first.ID {
		t.Fatalf("same key same body: %v dup=%v id=%v", err, dup, again)
	}
	if _, _, err := s.InsertEvent(ctx, newEvent("h2")); !errors.Is(err, db.ErrIdempotencyMismatch) {
		t.Fatalf("same key other body: %v", err)
	}
	// Another workspace may use the same key.
	other := dbtest.Workspace(t, s)
	e := newEvent("h1")
	e.WorkspaceID = other.ID
	if _, dup, err := s.InsertEvent(ctx, e); err != nil || dup {
		t.Fatalf("other workspace: %v dup=%v", err, dup)
	}
}

func TestDeliveryLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := dbtest.New(t)
	w := dbtest.Workspace(t, s)
	conn := &db.Connection{WorkspaceID: w.ID, Kind: "webhook", Name: "hook", Config: json.RawMessage(`{}`)}
	if err := s.CreateConnection(ctx, conn); err != nil {
		t.Fatal(err)
	}
	rule := &db.Rule{WorkspaceID: w.ID, Name: "r", EventType: "*", Enabled: true,
		Actions: []*db.RuleAction{{ConnectionID: conn.ID, Action: "webhook.post", TimeoutMS: 1000}}}
	if err := s.CreateRule(ctx, rule); err != nil {
		t.Fatal(err)
	}
	ev, _, err := s.InsertEvent(ctx, &db.Event{WorkspaceID: w.ID, Type: "a.b", Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	unrouted, err := s.UnroutedEvents(ctx, time.Now().Add(time.Minute), 10)
	if err != nil || len(unrouted) != 1 {
		t.Fatalf("unrouted: %v %d", err, len(unrouted))
	}
	mk := func() []*db.Delivery {
		return []*db.Delivery{{RuleID: rule.ID, RuleActionID: rule.Actions[0].ID, ConnectionID: conn.ID}}
	}
	pending, err := s.RouteEvent(ctx, w.ID, ev.ID, mk())
	if err != nil || len(pending) != 1 {
		t.Fatalf("route: %v %d", err, len(pending))
	}
	// Routing twice creates nothing new.
	again, err := s.RouteEvent(ctx, w.ID, ev.ID, mk())
	if err != nil || len(again) != 0 {
		t.Fatalf("route again: %v %+v", err, again)
	}
	if ds, _ := s.EventDeliveries(ctx, w.ID, ev.ID); len(ds) != 1 {
		t.Fatalf("event has %d deliveries after routing twice, want 1", len(ds))
	}
	full, err := s.DeliveryForAttempt(ctx, w.ID, pending[0].ID)
	if err != nil || full.Event == nil || full.Event.ID != ev.ID || full.RuleAction == nil || full.Connection == nil || full.Connection.ID != conn.ID {
		t.Fatalf("delivery for attempt: %v %+v", err, full)
	}
	d, err := s.ClaimDelivery(ctx, w.ID, pending[0].ID, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimDelivery(ctx, w.ID, d.ID, time.Now().Add(time.Minute)); !errors.Is(err, db.ErrNotClaimable) {
		t.Fatalf("second claim: %v", err)
	}
	d.Status, d.AttemptCount, d.NextAttemptAt = db.DeliveryDead, 1, nil
	if err := s.RecordAttempt(ctx, d, &db.Attempt{Number: 1, StartedAt: time.Now(), Outcome: "permanent", StatusCode: 400}); err != nil {
		t.Fatal(err)
	}
	dead, _, err := s.ListDeliveries(ctx, w.ID, db.DeliveryFilter{Status: db.DeliveryDead})
	if err != nil || len(dead) != 1 {
		t.Fatalf("list dead: %v %d", err, len(dead))
	}
	if _, err := s.ReplayDelivery(ctx, w.ID, d.ID); err != nil {
		t.Fatal(err)
	}
	ds, err := s.EventDeliveries(ctx, w.ID, ev.ID)
	if err != nil || len(ds) != 1 || ds[0].Status != db.DeliveryPending || len(ds[0].Attempts) != 1 || ds[0].ReplayCount != 1 {
		t.Fatalf("after replay: %v %+v", err, ds)
	}
	due, err := s.DueDeliveries(ctx, time.Now().Add(time.Minute), 10)
	if err != nil || len(due) != 1 {
		t.Fatalf("due: %v %d", err, len(due))
	}
	if _, err := s.ReplayDelivery(ctx, dbtest.Workspace(t, s).ID, d.ID); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("replay from another workspace: %v", err)
	}
	if err := s.DeleteConnection(ctx, w.ID, conn.ID); !errors.Is(err, db.ErrConflict) {
		t.Fatalf("delete used connection: %v", err)
	}
	if err := s.DeleteRule(ctx, w.ID, rule.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteConnection(ctx, w.ID, conn.ID); err != nil {
		t.Fatalf("delete unused connection: %v", err)
	}
}

func TestListEventsPaging(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := dbtest.New(t)
	w := dbtest.Workspace(t, s)
	for i := 0; i < 5; i++ {
		if _, _, err := s.InsertEvent(ctx, &db.Event{WorkspaceID: w.ID, Type: "t", Data: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	seen := 0
	cursor := ""
	for {
		es, next, err := s.ListEvents(ctx, w.ID, db.EventFilter{Page: db.Page{Cursor: cursor, Limit: 2}})
		if err != nil {
			t.Fatal(err)
		}
		seen += len(es)
		if next == "" {
			break
		}
		cursor = next
	}
	if seen != 5 {
		t.Fatalf("paged %d events, want 5", seen)
	}
}
