// Package handlers holds the HTTP handlers, one file per resource: the /v1 JSON API
// (api_*.go) and the dashboard pages. Handlers parse, authorize, call the store or the
// engine, and render; they return errors for web's error handler to map.
package handlers

import (
	"context"
	"log/slog"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/db/secrets"
	"github.com/fanout-dev/fanout/jobs"
	"github.com/fanout-dev/fanout/jobs/connectors"
)

// Handlers carries the dependencies of every handler.
type Handlers struct {
	Store      *db.Store
	Queue      jobs.Enqueuer
	Engine     *jobs.Engine
	Connectors *connectors.Registry
	Keyring    *secrets.Keyring
	Log        *slog.Logger
	Metrics    *jobs.Metrics
	// MaxEventBytes bounds an ingest request body.
	MaxEventBytes int64
	// AllowPrivate lifts the SSRF guard on connection URLs (local development, tests).
	AllowPrivate bool
	// ReadyChecks name the dependencies /readyz pings.
	ReadyChecks map[string]func(context.Context) error
}
