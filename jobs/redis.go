package jobs

import (
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
)

// Redis is a connection to the queue's Redis, possibly an embedded one.
type Redis struct {
	Opt   asynq.RedisConnOpt
	Close func()
}

// OpenRedis parses a redis:// URL, or with an empty URL starts an in-process
// Redis-compatible server on loopback (the embedded default).
func OpenRedis(url string) (*Redis, error) {
	if url != "" {
		opt, err := asynq.ParseRedisURI(url)
		if err != nil {
			return nil, fmt.Errorf("FANOUT_REDIS_URL: %w", err)
		}
		return &Redis{Opt: opt, Close: func() {}}, nil
	}
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("start embedded redis: %w", err)
	}
	// miniredis never expires keys by itself; asynq's leases and unique locks rely on
	// expiry, so the clock is advanced in real time.
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				m.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	return &Redis{
		Opt: asynq.RedisClientOpt{Addr: m.Addr()},
		Close: func() {
			close(stop)
			m.Close()
		},
	}, nil
}
