package jobs

import (
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/db/secrets"
	"github.com/fanout-dev/fanout/jobs/connectors"
	"github.com/fanout-dev/fanout/jobs/rules"
)

// maxAttemptTimeout bounds any action's per-attempt timeout.
const maxAttemptTimeout = 60 * time.Second

// DefaultAttemptTimeout applies when an action sets none.
const DefaultAttemptTimeout = 10 * time.Second

// Engine holds what the task handlers need. Its handlers are safe for concurrent use.
type Engine struct {
	Store      *db.Store
	Queue      Enqueuer
	Connectors *connectors.Registry
	Keyring    *secrets.Keyring
	HTTP       *http.Client
	Rules      *rules.Cache
	Log        *slog.Logger
	Metrics    *Metrics
	// PerConnection bounds concurrent attempts to one connection in this process, so a
	// slow destination cannot hold every worker.
	PerConnection int
	// BreakerCooldown is how long a connection whose circuit opened is left alone.
	BreakerCooldown time.Duration

	slots    *slots
	breakers *breakers
	rules    *ruleCache
	rand     func() float64
}

// RulesTTL bounds how long a process routes with a workspace's rules after another
// process changed them; changes made through this process apply at once.
const RulesTTL = time.Second

// InvalidateRules makes the next event of the workspace load its rules afresh.
func (e *Engine) InvalidateRules(workspaceID string) { e.rules.invalidate(workspaceID) }

// Init fills defaults; call it once before serving.
func (e *Engine) Init() *Engine {
	if e.PerConnection <= 0 {
		e.PerConnection = 16
	}
	if e.Rules == nil {
		e.Rules = &rules.Cache{}
	}
	if e.Metrics == nil {
		e.Metrics = NewMetrics(nil)
	}
	if e.BreakerCooldown <= 0 {
		e.BreakerCooldown = 30 * time.Second
	}
	e.slots = newSlots(e.PerConnection)
	e.breakers = newBreakers(e.BreakerCooldown, e.Metrics.BreakerTrips.Inc)
	e.rules = newRuleCache(RulesTTL)
	e.rand = rand.Float64
	return e
}

// OpenCredentials decrypts a connection's credentials.
func OpenCredentials(k *secrets.Keyring, c *db.Connection) (connectors.Credentials, error) {
	creds := connectors.Credentials{}
	if len(c.Credentials) == 0 {
		return creds, nil
	}
	err := k.OpenJSON(c.Credentials, secrets.ConnectionAAD(c.WorkspaceID, c.ID), &creds)
	return creds, err
}

// SealCredentials encrypts credentials for a connection row (whose ids must be set).
func SealCredentials(k *secrets.Keyring, c *db.Connection, creds connectors.Credentials) error {
	sealed, err := k.SealJSON(creds, secrets.ConnectionAAD(c.WorkspaceID, c.ID))
	if err != nil {
		return err
	}
	c.Credentials = sealed
	return nil
}
