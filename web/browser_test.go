package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/fanout-dev/fanout/handlers/apitest"
	"github.com/fanout-dev/fanout/jobs/jobstest"
	"github.com/fanout-dev/fanout/web"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// redisDB is this package's Redis database on a real server (see jobstest.Redis).
const redisDB = 4

// chromium returns the browser to drive. Without one the test is skipped locally, but
// fails under CI (CI set), where .ci/run installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("FANOUT_CHROMIUM"), "/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed, and CI is set: the browser tests must run in CI (install the chromium package)")
	}
	t.Skip("chromium is not installed: skipping the browser tests (install the chromium package, or set FANOUT_CHROMIUM)")
	return ""
}

// artifactsDir is where screenshots go: $FANOUT_ARTIFACTS, or the test's temp folder.
func artifactsDir(t *testing.T) string {
	if d := os.Getenv("FANOUT_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err == nil {
			return d
		}
	}
	return t.TempDir()
}

// browser drives one headless Chromium tab; every step is bounded in time, and a failed
// step saves a screenshot and fails the test.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	dir  string
	shot int
}

func newBrowser(t *testing.T, exe, base string) *browser {
	t.Helper()
	profile, err := os.MkdirTemp("", "fanout-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Chromium's helpers may still write for a moment after it exits.
		for range 50 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1440, 960),
	)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	b := &browser{t: t, ctx: ctx, base: base, dir: artifactsDir(t)}
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

// run runs steps with a deadline; on failure it screenshots and fails the test.
func (b *browser) run(what string, timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.fail(what, err)
	}
}

func (b *browser) fail(what string, err error) {
	b.t.Helper()
	path := b.screenshot("failed-" + strings.ReplaceAll(what, " ", "-"))
	b.t.Fatalf("%s: %v (screenshot: %s)", what, err, path)
}

// screenshot saves the whole page as PNG and returns its path.
func (b *browser) screenshot(name string) string {
	b.shot++
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	path := filepath.Join(b.dir, fmt.Sprintf("%s-%02d-%s.png", b.t.Name(), b.shot, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	return path
}

// review saves a screenshot when FANOUT_ARTIFACTS asks for them.
func (b *browser) review(name string) {
	if os.Getenv("FANOUT_ARTIFACTS") != "" {
		b.t.Logf("screenshot: %s", b.screenshot(name))
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.fail("read "+sel, err)
	}
	return strings.TrimSpace(s)
}

func (b *browser) eval(expr string) any {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[any](expr))
	if err != nil {
		b.fail("evaluate "+expr, err)
	}
	return v
}

// waitFor reloads url until sel appears, for pages that do not refresh themselves.
func (b *browser) waitFor(url, sel string, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b.run("open "+url, 15*time.Second, chromedp.Navigate(url))
		if b.eval(fmt.Sprintf("document.querySelector(%q) !== null", sel)) == true {
			return
		}
		if time.Now().After(deadline) {
			b.fail("wait for "+sel, errors.New("timed out"))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func apiCall(t *testing.T, method, url, key string, body any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, url, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	if res.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %v", method, url, res.StatusCode, out)
	}
	return out
}

// TestBrowserDashboard walks the dashboard as a user does, in a real browser against the
// whole application (web, worker, SQLite, Redis) and a loopback receiver: sign up, make an
// API key and a webhook connection, add a rule through the API, post an event and watch
// the event page show the delivered attempt without a reload; then a failing receiver,
// the dead-letter page, replay, delivered. It also checks that payloads cannot run
// script or fire htmx requests (S11).
func TestBrowserDashboard(t *testing.T) {
	exe := chromium(t)
	env := apitest.New(t, apitest.Options{AllowPrivate: true, Worker: true, RedisDB: redisDB})
	e := web.New(web.Config{Log: env.Handlers.Log, Registry: prometheus.NewRegistry(), QueueRedis: env.Worker.Redis}, env.Handlers)
	var probes atomic.Int32
	e.GET("/xss-probe", func(c echo.Context) error {
		probes.Add(1)
		return c.NoContent(http.StatusNoContent)
	})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	sink := jobstest.NewSink(t)
	var failing atomic.Bool
	sink.SetRespond(func(n int, r *http.Request) jobstest.Reply {
		if failing.Load() {
			return jobstest.Reply{Status: http.StatusBadRequest, Body: `{"error":"rejected by receiver"}`}
		}
		// Slow enough that the event page opens while the delivery is in flight.
		return jobstest.Reply{Status: http.StatusOK, Body: `{"received":true}`, Delay: 1500 * time.Millisecond}
	})
	b := newBrowser(t, exe, srv.URL)

	// Sign up: the first workspace comes with the account.
	b.run("sign up", 20*time.Second,
		chromedp.Navigate(srv.URL+"/signup"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="signup-form"]`)),
	)
	b.review("signup")
	b.run("submit sign-up", 20*time.Second,
		chromedp.SendKeys(chromedp.CSS("#f-email"), "ada@example.com"),
		chromedp.SendKeys(chromedp.CSS("#f-password"), "correct horse battery"),
		chromedp.SendKeys(chromedp.CSS("#f-workspace"), "Acme Inc"),
		chromedp.Click(chromedp.CSS(`[data-testid="signup-submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="stats"]`)),
	)
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.fail("location", err)
	}
	ws := strings.TrimPrefix(loc, srv.URL)
	if !strings.HasPrefix(ws, "/w/ws_") {
		b.fail("workspace url", fmt.Errorf("landed on %s", loc))
	}

	// An admin API key, shown once.
	b.run("create api key", 20*time.Second,
		chromedp.Navigate(srv.URL+ws+"/api-keys"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="key-name"]`), "CI backend"),
		chromedp.SetValue(chromedp.CSS(`[data-testid="key-scope"]`), "admin"),
		chromedp.Click(chromedp.CSS(`[data-testid="key-submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="api-key"]`)),
	)
	key := b.text(`[data-testid="api-key"]`)
	if !strings.HasPrefix(key, "fo_") {
		b.fail("api key", fmt.Errorf("shown key %q", key))
	}
	b.review("api-key-created")

	// A webhook connection to the loopback receiver; its signing secret is shown once.
	b.run("create connection", 20*time.Second,
		chromedp.Navigate(srv.URL+ws+"/connections/new"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="kind-picker"]`)),
	)
	b.review("connection-kinds")
	b.run("pick webhook", 20*time.Second,
		chromedp.Click(chromedp.CSS(`[data-testid="kind-webhook"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="connection-form"]`)),
		chromedp.SendKeys(chromedp.CSS("#f-name"), "Order webhook"),
		chromedp.SendKeys(chromedp.CSS("#f-url"), sink.URL+"/hooks/fanout"),
	)
	b.review("connection-form")
	b.run("submit connection", 20*time.Second,
		chromedp.Click(chromedp.CSS(`[data-testid="connection-submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="signing-secret"]`)),
	)
	if s := b.text(`[data-testid="signing-secret"]`); !strings.HasPrefix(s, "whsec_") {
		b.fail("signing secret", fmt.Errorf("shown %q", s))
	}
	b.review("connection-created")
	conns := apiCall(t, http.MethodGet, srv.URL+"/v1/connections", key, nil)["data"].([]any)
	connID := conns[0].(map[string]any)["id"].(string)

	// A rule through the JSON API, then an event.
	apiCall(t, http.MethodPost, srv.URL+"/v1/rules", key, map[string]any{
		"name": "Orders to the webhook", "event_type": "order.*",
		"actions": []any{map[string]any{"connection_id": connID, "action": "webhook.post"}},
	})
	ev := apiCall(t, http.MethodPost, srv.URL+"/v1/events", key, map[string]any{
		"type": "order.created", "data": map[string]any{"order_id": "A-1001", "total": 129.5, "email": "ada@example.com"},
	})
	evID := ev["id"].(string)

	// The event page shows the attempt once it succeeds, without a reload.
	b.run("open event page", 20*time.Second,
		chromedp.Navigate(srv.URL+ws+"/events/"+evID),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="timeline"]`)),
	)
	b.eval("window.__fanoutMarker = 42")
	wasLive := b.eval(`document.querySelector('[data-testid="timeline"]').dataset.live`)
	b.run("wait for the delivered attempt", 30*time.Second,
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="attempt"][data-outcome="succeeded"]`)),
	)
	if wasLive != "true" {
		t.Errorf("the timeline was not live while the delivery was in flight (data-live=%v)", wasLive)
	}
	if b.eval("window.__fanoutMarker") != float64(42) {
		b.fail("no reload", errors.New("the page reloaded instead of updating in place"))
	}
	b.run("polling stops", 10*time.Second, chromedp.WaitVisible(chromedp.CSS(`[data-testid="timeline"][data-live="false"]`)))
	b.review("event-delivered")

	// A failing receiver: the delivery dies (400 is permanent), shows in dead letters,
	// and a replay delivers it once the receiver is fixed.
	failing.Store(true)
	bad := apiCall(t, http.MethodPost, srv.URL+"/v1/events", key, map[string]any{
		"type": "order.refunded", "data": map[string]any{"order_id": "A-1002"},
	})
	badID := bad["id"].(string)
	b.waitFor(srv.URL+ws+"/dead-letters", `[data-testid="dead-row"]`, 20*time.Second)
	b.review("dead-letters")
	failing.Store(false)
	b.run("replay the dead letter", 20*time.Second,
		chromedp.Click(chromedp.CSS(`[data-testid="dead-select"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="replay-selected"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="flash"]`)),
	)
	b.run("open the replayed event", 20*time.Second,
		chromedp.Navigate(srv.URL+ws+"/events/"+badID),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="timeline"]`)),
	)
	b.run("replayed delivery succeeds", 30*time.Second,
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="delivery"][data-status="succeeded"] [data-testid="attempt"][data-outcome="succeeded"]`)),
	)
	if n := b.eval(`document.querySelectorAll('[data-testid="attempt"]').length`); n != float64(2) {
		t.Errorf("replayed delivery shows %v attempts, want the failed one and the replay", n)
	}
	b.review("event-replayed")

	// S11: a payload with a script, an onerror handler and htmx attributes is text.
	xss := apiCall(t, http.MethodPost, srv.URL+"/v1/events", key, map[string]any{
		"type": "order.created", "data": map[string]any{
			"note": `<script>window.__xss=1</script><img src=x onerror="window.__xss=2"><div hx-get="/xss-probe" hx-trigger="load">x</div>`,
		},
	})
	b.run("open the hostile event", 20*time.Second,
		chromedp.Navigate(srv.URL+ws+"/events/"+xss["id"].(string)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="event-payload"]`)),
		chromedp.Sleep(1500*time.Millisecond),
	)
	if v := b.eval("typeof window.__xss"); v != "undefined" {
		b.fail("S11", fmt.Errorf("payload script ran (window.__xss is %v)", v))
	}
	if n := probes.Load(); n != 0 {
		b.fail("S11", fmt.Errorf("payload hx-get fired %d requests", n))
	}
	if s := b.text(`[data-testid="event-payload"]`); !strings.Contains(s, "<script>") {
		b.fail("S11", fmt.Errorf("payload not shown as text: %q", s))
	}

	// The other pages render (and, with FANOUT_ARTIFACTS, are kept for review).
	for _, p := range []struct{ path, sel string }{
		{"", `[data-testid="chart"]`}, {"/events", `[data-testid="events-table"]`},
		{"/connections", `[data-testid="connections-table"]`}, {"/connections/" + connID, `[data-testid="connection-config"]`},
		{"/rules", `[data-testid="rules-table"]`}, {"/api-keys", `[data-testid="keys-table"]`},
		{"/members", `[data-testid="members-table"]`},
	} {
		b.run("open "+p.path, 20*time.Second, chromedp.Navigate(srv.URL+ws+p.path), chromedp.WaitVisible(chromedp.CSS(p.sel)))
		b.review("page" + strings.ReplaceAll(p.path, "/", "-"))
	}
	b.run("send test", 20*time.Second,
		chromedp.Navigate(srv.URL+ws+"/connections/"+connID),
		chromedp.Click(chromedp.CSS(`[data-testid="send-test"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="test-status"]`)),
	)
	if s := b.text(`[data-testid="test-status"]`); s != "200" {
		b.fail("send test", fmt.Errorf("status %q", s))
	}
	b.review("connection-tested")

	// Operators: asynqmon for promoted users only.
	if err := env.Store.PromoteUser(context.Background(), "ada@example.com"); err != nil {
		t.Fatal(err)
	}
	b.run("queues", 20*time.Second,
		chromedp.Navigate(srv.URL+"/admin/queues"),
		chromedp.WaitVisible(chromedp.CSS("#root")),
	)
}
