package views_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/a-h/templ"
	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/views"
)

func render(t *testing.T, c templ.Component) *goquery.Document {
	t.Helper()
	var b strings.Builder
	if err := c.Render(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func shell() views.Shell {
	return views.Shell{
		Title: "t", CSRF: "tok", Now: time.Now(),
		User:      &db.User{ID: "usr_1", Email: "a@b.co"},
		Workspace: &db.UserWorkspace{Workspace: db.Workspace{ID: "ws_1", Name: "W"}, Role: db.RoleAdmin},
	}
}

func TestTimelinePollsOnlyWhileInFlight(t *testing.T) {
	now := time.Now()
	soon, later := now.Add(5*time.Second), now.Add(time.Hour)
	for _, tc := range []struct {
		name    string
		routed  bool
		ds      []*db.Delivery
		trigger string
	}{
		{"routing", false, nil, "every 2s"},
		{"pending", true, []*db.Delivery{{ID: "d", Status: db.DeliveryPending}}, "every 2s"},
		{"retry soon", true, []*db.Delivery{{ID: "d", Status: db.DeliveryRetrying, NextAttemptAt: &soon}}, "every 2s"},
		{"retry later", true, []*db.Delivery{{ID: "d", Status: db.DeliveryRetrying, NextAttemptAt: &later}}, "every 15s"},
		{"final", true, []*db.Delivery{{ID: "a", Status: db.DeliverySucceeded}, {ID: "b", Status: db.DeliveryDead}}, ""},
		{"nothing matched", true, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl := views.TimelineData{EventID: "evt_1", Routed: tc.routed, Now: now, CanReplay: true}
			for _, d := range tc.ds {
				tl.Deliveries = append(tl.Deliveries, views.DeliveryView{Delivery: d, ConnectionName: "c", RuleName: "r"})
			}
			doc := render(t, views.EventTimeline(shell(), tl))
			el := doc.Find(`[data-testid="timeline"]`)
			if got := el.AttrOr("hx-trigger", ""); got != tc.trigger {
				t.Fatalf("hx-trigger %q, want %q", got, tc.trigger)
			}
			if tc.trigger != "" && el.AttrOr("hx-get", "") != "/w/ws_1/events/evt_1/timeline" {
				t.Fatalf("hx-get %q", el.AttrOr("hx-get", ""))
			}
			if tc.name == "final" && doc.Find(`[data-testid="replay"]`).Length() != 2 {
				t.Fatal("final deliveries have no replay button")
			}
		})
	}
}

func TestLayoutCarriesCSRFAndNoInlineScript(t *testing.T) {
	doc := render(t, views.EventPage(shell(), views.EventPageData{
		Event:    &db.Event{ID: "evt_1", Type: "<b>t</b>", Data: json.RawMessage(`{"x":"</pre><script>alert(1)</script>"}`)},
		Timeline: views.TimelineData{EventID: "evt_1", Routed: true},
	}))
	var h map[string]string
	if err := json.Unmarshal([]byte(doc.Find("body").AttrOr("hx-headers", "")), &h); err != nil || h["X-CSRF-Token"] != "tok" {
		t.Fatalf("hx-headers: %v %v", h, err)
	}
	if n := doc.Find("script:not([src])").Length(); n != 0 {
		t.Fatalf("%d inline scripts", n)
	}
	if doc.Find("b").Length() != 0 || !strings.Contains(doc.Find(`[data-testid="event-payload"]`).Text(), "<script>") {
		t.Fatal("user data rendered as markup")
	}
	for _, src := range []string{doc.Find(`link[rel="stylesheet"]`).AttrOr("href", ""), doc.Find("script[src]").First().AttrOr("src", "")} {
		if !strings.HasPrefix(src, "/static/") || strings.Count(src, ".") < 2 {
			t.Errorf("asset URL %q is not fingerprinted", src)
		}
	}
}

func TestCountAndAgo(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1500: "-1,500"} {
		if got := views.Count(n); got != want {
			t.Errorf("Count(%d) = %q", n, got)
		}
	}
	now := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{time.Second: "just now", 90 * time.Second: "1m ago", 3 * time.Hour: "3h ago", -2 * time.Minute: "in 2m"} {
		if got := views.Ago(now, now.Add(-d)); got != want {
			t.Errorf("Ago(-%s) = %q, want %q", d, got, want)
		}
	}
}
