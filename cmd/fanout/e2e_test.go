package main_test

import (
	"bytes"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/db/dbtest"
	"github.com/fanout-dev/fanout/jobs/jobstest"
	_ "modernc.org/sqlite"
)

// These tests build the real binary and run it as a user would: they kill it with
// SIGKILL in the middle of a fan-out and check that no accepted event is lost.

const redisDB = 3

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fanout-e2e")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "fanout")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// deployment is how the processes find their data: embedded (a data folder) or shared
// (PostgreSQL and Redis URLs).
type deployment struct {
	env  []string
	addr string
}

func newDeployment(t *testing.T, shared bool) *deployment {
	d := &deployment{addr: freeAddr(t)}
	d.env = append(os.Environ(),
		"FANOUT_ADDR="+d.addr, "FANOUT_ALLOW_PRIVATE_NETWORKS=1", "FANOUT_LOG_LEVEL=warn",
		"FANOUT_RECONCILE_EVERY=2s", "FANOUT_CONCURRENCY=16")
	if !shared {
		return d.with("FANOUT_DATA_DIR=" + t.TempDir())
	}
	r := jobstest.Redis(t, redisDB)
	key := "k1:" + strings.Repeat("QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=", 1)
	return d.with("FANOUT_DATABASE_URL="+dbtest.Config(t).URL,
		fmt.Sprintf("FANOUT_REDIS_URL=redis://%s/%d", r.Addr, r.DB), "FANOUT_SECRET_KEY="+key)
}

func (d *deployment) with(kv ...string) *deployment {
	d.env = append(d.env, kv...)
	return d
}

// start runs a fanout subcommand in the background until the test ends.
func (d *deployment) start(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = d.env
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("fanout %s output:\n%s", strings.Join(args, " "), logs.String())
		}
	})
	return cmd
}

// run runs a one-shot subcommand and returns its stdout.
func (d *deployment) run(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = d.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("fanout %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

func (d *deployment) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + d.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("fanout did not become ready")
}

type keys struct {
	WorkspaceID string `json:"workspace_id"`
	Admin       string `json:"admin_key"`
	Ingest      string `json:"ingest_key"`
}

func (d *deployment) api(t *testing.T, key, method, path string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, "http://"+d.addr+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// setupRoute creates a workspace through the CLI and a webhook rule to sink through the API.
func (d *deployment) setupRoute(t *testing.T, sink *jobstest.Sink) keys {
	t.Helper()
	var k keys
	if err := json.Unmarshal(d.run(t, "workspace", "create", "--name", "acme"), &k); err != nil {
		t.Fatalf("workspace create output: %v", err)
	}
	status, conn := d.api(t, k.Admin, "POST", "/v1/connections", map[string]any{
		"kind": "webhook", "name": "sink", "config": map[string]string{"url": sink.URL + "/hook"}})
	if status != 201 {
		t.Fatalf("create connection: %d %v", status, conn)
	}
	status, rule := d.api(t, k.Admin, "POST", "/v1/rules", map[string]any{
		"name": "all", "event_type": "*", "actions": []map[string]any{{"connection_id": conn["id"], "action": "webhook.post"}}})
	if status != 201 {
		t.Fatalf("create rule: %d %v", status, rule)
	}
	return k
}

// postEvents posts n events from a few goroutines and returns the ids acknowledged with 202.
func (d *deployment) postEvents(t *testing.T, key string, n int, stop <-chan struct{}) []string {
	var mu sync.Mutex
	var ids []string
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				status, out := d.api(t, key, "POST", "/v1/events", map[string]any{"type": "lead.created", "data": map[string]int{"n": i}})
				if status == 202 {
					mu.Lock()
					ids = append(ids, out["id"].(string))
					mu.Unlock()
				}
			}
		}()
	}
loop:
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case <-stop:
			break loop
		}
	}
	close(next)
	wg.Wait()
	return ids
}

// checkAllDelivered waits until the sink has seen every acknowledged event, and checks
// that duplicates carry the same webhook-id.
func checkAllDelivered(t *testing.T, sink *jobstest.Sink, ids []string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		seen := map[string]string{} // event id → webhook-id
		dups := 0
		for _, r := range sink.Requests() {
			var body struct{ ID string }
			_ = json.Unmarshal(r.Body, &body)
			wid := r.Header.Get("webhook-id")
			if prev, ok := seen[body.ID]; ok {
				dups++
				if prev != wid {
					t.Fatalf("event %s delivered with two webhook-ids %s and %s", body.ID, prev, wid)
				}
			}
			seen[body.ID] = wid
		}
		var missing []string
		for _, id := range ids {
			if _, ok := seen[id]; !ok {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			t.Logf("%d accepted events all delivered (%d duplicates, same webhook-id)", len(ids), dups)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted events never delivered, e.g. %v", len(missing), len(ids), missing[:min(5, len(missing))])
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestCrashMidFanOutLosesNothing(t *testing.T) {
	shared := dbtest.PostgresURL() != "" && jobstest.RedisURL() != ""
	d := newDeployment(t, shared)
	sink := jobstest.NewSink(t)
	sink.SetRespond(func(int, *http.Request) jobstest.Reply {
		return jobstest.Reply{Status: 200, Delay: 5 * time.Millisecond}
	})

	var serve *exec.Cmd
	if shared {
		d.run(t, "migrate")
		d.start(t, "web")
		serve = d.start(t, "worker")
	} else {
		serve = d.start(t, "serve")
	}
	d.waitReady(t)
	k := d.setupRoute(t, sink)

	// Kill the processing process once part of the fan-out went through.
	stop := make(chan struct{})
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		for len(sink.Requests()) < 40 {
			time.Sleep(5 * time.Millisecond)
		}
		serve.Process.Signal(syscall.SIGKILL)
		serve.Wait()
		if !shared {
			close(stop) // the API died with it
		}
	}()
	ids := d.postEvents(t, k.Ingest, 400, stop)
	<-killed
	if len(ids) < 40 {
		t.Fatalf("only %d events accepted before the crash", len(ids))
	}
	restart := time.Now()
	if shared {
		d.start(t, "worker")
	} else {
		d.start(t, "serve")
		d.waitReady(t)
	}
	checkAllDelivered(t, sink, ids, 60*time.Second)
	t.Logf("recovered %s after the restart", time.Since(restart).Round(time.Millisecond))
}

func TestSIGTERMFinishesInFlightAndExitsZero(t *testing.T) {
	d := newDeployment(t, false)
	sink := jobstest.NewSink(t)
	sink.SetRespond(func(int, *http.Request) jobstest.Reply {
		return jobstest.Reply{Status: 200, Delay: 1500 * time.Millisecond}
	})
	serve := d.start(t, "serve")
	d.waitReady(t)
	k := d.setupRoute(t, sink)
	ids := d.postEvents(t, k.Ingest, 10, nil)
	sink.WaitFor(t, 1, 10*time.Second) // attempts are in flight
	serve.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- serve.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM, want 0", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("serve did not exit within the grace period")
	}
	// Whatever did not finish is picked up after a restart.
	d.start(t, "serve")
	d.waitReady(t)
	checkAllDelivered(t, sink, ids, 60*time.Second)
}

func TestWorkspaceCreateWhileServing(t *testing.T) {
	d := newDeployment(t, false)
	d.start(t, "serve")
	d.waitReady(t)
	out := d.run(t, "workspace", "create", "--name", "second")
	var k keys
	if err := json.Unmarshal(out, &k); err != nil || k.WorkspaceID == "" || k.Admin == "" || k.Ingest == "" {
		t.Fatalf("workspace create printed %q (%v), want one JSON object with workspace_id, admin_key, ingest_key", out, err)
	}
	if n := bytes.Count(bytes.TrimSpace(out), []byte("\n")); n != 0 {
		t.Errorf("printed %d lines, want exactly one JSON object", n+1)
	}
	var key struct{ Key string }
	if err := json.Unmarshal(d.run(t, "apikey", "create", "--workspace", k.WorkspaceID, "--scope", "admin"), &key); err != nil || key.Key == "" {
		t.Fatalf("apikey create: %v", err)
	}
	if status, _ := d.api(t, key.Key, "GET", "/v1/rules", nil); status != 200 {
		t.Errorf("new admin key: GET /v1/rules = %d", status)
	}
}

func TestMalformedConfigFailsAtStart(t *testing.T) {
	for _, kv := range []string{"FANOUT_ADDR=nonsense", "FANOUT_DATABASE_URL=mysql://x", "FANOUT_MAX_EVENT_BYTES=lots", "FANOUT_SECRET_KEY=short"} {
		t.Run(kv, func(t *testing.T) {
			cmd := exec.Command(binary(t), "serve")
			cmd.Env = append(os.Environ(), "FANOUT_DATA_DIR="+t.TempDir(), kv)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("serve started with %s", kv)
			}
			name := strings.SplitN(kv, "=", 2)[0]
			if !strings.Contains(string(out), name) {
				t.Errorf("error does not name %s: %s", name, out)
			}
			if strings.Contains(kv, "SECRET") && strings.Contains(string(out), "short") {
				t.Errorf("the error echoes the secret value: %s", out)
			}
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestSecretsRotateReencryptsCredentials(t *testing.T) {
	dir := t.TempDir()
	oldKey := "k1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	newKey := "k2:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	d := newDeployment(t, false).with("FANOUT_DATA_DIR="+dir, "FANOUT_SECRET_KEY="+oldKey)
	serve := d.start(t, "serve")
	d.waitReady(t)
	var k keys
	if err := json.Unmarshal(d.run(t, "workspace", "create", "--name", "acme"), &k); err != nil {
		t.Fatal(err)
	}
	status, conn := d.api(t, k.Admin, "POST", "/v1/connections", map[string]any{
		"kind": "webhook", "name": "sink", "config": map[string]string{"url": "http://127.0.0.1:9/hook"}})
	if status != 201 {
		t.Fatalf("create connection: %d %v", status, conn)
	}
	serve.Process.Signal(syscall.SIGTERM)
	serve.Wait()

	sealedUnder := func() string {
		bdb, err := sql.Open("sqlite", filepath.Join(dir, "fanout.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer bdb.Close()
		var creds []byte
		if err := bdb.QueryRow("SELECT credentials FROM connections WHERE id = ?", conn["id"]).Scan(&creds); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(creds, []byte("whsec_")) {
			t.Fatal("the signing secret is stored in clear")
		}
		id, _, _ := strings.Cut(string(creds), ":")
		return id
	}
	if id := sealedUnder(); id != "k1" {
		t.Fatalf("credentials sealed under %q, want k1", id)
	}
	rotated := newDeployment(t, false).with("FANOUT_DATA_DIR="+dir, "FANOUT_SECRET_KEY="+newKey+","+oldKey)
	rotated.run(t, "secrets", "rotate")
	if id := sealedUnder(); id != "k2" {
		t.Fatalf("after rotate the credentials are sealed under %q, want k2", id)
	}
	// The old key can go: the connection still works under the new key alone.
	only := newDeployment(t, false).with("FANOUT_DATA_DIR="+dir, "FANOUT_SECRET_KEY="+newKey)
	only.start(t, "serve")
	only.waitReady(t)
	if status, out := only.api(t, k.Admin, "POST", "/v1/connections/"+conn["id"].(string)+"/rotate-secret", nil); status != 200 {
		t.Fatalf("rotate-secret under the new key alone: %d %v", status, out)
	}
}
