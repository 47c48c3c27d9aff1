package db

import (
	"context"
	"database/sql"
	"time"

	"github.com/uptrace/bun"
)

// Store runs every query of the application. Inside InTx the same methods run in one
// transaction. Every method that reads or writes tenant data takes the workspace id.
type Store struct {
	db  bun.IDB
	raw *bun.DB
	now func() time.Time
}

// New wraps an open database.
func New(bdb *bun.DB) *Store {
	// Both databases keep microseconds: times handed out are truncated alike, so a row
	// read back equals the one written.
	return &Store{db: bdb, raw: bdb, now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }}
}

// DB returns the underlying database (for health checks and tests).
func (s *Store) DB() *bun.DB { return s.raw }

// Now returns the store's clock, in UTC.
func (s *Store) Now() time.Time { return s.now() }

// IsPostgres reports whether the store runs on PostgreSQL.
func (s *Store) IsPostgres() bool { return s.raw.Dialect().Name().String() == "pg" }

// InTx runs fn with a Store whose methods share one transaction; fn's error rolls back.
func (s *Store) InTx(ctx context.Context, fn func(tx *Store) error) error {
	if _, ok := s.db.(bun.Tx); ok {
		return fn(s)
	}
	return s.raw.RunInTx(ctx, &sql.TxOptions{}, func(ctx context.Context, tx bun.Tx) error {
		return fn(&Store{db: tx, raw: s.raw, now: s.now})
	})
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.raw.PingContext(ctx) }

// Page is the common cursor paging input: ids sort by creation time, newest first.
type Page struct {
	Cursor string // return rows with id < Cursor
	Limit  int
}

func (p Page) limit() int {
	switch {
	case p.Limit <= 0:
		return 50
	case p.Limit > 200:
		return 200
	}
	return p.Limit
}

func applyPage(q *bun.SelectQuery, column string, p Page) *bun.SelectQuery {
	if p.Cursor != "" {
		q = q.Where("? < ?", bun.Safe(column), p.Cursor)
	}
	return q.OrderExpr("? DESC", bun.Safe(column)).Limit(int64(p.limit() + 1))
}

// nextCursor trims the extra row fetched by applyPage and returns the cursor for the next page.
func nextCursor[T any](rows []T, p Page, id func(T) string) ([]T, string) {
	if len(rows) <= p.limit() {
		return rows, ""
	}
	rows = rows[:p.limit()]
	return rows, id(rows[len(rows)-1])
}
