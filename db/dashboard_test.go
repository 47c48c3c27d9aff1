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

func TestSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := dbtest.New(t)
	u, err := s.CreateUser(ctx, " Ada@Example.com ", "hash")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, "ada@example.com", "hash"); !errors.Is(err, db.ErrConflict) {
		t.Fatalf("duplicate email: %v", err)
	}
	token, sess, err := s.CreateSession(ctx, u.ID, "ua", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if sess.ID == token {
		t.Fatal("session id must be the token's hash, not the token")
	}
	got, gu, err := s.SessionByToken(ctx, token)
	if err != nil || got.ID != sess.ID || gu.Email != "ada@example.com" || got.CSRFToken == "" {
		t.Fatalf("session by token: %v %+v %+v", err, got, gu)
	}
	if _, _, err := s.SessionByToken(ctx, token+"x"); !errors.Is(err, db.ErrSessionExpired) {
		t.Fatalf("wrong token: %v", err)
	}
	if err := s.DeleteSession(ctx, token); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SessionByToken(ctx, token); !errors.Is(err, db.ErrSessionExpired) {
		t.Fatalf("deleted session: %v", err)
	}

	if err := s.RecordLoginFailure(ctx, "email:a", "ip:1"); err != nil {
		t.Fatal(err)
	}
	_ = s.RecordLoginFailure(ctx, "email:a")
	n, last, err := s.LoginFailures(ctx, "email:a", time.Now().Add(-time.Hour))
	if err != nil || n != 2 || last.IsZero() {
		t.Fatalf("failures: %d %v %v", n, last, err)
	}
	if err := s.ClearLoginFailures(ctx, "email:a"); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := s.LoginFailures(ctx, "email:a", time.Now().Add(-time.Hour)); n != 0 {
		t.Fatalf("after clear: %d", n)
	}
}

func TestMembershipsAndInvites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := dbtest.New(t)
	owner, _ := s.CreateUser(ctx, "owner@example.com", "h")
	other, _ := s.CreateUser(ctx, "other@example.com", "h")
	w, err := s.CreateWorkspaceWithOwner(ctx, "Acme", owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.MembershipOf(ctx, w.ID, owner.ID)
	if err != nil || m.Role != db.RoleOwner || m.Name != "Acme" {
		t.Fatalf("membership: %v %+v", err, m)
	}
	if _, err := s.MembershipOf(ctx, w.ID, other.ID); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("non-member: %v", err)
	}
	if err := s.SetMemberRole(ctx, w.ID, owner.ID, db.RoleAdmin); !errors.Is(err, db.ErrLastOwner) {
		t.Fatalf("demote last owner: %v", err)
	}
	token, _, err := s.CreateInvite(ctx, w.ID, db.RoleViewer, "", owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcceptInvite(ctx, token, other.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcceptInvite(ctx, token, other.ID); !errors.Is(err, db.ErrInviteUsed) {
		t.Fatalf("second use: %v", err)
	}
	ws, err := s.UserWorkspaces(ctx, other.ID)
	if err != nil || len(ws) != 1 || ws[0].Role != db.RoleViewer {
		t.Fatalf("user workspaces: %v %+v", err, ws)
	}
	ms, err := s.ListMembers(ctx, w.ID)
	if err != nil || len(ms) != 2 || ms[0].Role != db.RoleOwner {
		t.Fatalf("members: %v %+v", err, ms)
	}
}

func TestDashboardStats(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := dbtest.New(t)
	w := dbtest.Workspace(t, s)
	conn := &db.Connection{WorkspaceID: w.ID, Kind: "webhook", Name: "hook", Config: json.RawMessage(`{}`)}
	if err := s.CreateConnection(ctx, conn); err != nil {
		t.Fatal(err)
	}
	ev, _, err := s.InsertEvent(ctx, &db.Event{WorkspaceID: w.ID, Type: "lead.created", Data: json.RawMessage(`{"email":"a@b.co","n":42,"nested":{"ok":true}}`)})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := s.RouteEvent(ctx, w.ID, ev.ID, []*db.Delivery{
		{RuleID: "rul_1", RuleActionID: "act_1", ConnectionID: conn.ID},
		{RuleID: "rul_1", RuleActionID: "act_2", ConnectionID: conn.ID},
	})
	if err != nil {
		t.Fatal(err)
	}
	ds[0].Status, ds[0].AttemptCount = db.DeliverySucceeded, 1
	if err := s.RecordAttempt(ctx, ds[0], &db.Attempt{Number: 1, StartedAt: s.Now(), Outcome: "succeeded", StatusCode: 200}); err != nil {
		t.Fatal(err)
	}
	ds[1].Status, ds[1].AttemptCount, ds[1].LastError = db.DeliveryDead, 1, "boom <b>"
	if err := s.RecordAttempt(ctx, ds[1], &db.Attempt{Number: 1, StartedAt: s.Now(), Outcome: "permanent", StatusCode: 400}); err != nil {
		t.Fatal(err)
	}
	since := s.Now().Add(-24 * time.Hour)
	h, err := s.ConnectionHealth(ctx, w.ID, since)
	if err != nil {
		t.Fatal(err)
	}
	ch := h[conn.ID]
	if ch == nil || ch.Succeeded != 1 || ch.Dead != 1 || ch.LastSuccessAt == nil {
		t.Fatalf("health: %+v", ch)
	}
	if at, msg := ch.LastError(); at == nil || msg != "boom <b>" {
		t.Fatalf("last error: %v %q", at, msg)
	}
	buckets, err := s.Timeline(ctx, w.ID, since, s.Now().Add(time.Minute), 24)
	if err != nil {
		t.Fatal(err)
	}
	var evs, fails int
	for _, b := range buckets {
		evs, fails = evs+b.Events, fails+b.Failures
	}
	if evs != 1 || fails != 1 || buckets[23].Events != 1 {
		t.Fatalf("timeline: %d events %d failures %+v", evs, fails, buckets[23])
	}
	if n, err := s.CountEventsSince(ctx, w.ID, since); err != nil || n != 1 {
		t.Fatalf("count: %d %v", n, err)
	}
	for q, want := range map[string]int{
		ev.ID: 1, "email=a@b.co": 1, "data.email=x@b.co": 0, "n=42": 1, "n=43": 0, "nested.ok=true": 1, "a@b": 1, "zzz": 0,
	} {
		es, _, err := s.SearchEvents(ctx, w.ID, db.EventSearch{Query: q})
		if err != nil || len(es) != want {
			t.Errorf("search %q: got %d (%v), want %d", q, len(es), err, want)
		}
	}
	counts, err := s.EventDeliveryCounts(ctx, w.ID, []string{ev.ID})
	if err != nil || counts[ev.ID][db.DeliveryDead] != 1 {
		t.Fatalf("counts: %v %v", counts, err)
	}
	f := db.DeliveryFilter{Status: db.DeliveryDead}
	if n, err := s.CountDeliveries(ctx, w.ID, f); err != nil || n != 1 {
		t.Fatalf("count dead: %d %v", n, err)
	}
	if n, err := s.DiscardDeliveries(ctx, "ws_other", []string{ds[1].ID}); err != nil || n != 0 {
		t.Fatalf("discard other workspace: %d %v", n, err)
	}
	if n, err := s.DiscardDeliveries(ctx, w.ID, []string{ds[1].ID, ds[0].ID}); err != nil || n != 1 {
		t.Fatalf("discard: %d %v", n, err)
	}
}
