// Package jobstest runs the engine for tests: a Redis per test (in-process, or a database
// of the real server named by FANOUT_TEST_REDIS_URL), a recording loopback receiver, and
// a running worker on a fresh database.
package jobstest

import (
	"context"
	"os"
	"testing"

	"github.com/fanout-dev/fanout/jobs"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// RedisURL returns FANOUT_TEST_REDIS_URL, or "" when tests use the in-process server.
func RedisURL() string { return os.Getenv("FANOUT_TEST_REDIS_URL") }

// Redis returns a connection option to an empty Redis for this test. On a real server,
// packages must pass distinct dbIndex values (they run in parallel processes) and the
// tests of one package that use it must not run in parallel.
func Redis(tb testing.TB, dbIndex int) asynq.RedisClientOpt {
	tb.Helper()
	if url := RedisURL(); url != "" {
		opt, err := asynq.ParseRedisURI(url)
		if err != nil {
			tb.Fatalf("jobstest: FANOUT_TEST_REDIS_URL: %v", err)
		}
		o := opt.(asynq.RedisClientOpt)
		o.DB = dbIndex
		c := redis.NewClient(&redis.Options{Addr: o.Addr, Password: o.Password, DB: o.DB})
		defer c.Close()
		if err := c.FlushDB(context.Background()).Err(); err != nil {
			tb.Fatalf("jobstest: flush redis db %d: %v", dbIndex, err)
		}
		return o
	}
	r, err := jobs.OpenRedis("") // the embedded server, as `fanout serve` runs it
	if err != nil {
		tb.Fatalf("jobstest: %v", err)
	}
	tb.Cleanup(r.Close)
	return r.Opt.(asynq.RedisClientOpt)
}
