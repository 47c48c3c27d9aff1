package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/fanout-dev/fanout/jobs"
	"github.com/hibiken/asynq"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// runBench measures Fanout end to end, in process: events posted through the HTTP API,
// routed, and delivered as signed webhooks to a loopback receiver. It uses the embedded
// defaults in a temporary folder, or FANOUT_DATABASE_URL and FANOUT_REDIS_URL when set.
func runBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	events := fs.Int("events", 20000, "events per throughput run")
	conc := fs.Int("concurrency", 32, "concurrent API clients")
	dests := fs.String("destinations", "1,5", "webhook destinations per event, one run each")
	rate := fs.Int("rate", 0, "steady events/s for the latency run (0: 500 on PostgreSQL, 100 embedded)")
	latencyFor := fs.Duration("latency-duration", 10*time.Second, "length of the latency run (0 skips it)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole bench to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var counts []int
	for _, s := range strings.Split(*dests, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 50 {
			return fmt.Errorf("-destinations: want numbers from 1 to 50, got %q", s)
		}
		counts = append(counts, n)
	}

	cfg, err := LoadConfig()
	if err != nil {
		return err
	}
	if cfg.DatabaseURL == "" {
		dir, err := os.MkdirTemp("", "fanout-bench")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg.DataDir = dir
	}
	if cfg.SecretKey == "" && cfg.DatabaseURL != "" {
		cfg.SecretKey = "bench:" + strings.Repeat("A", 43) + "="
	}
	cfg.AllowPrivateNetworks = true
	cfg.IngestRateLimit = 0 // the bench measures capacity, not the per-key limit
	cfg.LogLevel = slog.LevelError
	b, err := startBench(ctx, cfg)
	if err != nil {
		return err
	}
	defer b.stop()
	mode := "embedded (SQLite + in-process Redis)"
	if cfg.DatabaseURL != "" {
		mode = "PostgreSQL + Redis"
	}
	fmt.Printf("fanout bench: %s, %d events, concurrency %d, worker concurrency %d\n", mode, *events, *conc, cfg.Concurrency)
	fmt.Printf("%-22s %12s %14s %9s %9s %9s %10s\n", "run", "ingest ev/s", "delivered/s", "p50", "p95", "p99", "peak RSS")
	for _, m := range counts {
		r, err := b.throughput(ctx, *events, *conc, m)
		if err != nil {
			return err
		}
		r.print(fmt.Sprintf("throughput M=%d", m))
		b.printBacklog()
	}
	if *latencyFor > 0 {
		if *rate == 0 {
			*rate = 100
			if cfg.DatabaseURL != "" {
				*rate = 500
			}
		}
		r, err := b.steady(ctx, *rate, *latencyFor, *conc)
		if err != nil {
			return err
		}
		r.print(fmt.Sprintf("steady %d ev/s M=1", *rate))
	}
	return nil
}

type bench struct {
	app      *App
	addr     string
	client   *http.Client
	receiver *receiver
	cancel   context.CancelFunc
	done     chan struct{}
}

func startBench(ctx context.Context, cfg Config) (*bench, error) {
	a, err := openApp(ctx, cfg, newLogger(cfg), cfg.RedisURL == "", true)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	b := &bench{app: a, addr: ln.Addr().String(), cancel: cancel, done: make(chan struct{}),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}
	go func() {
		defer close(b.done)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); a.runWeb(rctx, ln) }()
		go func() { defer wg.Done(); a.runWorker(rctx) }()
		wg.Wait()
	}()
	if b.receiver, err = newReceiver(); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *bench) stop() {
	b.cancel()
	<-b.done
	b.receiver.srv.Close()
	b.app.Close()
}

// workspace creates a workspace with m webhook destinations on one rule.
func (b *bench) workspace(ctx context.Context, m int) (ingest string, err error) {
	s := b.app.store
	w, err := s.CreateWorkspace(ctx, "bench")
	if err != nil {
		return "", err
	}
	admin, _, err := s.CreateAPIKey(ctx, w.ID, "bench", "admin")
	if err != nil {
		return "", err
	}
	ingest, _, err = s.CreateAPIKey(ctx, w.ID, "bench", "ingest")
	if err != nil {
		return "", err
	}
	var actions []map[string]any
	for i := 0; i < m; i++ {
		var conn struct{ ID string }
		if err := b.call(admin, "/v1/connections", map[string]any{"kind": "webhook", "name": fmt.Sprint("sink ", i),
			"config": map[string]string{"url": fmt.Sprintf("http://%s/hook/%d", b.receiver.addr, i)}}, &conn); err != nil {
			return "", err
		}
		actions = append(actions, map[string]any{"connection_id": conn.ID, "action": "webhook.post"})
	}
	return ingest, b.call(admin, "/v1/rules", map[string]any{"name": "bench", "event_type": "*", "actions": actions}, nil)
}

func (b *bench) call(key, path string, body, out any) error {
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, "http://"+b.addr+path, bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// post sends one event and records when it was sent.
func (b *bench) post(key string, i int) error {
	var out struct{ ID string }
	start := time.Now()
	if err := b.call(key, "/v1/events", map[string]any{"type": "lead.created", "data": map[string]any{"n": i, "email": "lead@example.com"}}, &out); err != nil {
		return err
	}
	b.receiver.sent.Store(out.ID, start)
	return nil
}

type result struct {
	ingestRate, deliverRate float64
	latencies               []time.Duration
}

func (r result) print(name string) {
	sort.Slice(r.latencies, func(i, j int) bool { return r.latencies[i] < r.latencies[j] })
	pct := func(p float64) string {
		if len(r.latencies) == 0 {
			return "-"
		}
		return r.latencies[min(len(r.latencies)-1, int(p*float64(len(r.latencies))))].Round(time.Millisecond).String()
	}
	ingest := "-"
	if r.ingestRate > 0 {
		ingest = fmt.Sprintf("%.0f", r.ingestRate)
	}
	fmt.Printf("%-22s %12s %14.0f %9s %9s %9s %8dMB\n", name, ingest, r.deliverRate, pct(.50), pct(.95), pct(.99), peakRSS()>>20)
}

// throughput posts n events as fast as conc clients can and waits for n*m deliveries.
func (b *bench) throughput(ctx context.Context, n, conc, m int) (result, error) {
	key, err := b.workspace(ctx, m)
	if err != nil {
		return result{}, err
	}
	b.receiver.reset()
	start := time.Now()
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)); i <= n; i = int(next.Add(1)) {
				if err := b.post(key, i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return result{}, err
	}
	ingestTook := time.Since(start)
	lat, err := b.receiver.wait(ctx, n*m, 10*time.Minute)
	if err != nil {
		return result{}, err
	}
	return result{ingestRate: float64(n) / ingestTook.Seconds(), deliverRate: float64(n*m) / time.Since(start).Seconds(), latencies: lat}, nil
}

// steady posts at a fixed rate for d and reports ingest-to-receipt latency.
func (b *bench) steady(ctx context.Context, rate int, d time.Duration, conc int) (result, error) {
	key, err := b.workspace(ctx, 1)
	if err != nil {
		return result{}, err
	}
	b.receiver.reset()
	n := int(float64(rate) * d.Seconds())
	jobs := make(chan int, conc)
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				_ = b.post(key, i)
			}
		}()
	}
	start := time.Now()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	for i := 0; i < n; i++ {
		<-tick.C
		jobs <- i
	}
	tick.Stop()
	close(jobs)
	wg.Wait()
	lat, err := b.receiver.wait(ctx, n, 5*time.Minute)
	if err != nil {
		return result{}, err
	}
	return result{deliverRate: float64(n) / time.Since(start).Seconds(), latencies: lat}, nil
}

// receiver is the loopback webhook endpoint: it records, per delivery, the time from the
// event's POST to its arrival.
type receiver struct {
	srv      *http.Server
	addr     string
	sent     sync.Map // event id → time posted
	mu       sync.Mutex
	lat      []time.Duration
	seen     map[string]bool // webhook-id → seen (duplicates are not counted twice)
	arrivals chan struct{}
}

func newReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{addr: ln.Addr().String(), seen: map[string]bool{}, arrivals: make(chan struct{}, 1)}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve)}
	go r.srv.Serve(ln)
	return r, nil
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	now := time.Now()
	var body struct{ ID string }
	_ = json.NewDecoder(req.Body).Decode(&body)
	w.WriteHeader(http.StatusNoContent)
	sentAt, ok := r.sent.Load(body.ID)
	r.mu.Lock()
	defer r.mu.Unlock()
	if wid := req.Header.Get("webhook-id"); r.seen[wid] {
		return
	} else {
		r.seen[wid] = true
	}
	if ok {
		r.lat = append(r.lat, now.Sub(sentAt.(time.Time)))
	} else {
		r.lat = append(r.lat, 0) // arrived before the 202 was read: the post's own latency
	}
	select {
	case r.arrivals <- struct{}{}:
	default:
	}
}

func (r *receiver) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lat, r.seen = nil, map[string]bool{}
}

func (r *receiver) wait(ctx context.Context, n int, timeout time.Duration) ([]time.Duration, error) {
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		got := len(r.lat)
		r.mu.Unlock()
		if got >= n {
			r.mu.Lock()
			defer r.mu.Unlock()
			return append([]time.Duration(nil), r.lat...), nil
		}
		select {
		case <-r.arrivals:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			return nil, fmt.Errorf("only %d of %d deliveries arrived within %s", got, n, timeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// peakRSS is the process's peak resident set size in bytes (Linux), or 0.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// printBacklog shows what is left in the queues after a run. Every delivery has arrived
// by then, so anything left is waste: duplicate or no-op tasks.
func (b *bench) printBacklog() {
	insp := asynq.NewInspector(b.app.redis.Opt)
	for _, q := range []string{jobs.QueueCritical, jobs.QueueDefault, jobs.QueueReplay} {
		info, err := insp.GetQueueInfo(q)
		if err != nil {
			continue
		}
		if n := info.Pending + info.Active + info.Scheduled + info.Retry; n > 0 {
			fmt.Printf("  queue %s after the run: %d pending, %d active, %d scheduled, %d retry\n", q, info.Pending, info.Active, info.Scheduled, info.Retry)
		}
	}
}
