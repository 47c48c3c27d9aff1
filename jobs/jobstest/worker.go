package jobstest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/db/secrets"
	"github.com/fanout-dev/fanout/jobs"
	"github.com/fanout-dev/fanout/jobs/connectors"
	"github.com/hibiken/asynq"
)

// Env is a running engine on a fresh database and an empty Redis.
type Env struct {
	Store   *db.Store
	Engine  *jobs.Engine
	Queue   *jobs.Queue
	Redis   asynq.RedisClientOpt
	Keyring *secrets.Keyring
	stop    func()
}

// Start builds the engine on store and starts a worker (asynq server) with fast polling.
// dbIndex picks the Redis database on a real server (see Redis).
func Start(tb testing.TB, store *db.Store, dbIndex int) *Env {
	tb.Helper()
	key, err := secrets.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	keyring, err := secrets.ParseKeyring(key)
	if err != nil {
		tb.Fatal(err)
	}
	r := Redis(tb, dbIndex)
	client := asynq.NewClient(r)
	tb.Cleanup(func() { client.Close() })
	net := connectors.ClientOptions{AllowPrivate: true}
	env := &Env{Store: store, Queue: jobs.NewQueue(client, asynq.NewInspector(r)), Redis: r, Keyring: keyring}
	env.Engine = (&jobs.Engine{
		Store: store, Queue: env.Queue, Connectors: connectors.DefaultWith(net), Keyring: keyring,
		HTTP: connectors.NewHTTPClient(net), Log: Logger(tb), PerConnection: 2, BreakerCooldown: time.Second,
	}).Init()
	srv, mux := jobs.NewServer(r, jobs.ServerConfig{Concurrency: 8, PollInterval: 10 * time.Millisecond, ScheduledInterval: 100 * time.Millisecond, ShutdownTimeout: 5 * time.Second}, env.Engine)
	if err := srv.Start(mux); err != nil {
		tb.Fatalf("jobstest: start worker: %v", err)
	}
	env.stop = srv.Shutdown
	tb.Cleanup(env.Stop)
	return env
}

// Stop shuts the worker down (idempotent).
func (e *Env) Stop() {
	if e.stop != nil {
		e.stop()
		e.stop = nil
	}
}

// Logger returns a logger that is silent unless FANOUT_TEST_LOG is set.
func Logger(tb testing.TB) *slog.Logger {
	if os.Getenv("FANOUT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// WaitDelivery polls until the delivery reaches one of the statuses, or fails the test.
func WaitDelivery(tb testing.TB, s *db.Store, workspaceID, id string, timeout time.Duration, statuses ...string) *db.Delivery {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d, err := s.DeliveryByID(context.Background(), workspaceID, id)
		if err != nil {
			tb.Fatalf("load delivery: %v", err)
		}
		for _, st := range statuses {
			if d.Status == st {
				return d
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("delivery %s is %s after %s, want %v (last error: %s)", id, d.Status, timeout, statuses, d.LastError)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
