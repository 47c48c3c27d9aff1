// Package db holds Fanout's nouns and their persistence: the bun models, the Store with
// one method per query, and the migrations. It imports nothing else from this module.
package db

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/fanout-dev/fanout/db/migrations"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/migrate"
	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" database/sql driver
)

// Config says which database to open.
type Config struct {
	// URL is postgres://… for PostgreSQL; empty (or sqlite:PATH) for SQLite.
	URL string
	// DataDir holds the SQLite file when URL is empty.
	DataDir string
	// MaxOpenConns bounds the pool; 0 picks a default per dialect.
	MaxOpenConns int
}

// IsPostgres reports whether the config names a PostgreSQL database.
func (c Config) IsPostgres() bool {
	return strings.HasPrefix(c.URL, "postgres://") || strings.HasPrefix(c.URL, "postgresql://")
}

// Validate reports a malformed URL without opening anything.
func (c Config) Validate() error {
	switch {
	case c.URL == "", strings.HasPrefix(c.URL, "sqlite:"):
		return nil
	case c.IsPostgres():
		if _, err := url.Parse(c.URL); err != nil {
			return fmt.Errorf("FANOUT_DATABASE_URL: not a valid URL")
		}
		return nil
	default:
		return fmt.Errorf("FANOUT_DATABASE_URL: want postgres://… or sqlite:PATH (or empty for ./data/fanout.db)")
	}
}

// Open connects to the database named by cfg and checks that it answers.
func Open(ctx context.Context, cfg Config) (*bun.DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var bdb *bun.DB
	if cfg.IsPostgres() {
		pgcfg, err := pgx.ParseConfig(cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("FANOUT_DATABASE_URL: %w", err)
		}
		// bun renders arguments into the SQL text, so every statement is new to the
		// server: preparing and caching them (pgx's default) costs a round trip each and
		// never hits. The simple protocol sends each statement once.
		pgcfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		sqldb := stdlib.OpenDB(*pgcfg)
		sqldb.SetMaxOpenConns(orDefault(cfg.MaxOpenConns, 64))
		sqldb.SetMaxIdleConns(orDefault(cfg.MaxOpenConns, 64))
		bdb = bun.NewDB(sqldb, pgdialect.New())
	} else {
		path, err := sqlitePath(cfg)
		if err != nil {
			return nil, err
		}
		sqldb, err := sql.Open("sqlite", sqliteDSN(path))
		if err != nil {
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
		// SQLite has one writer at a time; a small pool keeps lock waits short while WAL
		// still lets readers run beside the writer.
		sqldb.SetMaxOpenConns(orDefault(cfg.MaxOpenConns, 8))
		sqldb.SetMaxIdleConns(orDefault(cfg.MaxOpenConns, 8))
		sqldb.SetConnMaxLifetime(0)
		bdb = bun.NewDB(sqldb, sqlitedialect.New())
	}
	if err := bdb.PingContext(ctx); err != nil {
		bdb.Close()
		return nil, fmt.Errorf("ping database: %w", err)
	}
	return bdb, nil
}

func sqlitePath(cfg Config) (string, error) {
	if p, ok := strings.CutPrefix(cfg.URL, "sqlite:"); ok {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return "", fmt.Errorf("create database folder: %w", err)
		}
		return p, nil
	}
	dir := cfg.DataDir
	if dir == "" {
		dir = "data"
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create data folder %s: %w", dir, err)
	}
	return filepath.Join(dir, "fanout.db"), nil
}

// sqliteDSN sets the pragmas on every new connection. busy_timeout comes before
// journal_mode so that switching to WAL waits for a lock instead of failing; _txlock
// makes transactions take the write lock at BEGIN, which avoids the deadlock-prone
// read-to-write upgrade that SQLite answers with SQLITE_BUSY at once.
func sqliteDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

func orDefault(n, def int) int {
	if n > 0 {
		return n
	}
	return def
}

// Migrate applies every pending migration. On PostgreSQL an advisory lock serialises
// concurrent starts of several processes.
func Migrate(ctx context.Context, bdb *bun.DB) error {
	var schema fs.FS
	var err error
	if bdb.Dialect().Name().String() == "pg" {
		schema, err = fs.Sub(migrations.Postgres, "postgres")
	} else {
		schema, err = fs.Sub(migrations.SQLite, "sqlite")
	}
	if err != nil {
		return err
	}
	ms := migrate.NewMigrations()
	if err := ms.Discover(schema); err != nil {
		return fmt.Errorf("discover migrations: %w", err)
	}
	unlock, err := migrationLock(ctx, bdb)
	if err != nil {
		return err
	}
	defer unlock()
	m := migrate.NewMigrator(bdb, ms, migrate.WithMarkAppliedOnSuccess(true))
	if err := m.Init(ctx); err != nil {
		return fmt.Errorf("init migrations: %w", err)
	}
	if _, err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

const migrationLockID = 0x66616e6f // "fano"

func migrationLock(ctx context.Context, bdb *bun.DB) (func(), error) {
	if bdb.Dialect().Name().String() != "pg" {
		return func() {}, nil
	}
	conn, err := bdb.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration lock: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(?)", migrationLockID); err != nil {
		conn.Close()
		return nil, fmt.Errorf("migration lock: %w", err)
	}
	return func() {
		_, _ = conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock(?)", migrationLockID)
		conn.Close()
	}, nil
}
