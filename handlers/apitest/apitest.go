// Package apitest builds the whole HTTP application for tests of the /v1 API: the Echo
// instance from web.New over real handlers, a fresh dbtest store, a real keyring, and
// either a recording Enqueuer or a running jobstest worker. Workspaces come with an admin
// and an ingest key.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/db/dbtest"
	"github.com/fanout-dev/fanout/db/secrets"
	"github.com/fanout-dev/fanout/handlers"
	"github.com/fanout-dev/fanout/jobs"
	"github.com/fanout-dev/fanout/jobs/connectors"
	"github.com/fanout-dev/fanout/jobs/jobstest"
	"github.com/fanout-dev/fanout/web"
	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Options shape the application under test.
type Options struct {
	// AllowPrivate lifts the SSRF guard (needed to point connections at a loopback sink).
	AllowPrivate bool
	// MaxEventBytes bounds ingest bodies; 0 means 1 MiB (the production default).
	MaxEventBytes int64
	// Worker runs a real asynq worker (jobstest.Start) on RedisDB instead of recording
	// enqueues. Tests that set it must not run in parallel with each other.
	Worker  bool
	RedisDB int
	// ReadyChecks replaces the default checks (database ping, and a redis check that
	// answers nil, or pings the worker's Redis).
	ReadyChecks map[string]func(context.Context) error
}

// Env is a running application.
type Env struct {
	T        testing.TB
	Store    *db.Store
	Echo     *echo.Echo
	Handlers *handlers.Handlers
	Registry *prometheus.Registry
	Keyring  *secrets.Keyring
	// Recorder is the recording Enqueuer (nil with a worker).
	Recorder *Recorder
	// Worker is the running engine (nil without).
	Worker *jobstest.Env
}

// New builds the application on a fresh database.
func New(tb testing.TB, o Options) *Env {
	tb.Helper()
	store := dbtest.New(tb)
	env := &Env{T: tb, Store: store, Registry: prometheus.NewRegistry()}
	if o.MaxEventBytes == 0 {
		o.MaxEventBytes = 1 << 20
	}
	policy := connectors.ClientOptions{AllowPrivate: o.AllowPrivate}
	log := jobstest.Logger(tb)
	metrics := jobs.NewMetrics(env.Registry)
	checks := map[string]func(context.Context) error{"database": store.Ping}

	var queue jobs.Enqueuer
	var engine *jobs.Engine
	if o.Worker {
		env.Worker = jobstest.Start(tb, store, o.RedisDB)
		env.Keyring = env.Worker.Keyring
		queue = env.Worker.Queue
		engine = env.Worker.Engine
		client := asynq.NewClient(env.Worker.Redis)
		tb.Cleanup(func() { client.Close() })
		checks["redis"] = func(context.Context) error { return client.Ping() }
	} else {
		key, err := secrets.GenerateKey()
		if err != nil {
			tb.Fatal(err)
		}
		if env.Keyring, err = secrets.ParseKeyring(key); err != nil {
			tb.Fatal(err)
		}
		env.Recorder = &Recorder{store: store}
		queue = env.Recorder
		engine = (&jobs.Engine{
			Store: store, Queue: queue, Connectors: connectors.DefaultWith(policy), Keyring: env.Keyring,
			HTTP: connectors.NewHTTPClient(policy), Log: log, Metrics: metrics,
		}).Init()
		checks["redis"] = func(context.Context) error { return nil }
	}
	if o.ReadyChecks != nil {
		checks = o.ReadyChecks
	}
	env.Handlers = &handlers.Handlers{
		Store: store, Queue: queue, Engine: engine, Connectors: connectors.DefaultWith(policy),
		Keyring: env.Keyring, Log: log, Metrics: metrics, MaxEventBytes: o.MaxEventBytes,
		AllowPrivate: o.AllowPrivate, ReadyChecks: checks,
	}
	env.Echo = web.New(web.Config{Log: log, Registry: env.Registry}, env.Handlers)
	return env
}

// Workspace is a tenant with its keys.
type Workspace struct {
	ID     string
	Admin  string // admin API key
	Ingest string // ingest API key
}

// Workspace creates a workspace with an admin and an ingest key.
func (e *Env) Workspace() *Workspace {
	e.T.Helper()
	ctx := context.Background()
	w, err := e.Store.CreateWorkspace(ctx, "test")
	if err != nil {
		e.T.Fatal(err)
	}
	ws := &Workspace{ID: w.ID}
	if ws.Admin, _, err = e.Store.CreateAPIKey(ctx, w.ID, "admin", db.ScopeAdmin); err != nil {
		e.T.Fatal(err)
	}
	if ws.Ingest, _, err = e.Store.CreateAPIKey(ctx, w.ID, "ingest", db.ScopeIngest); err != nil {
		e.T.Fatal(err)
	}
	return ws
}

// Request is one API call. Body is marshalled to JSON unless it is a string or []byte
// (sent verbatim) or an io.Reader (streamed, without Content-Length). ContentType
// defaults to application/json when there is a body; set it to "-" to send none.
type Request struct {
	Method      string
	Path        string
	Key         string
	Body        any
	ContentType string
	Header      map[string]string
}

// Response is a recorded answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v or fails the test.
func (r *Response) JSON(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		tb.Fatalf("decode response %d %q: %v", r.Status, r.Body, err)
	}
}

// Map decodes the body as a JSON object.
func (r *Response) Map(tb testing.TB) map[string]any {
	tb.Helper()
	var m map[string]any
	r.JSON(tb, &m)
	return m
}

// APIError is the /v1 error body.
type APIError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

// Error decodes and checks the /v1 error shape {"error": {"code", "message", "field"?}}:
// exactly one top-level key, code and message non-empty, no keys beyond the three.
func (r *Response) Error(tb testing.TB) APIError {
	tb.Helper()
	var top map[string]json.RawMessage
	r.JSON(tb, &top)
	raw, ok := top["error"]
	if !ok || len(top) != 1 {
		tb.Fatalf("status %d: body is not {\"error\": {...}}: %s", r.Status, r.Body)
	}
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		tb.Fatalf("status %d: error is not an object: %s", r.Status, r.Body)
	}
	for k := range fields {
		if k != "code" && k != "message" && k != "field" {
			tb.Errorf("status %d: unexpected key %q in error: %s", r.Status, k, r.Body)
		}
	}
	var e APIError
	_ = json.Unmarshal(raw, &e)
	if e.Code == "" || e.Message == "" {
		tb.Fatalf("status %d: error without code or message: %s", r.Status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		tb.Errorf("status %d: error Content-Type %q", r.Status, ct)
	}
	return e
}

// Do serves one request in process.
func (e *Env) Do(r Request) *Response {
	e.T.Helper()
	var body io.Reader
	switch b := r.Body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	case io.Reader:
		body = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.T.Fatal(err)
		}
		body = bytes.NewReader(j)
	}
	req := httptest.NewRequest(r.Method, r.Path, body)
	if _, streamed := r.Body.(io.Reader); streamed {
		if _, known := r.Body.(*bytes.Reader); !known {
			req.ContentLength = -1
			req.TransferEncoding = []string{"chunked"}
		}
	}
	ct := r.ContentType
	if ct == "" && r.Body != nil {
		ct = "application/json"
	}
	if ct != "-" && ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if r.Key != "" {
		req.Header.Set("Authorization", "Bearer "+r.Key)
	}
	for k, v := range r.Header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.Echo.ServeHTTP(rec, req)
	return &Response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
}

// Call is Do for the common case: a JSON body (or nil) with a key.
func (e *Env) Call(method, path, key string, body any) *Response {
	e.T.Helper()
	return e.Do(Request{Method: method, Path: path, Key: key, Body: body})
}

// Count counts the rows of a model's table of a workspace.
func (e *Env) Count(model any, workspaceID string) int {
	e.T.Helper()
	n, err := e.Store.DB().NewSelect().Model(model).Where("workspace_id = ?", workspaceID).Count(context.Background())
	if err != nil {
		e.T.Fatal(err)
	}
	return int(n)
}

// Recorder is a recording jobs.Enqueuer. It also notes whether the event row was
// already committed (visible to another connection) when its routing was enqueued.
type Recorder struct {
	store      *db.Store
	mu         sync.Mutex
	routes     []RouteCall
	deliveries []DeliveryCall
}

// RouteCall is one EnqueueRoute.
type RouteCall struct {
	WorkspaceID, EventID string
	RowVisible           bool
}

// DeliveryCall is one EnqueueDelivery.
type DeliveryCall struct {
	WorkspaceID, DeliveryID string
	At                      time.Time
	Queue                   string
	Attempt, Replay         int
}

// EnqueueRoute implements jobs.Enqueuer.
func (r *Recorder) EnqueueRoute(ctx context.Context, workspaceID, eventID string) error {
	_, err := r.store.EventByID(context.WithoutCancel(ctx), workspaceID, eventID)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routes = append(r.routes, RouteCall{WorkspaceID: workspaceID, EventID: eventID, RowVisible: err == nil})
	return nil
}

// EnqueueDelivery implements jobs.Enqueuer.
func (r *Recorder) EnqueueDelivery(_ context.Context, d *db.Delivery, at time.Time, queue string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deliveries = append(r.deliveries, DeliveryCall{WorkspaceID: d.WorkspaceID, DeliveryID: d.ID, At: at, Queue: queue, Attempt: d.AttemptCount, Replay: d.ReplayCount})
	return nil
}

// Routes returns the EnqueueRoute calls so far.
func (r *Recorder) Routes() []RouteCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]RouteCall(nil), r.routes...)
}

// Deliveries returns the EnqueueDelivery calls so far.
func (r *Recorder) Deliveries() []DeliveryCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]DeliveryCall(nil), r.deliveries...)
}

// Reset forgets the calls so far.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routes, r.deliveries = nil, nil
}

// Route creates the deliveries of an event for every action of the rules (as the router
// would, without a worker) and returns them.
func (e *Env) Route(workspaceID, eventID string, rs ...*db.Rule) []*db.Delivery {
	e.T.Helper()
	var ds []*db.Delivery
	for _, r := range rs {
		for _, a := range r.Actions {
			ds = append(ds, &db.Delivery{RuleID: r.ID, RuleActionID: a.ID, ConnectionID: a.ConnectionID})
		}
	}
	if _, err := e.Store.RouteEvent(context.Background(), workspaceID, eventID, ds); err != nil {
		e.T.Fatal(err)
	}
	return ds
}

// Kill records a failed, non-retryable attempt that leaves the delivery dead.
func (e *Env) Kill(d *db.Delivery, statusCode int, class, message string) {
	e.T.Helper()
	d.AttemptCount++
	d.Status, d.NextAttemptAt = db.DeliveryDead, nil
	d.LastStatusCode, d.LastErrorClass, d.LastError = statusCode, class, message
	a := &db.Attempt{Number: d.AttemptCount, StartedAt: e.Store.Now(), DurationMS: 3, StatusCode: statusCode,
		ResponseExcerpt: "nope", ErrorClass: class, ErrorMessage: message, Outcome: "permanent"}
	if err := e.Store.RecordAttempt(context.Background(), d, a); err != nil {
		e.T.Fatal(err)
	}
}
