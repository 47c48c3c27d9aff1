package jobs

import (
	"context"
	"sync"
	"time"

	"github.com/fanout-dev/fanout/db"
)

// ruleCache keeps each workspace's enabled rules for a short time, so routing a burst of
// events reads them once. Compiled expressions and mappings are cached separately by
// source text (rules.Cache), so an edited rule compiles once.
type ruleCache struct {
	ttl     time.Duration
	mu      sync.Mutex
	entries map[string]ruleEntry
}

type ruleEntry struct {
	rules   []*db.Rule
	fetched time.Time
}

func newRuleCache(ttl time.Duration) *ruleCache {
	return &ruleCache{ttl: ttl, entries: map[string]ruleEntry{}}
}

func (c *ruleCache) get(ctx context.Context, workspaceID string, load func(context.Context) ([]*db.Rule, error)) ([]*db.Rule, error) {
	c.mu.Lock()
	e, ok := c.entries[workspaceID]
	c.mu.Unlock()
	if ok && time.Since(e.fetched) < c.ttl {
		return e.rules, nil
	}
	rules, err := load(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) > 10000 {
		clear(c.entries) // bound memory across many workspaces; refills on demand
	}
	c.entries[workspaceID] = ruleEntry{rules: rules, fetched: time.Now()}
	return rules, nil
}

func (c *ruleCache) invalidate(workspaceID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, workspaceID)
}
