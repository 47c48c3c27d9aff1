// Package migrations holds the schema, one directory of SQL files per dialect. The two
// directories differ only in column types (TIMESTAMP vs TIMESTAMPTZ, BLOB vs BYTEA).
package migrations

import "embed"

// SQLite is the schema for the embedded SQLite database.
//
//go:embed sqlite/*.sql
var SQLite embed.FS

// Postgres is the schema for PostgreSQL.
//
//go:embed postgres/*.sql
var Postgres embed.FS
