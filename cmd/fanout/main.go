// Command fanout runs Fanout: `serve` does everything in one process on embedded
// defaults; `web` and `worker` split it across machines that share PostgreSQL and Redis.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/fanout-dev/fanout/db"
	"golang.org/x/sync/errgroup"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `fanout: one event in, many integrations out.

Usage:
  fanout serve                  dashboard, API, workers and reconciler in one process
  fanout web                    the HTTP API and dashboard only (needs FANOUT_REDIS_URL)
  fanout worker                 the delivery workers and reconciler only (needs FANOUT_REDIS_URL)
  fanout migrate                apply database migrations
  fanout workspace create --name NAME
  fanout apikey create --workspace ID --scope ingest|admin [--name NAME]
  fanout secrets generate       print a new FANOUT_SECRET_KEY value
  fanout secrets rotate         re-encrypt every credential under the current key
  fanout user promote EMAIL     make a dashboard user an instance administrator
  fanout bench [flags]          measure throughput and latency (fanout bench -h)
  fanout version

Configuration is by FANOUT_* environment variables; see README.md.
`

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fanout:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errors.New("no command given")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "version":
		fmt.Println(version)
		return nil
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	case "bench":
		return runBench(ctx, rest)
	}
	cfg, err := LoadConfig()
	if err != nil {
		return err
	}
	log := newLogger(cfg)
	switch cmd {
	case "serve", "web", "worker":
		return runServer(ctx, cfg, cmd)
	case "migrate":
		_, done, err := openStore(ctx, cfg)
		if err != nil {
			return err
		}
		done()
		log.Info("migrations applied")
		return nil
	case "workspace":
		return runWorkspace(ctx, cfg, rest)
	case "apikey":
		return runAPIKey(ctx, cfg, rest)
	case "secrets":
		return runSecrets(ctx, cfg, rest)
	case "user":
		return runUser(ctx, cfg, rest)
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// runServer runs the web part, the worker part, or both.
func runServer(ctx context.Context, cfg Config, mode string) error {
	log := newLogger(cfg)
	// serve and web apply migrations on start (an advisory lock serialises concurrent
	// starts on PostgreSQL); a worker expects them applied.
	a, err := openApp(ctx, cfg, log, mode == "serve", mode != "worker")
	if err != nil {
		return err
	}
	defer a.Close()
	g, ctx := errgroup.WithContext(ctx)
	if mode != "worker" {
		ln, err := net.Listen("tcp", cfg.Addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
		}
		g.Go(func() error { return a.runWeb(ctx, ln) })
	}
	if mode != "web" {
		g.Go(func() error { return a.runWorker(ctx) })
	}
	err = g.Wait()
	log.Info("stopped")
	return err
}

// openStore opens and migrates the database for one-shot commands.
func openStore(ctx context.Context, cfg Config) (*db.Store, func(), error) {
	bdb, err := db.Open(ctx, cfg.db())
	if err != nil {
		return nil, nil, err
	}
	if err := db.Migrate(ctx, bdb); err != nil {
		bdb.Close()
		return nil, nil, err
	}
	return db.New(bdb), func() { bdb.Close() }, nil
}

func runWorkspace(ctx context.Context, cfg Config, args []string) error {
	fs := flag.NewFlagSet("workspace create", flag.ContinueOnError)
	name := fs.String("name", "", "workspace name")
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: fanout workspace create --name NAME")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *name == "" {
		return errors.New("--name is required")
	}
	s, done, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer done()
	w, err := s.CreateWorkspace(ctx, *name)
	if err != nil {
		return err
	}
	admin, _, err := s.CreateAPIKey(ctx, w.ID, "admin (cli)", db.ScopeAdmin)
	if err != nil {
		return err
	}
	ingest, _, err := s.CreateAPIKey(ctx, w.ID, "ingest (cli)", db.ScopeIngest)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]string{"workspace_id": w.ID, "admin_key": admin, "ingest_key": ingest})
}

func runAPIKey(ctx context.Context, cfg Config, args []string) error {
	fs := flag.NewFlagSet("apikey create", flag.ContinueOnError)
	ws := fs.String("workspace", "", "workspace id")
	scope := fs.String("scope", db.ScopeIngest, "ingest or admin")
	name := fs.String("name", "cli", "a name to recognise the key by")
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: fanout apikey create --workspace ID --scope ingest|admin")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	s, done, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer done()
	if _, err := s.WorkspaceByID(ctx, *ws); err != nil {
		return fmt.Errorf("workspace %q: %w", *ws, err)
	}
	key, k, err := s.CreateAPIKey(ctx, *ws, *name, *scope)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]string{"id": k.ID, "key": key, "scope": k.Scope, "workspace_id": k.WorkspaceID})
}
