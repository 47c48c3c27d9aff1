// Package dbtest gives each test its own freshly migrated database: a SQLite file in the
// test's temporary folder, or, when FANOUT_TEST_DATABASE_URL names a PostgreSQL server,
// a schema of its own on that server.
package dbtest

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/fanout-dev/fanout/db"
)

// PostgresURL returns FANOUT_TEST_DATABASE_URL, or "" when tests run on SQLite.
func PostgresURL() string { return os.Getenv("FANOUT_TEST_DATABASE_URL") }

// Config returns a database config private to this test, creating what it needs.
func Config(tb testing.TB) db.Config {
	tb.Helper()
	base := PostgresURL()
	if base == "" {
		return db.Config{URL: "sqlite:" + tb.TempDir() + "/fanout.db"}
	}
	schema := "t_" + strings.ToLower(db.RandomSecret(9))
	schema = strings.NewReplacer("-", "_").Replace(schema)
	admin, err := db.Open(context.Background(), db.Config{URL: base, MaxOpenConns: 1})
	if err != nil {
		tb.Fatalf("dbtest: open postgres: %v", err)
	}
	if _, err := admin.Exec(`CREATE SCHEMA "` + schema + `"`); err != nil {
		tb.Fatalf("dbtest: create schema: %v", err)
	}
	tb.Cleanup(func() {
		admin.Exec(`DROP SCHEMA "` + schema + `" CASCADE`)
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("dbtest: FANOUT_TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return db.Config{URL: u.String(), MaxOpenConns: 8}
}

// New returns a Store on a fresh, migrated database that is closed when the test ends.
func New(tb testing.TB) *db.Store {
	tb.Helper()
	return Open(tb, Config(tb))
}

// Open opens and migrates the database of cfg for the duration of the test.
func Open(tb testing.TB, cfg db.Config) *db.Store {
	tb.Helper()
	ctx := context.Background()
	bdb, err := db.Open(ctx, cfg)
	if err != nil {
		tb.Fatalf("dbtest: open: %v", err)
	}
	tb.Cleanup(func() { bdb.Close() })
	if err := db.Migrate(ctx, bdb); err != nil {
		tb.Fatalf("dbtest: migrate: %v", err)
	}
	return db.New(bdb)
}

// Workspace creates a workspace for the test.
func Workspace(tb testing.TB, s *db.Store) *db.Workspace {
	tb.Helper()
	w, err := s.CreateWorkspace(context.Background(), "test")
	if err != nil {
		tb.Fatalf("dbtest: create workspace: %v", err)
	}
	return w
}
