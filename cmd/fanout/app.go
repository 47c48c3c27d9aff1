package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/db/secrets"
	"github.com/fanout-dev/fanout/handlers"
	"github.com/fanout-dev/fanout/jobs"
	"github.com/fanout-dev/fanout/jobs/connectors"
	"github.com/fanout-dev/fanout/web"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/uptrace/bun"
)

// App is the composition root: every long-lived dependency, built once.
type App struct {
	cfg      Config
	log      *slog.Logger
	bun      *bun.DB
	store    *db.Store
	redis    *jobs.Redis
	client   *asynq.Client
	queue    *jobs.Queue
	engine   *jobs.Engine
	registry *prometheus.Registry
	handlers *handlers.Handlers
	oauth    *handlers.OAuthFlow
}

// openApp opens the database (migrating it when migrate is set), the queue and the
// engine. An embedded Redis is only allowed where one process does everything.
func openApp(ctx context.Context, cfg Config, log *slog.Logger, embeddedRedisOK, migrate bool) (*App, error) {
	if cfg.RedisURL == "" && !embeddedRedisOK {
		return nil, errors.New("FANOUT_REDIS_URL is required for separate web and worker processes (use `fanout serve` for the embedded defaults)")
	}
	keyring, err := loadKeyring(cfg, log)
	if err != nil {
		return nil, err
	}
	bdb, err := db.Open(ctx, cfg.db())
	if err != nil {
		return nil, err
	}
	if migrate {
		if err := db.Migrate(ctx, bdb); err != nil {
			bdb.Close()
			return nil, err
		}
	}
	redis, err := jobs.OpenRedis(cfg.RedisURL)
	if err != nil {
		bdb.Close()
		return nil, err
	}
	a := &App{cfg: cfg, log: log, bun: bdb, store: db.New(bdb), redis: redis, registry: prometheus.NewRegistry()}
	a.client = asynq.NewClient(redis.Opt)
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := jobs.NewMetrics(a.registry)
	jobs.QueueDepth(a.registry, asynq.NewInspector(redis.Opt))
	a.queue = jobs.NewQueue(a.client, asynq.NewInspector(redis.Opt))
	queue := a.queue
	netPolicy := connectors.ClientOptions{
		AllowPrivate: cfg.AllowPrivateNetworks, AllowCIDRs: cfg.AllowCIDRs, OnBlock: metrics.SSRFBlocked.Inc,
	}
	httpClient := connectors.NewHTTPClient(netPolicy)
	oauth := cfg.OAuth
	oauth.HTTPClient = httpClient
	a.engine = (&jobs.Engine{
		Store: a.store, Queue: queue, Connectors: connectors.DefaultWithOAuth(netPolicy, oauth), Keyring: keyring,
		Log: log, Metrics: metrics, HTTP: httpClient,
		PerConnection: max(1, cfg.Concurrency/2),
	}).Init()
	a.handlers = &handlers.Handlers{
		Store: a.store, Queue: queue, Engine: a.engine, Connectors: a.engine.Connectors, Keyring: keyring,
		Log: log, Metrics: metrics, MaxEventBytes: cfg.MaxEventBytes, AllowPrivate: cfg.AllowPrivateNetworks,
		ReadyChecks: map[string]func(context.Context) error{
			"database": a.store.Ping,
			"redis":    func(ctx context.Context) error { return a.client.Ping() },
		},
	}
	if a.oauth, err = newOAuthFlow(a.handlers, keyring); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// newOAuthFlow builds the destinations' OAuth connect flow; its state cookie is sealed
// with keys derived from the credentials key.
func newOAuthFlow(h *handlers.Handlers, keyring *secrets.Keyring) (*handlers.OAuthFlow, error) {
	hashKey, err := keyring.DeriveKey("oauth cookie hash", 32)
	if err != nil {
		return nil, err
	}
	blockKey, err := keyring.DeriveKey("oauth cookie block", 32)
	if err != nil {
		return nil, err
	}
	return handlers.NewOAuthFlow(h, hashKey, blockKey)
}

func loadKeyring(cfg Config, log *slog.Logger) (*secrets.Keyring, error) {
	if cfg.SecretKey != "" {
		k, err := secrets.ParseKeyring(cfg.SecretKey)
		if err != nil {
			return nil, fmt.Errorf("FANOUT_SECRET_KEY: %w", err)
		}
		return k, nil
	}
	if cfg.db().IsPostgres() {
		return nil, errors.New("FANOUT_SECRET_KEY is required with a shared database (generate one with `fanout secrets generate`)")
	}
	path := filepath.Join(cfg.DataDir, "secret.key")
	k, created, err := secrets.LoadOrCreate(path)
	if err != nil {
		return nil, fmt.Errorf("secret key %s: %w", path, err)
	}
	if created {
		log.Warn("FANOUT_SECRET_KEY is not set: generated a key for credentials at rest; back it up, losing it loses every stored credential", "path", path)
	}
	return k, nil
}

// Close releases everything the app opened.
func (a *App) Close() {
	a.client.Close()
	a.redis.Close()
	a.bun.Close()
}

// runWeb serves HTTP until ctx ends, then stops accepting and lets requests finish.
func (a *App) runWeb(ctx context.Context, ln net.Listener) error {
	e := web.New(web.Config{Log: a.log, Registry: a.registry, BaseURL: a.cfg.BaseURL, QueueRedis: a.redis.Opt, TrustedProxies: a.cfg.TrustedProxies, OAuth: a.oauth,
		IngestRateLimit: float64(a.cfg.IngestRateLimit)}, a.handlers)
	srv := &http.Server{
		Handler: e, ReadHeaderTimeout: web.ReadHeaderTimeout, ReadTimeout: web.ReadTimeout,
		WriteTimeout: web.WriteTimeout, IdleTimeout: web.IdleTimeout, MaxHeaderBytes: 64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	a.log.Info("listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

// runWorker processes tasks and reconciles until ctx ends; in-flight attempts get the
// shutdown timeout to finish.
func (a *App) runWorker(ctx context.Context) error {
	srv, mux := jobs.NewServer(a.redis.Opt, jobs.ServerConfig{
		Concurrency: a.cfg.Concurrency, PollInterval: a.cfg.PollInterval, ScheduledInterval: 250 * time.Millisecond, ShutdownTimeout: a.cfg.ShutdownTimeout,
	}, a.engine)
	if err := srv.Start(mux); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	rec := &jobs.Reconciler{Engine: a.engine, Queue: a.queue, Every: a.cfg.ReconcileEvery, Grace: 5 * time.Second, Batch: 1000}
	var wg sync.WaitGroup
	rctx, stopReconciler := context.WithCancel(context.Background())
	wg.Add(1)
	go func() {
		defer wg.Done()
		rec.Run(rctx)
	}()
	<-ctx.Done()
	stopReconciler()
	wg.Wait()
	srv.Shutdown()
	return nil
}
