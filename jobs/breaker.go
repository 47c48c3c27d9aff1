package jobs

import (
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
)

// breakerTrips is how many retryable failures in a row open a connection's circuit.
const breakerTrips = 5

// breakers holds one circuit breaker per connection in this process. A destination that
// keeps failing is left alone for a cooldown: its deliveries are rescheduled without
// using attempts, then one trial attempt decides whether traffic resumes. This spares a
// dead endpoint (and the workers) a stampede of timeouts.
type breakers struct {
	cooldown time.Duration
	onTrip   func()
	mu       sync.Mutex
	m        map[string]*gobreaker.TwoStepCircuitBreaker[struct{}]
}

func newBreakers(cooldown time.Duration, onTrip func()) *breakers {
	return &breakers{cooldown: cooldown, onTrip: onTrip, m: map[string]*gobreaker.TwoStepCircuitBreaker[struct{}]{}}
}

// allow asks the connection's breaker for an attempt. done reports whether it failed.
func (b *breakers) allow(connectionID string) (done func(failed bool), ok bool) {
	b.mu.Lock()
	cb := b.m[connectionID]
	if cb == nil {
		cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
			Name:        connectionID,
			MaxRequests: 1,
			Timeout:     b.cooldown,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= breakerTrips },
			OnStateChange: func(_ string, _, to gobreaker.State) {
				if to == gobreaker.StateOpen && b.onTrip != nil {
					b.onTrip()
				}
			},
		})
		b.m[connectionID] = cb
	}
	b.mu.Unlock()
	report, err := cb.Allow()
	if err != nil {
		return nil, false
	}
	return func(failed bool) {
		if failed {
			report(errAttemptFailed)
		} else {
			report(nil)
		}
	}, true
}

type attemptFailed struct{}

func (attemptFailed) Error() string { return "attempt failed" }

var errAttemptFailed error = attemptFailed{}
