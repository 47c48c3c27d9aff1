package web

import (
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/fanout-dev/fanout/handlers"
	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
)

// ingestLimiter bounds the events per second one API key may post, per process, so one
// runaway client cannot starve the others. A limit of 0 turns it off.
type ingestLimiter struct {
	perSecond rate.Limit
	burst     int
	mu        sync.Mutex
	keys      map[string]*rate.Limiter
}

func newIngestLimiter(perSecond float64) *ingestLimiter {
	return &ingestLimiter{perSecond: rate.Limit(perSecond), burst: max(1, int(2*perSecond)), keys: map[string]*rate.Limiter{}}
}

func (l *ingestLimiter) limiter(keyID string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.keys[keyID]
	if lim == nil {
		lim = rate.NewLimiter(l.perSecond, l.burst)
		l.keys[keyID] = lim
	}
	return lim
}

// middleware answers 429 with Retry-After when the key is over its rate. A request is
// one event; batches are counted once here and are bounded to 100 events by the handler.
func (l *ingestLimiter) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if l.perSecond <= 0 {
			return next(c)
		}
		r := l.limiter(handlers.IdentityOf(c).Key.ID).Reserve()
		if delay := r.Delay(); delay > 0 {
			r.Cancel()
			return &handlers.Error{Status: http.StatusTooManyRequests, Code: "rate_limited",
				Message:    "this API key is over its rate limit; retry after the Retry-After delay",
				RetryAfter: int(math.Ceil(max(delay, time.Second).Seconds()))}
		}
		return next(c)
	}
}
