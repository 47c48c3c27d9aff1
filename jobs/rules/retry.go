package rules

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Limits of a retry policy.
const (
	maxAttemptsLimit = 50
	minWait          = time.Second
	maxWait          = 72 * time.Hour
	maxAgeLimit      = 30 * 24 * time.Hour
	jitter           = 0.2 // ±20%
)

// defaultSchedule spans about 27.6 hours over 7 retries.
var defaultSchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

const defaultMaxAttempts = 8

// RetryPolicy says how often and how long a delivery is retried. Schedule[i] is the wait
// after the (i+1)th failed attempt; when MaxAttempts needs more waits than the schedule
// has, its last entry repeats. MaxAge, when not zero, bounds the time since the event
// was received (the engine checks it). The zero value behaves as DefaultRetryPolicy.
type RetryPolicy struct {
	MaxAttempts int
	Schedule    []time.Duration
	MaxAge      time.Duration
}

// DefaultRetryPolicy returns the policy of actions that set none: 8 attempts, the first
// immediate, then waits of 5s, 5m, 30m, 2h, 5h, 10h and 10h (about 27.6 hours), with no
// age limit.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: defaultMaxAttempts, Schedule: slices.Clone(defaultSchedule)}
}

// ParseRetryPolicy parses an action's retry policy:
//
//	{"max_attempts": 8, "schedule": ["5s", "5m", "30m"], "max_age": "24h"}
//
// Every key is optional: a missing schedule is the default one, a missing max_attempts is
// one more than the schedule's length (8 with the default schedule) and a missing max_age
// means no age limit. Durations are Go durations ("90s", "1h30m") or whole days ("7d").
// Limits: 1 ≤ max_attempts ≤ 50, every wait between 1s and 72h, max_age at most 30 days.
// Empty or null raw is DefaultRetryPolicy. Errors are *FieldError with Field
// "retry.max_attempts", "retry.schedule[2]", ….
func ParseRetryPolicy(raw json.RawMessage) (RetryPolicy, error) {
	p, err := parseRetryPolicy(raw)
	if err != nil {
		return RetryPolicy{}, err
	}
	return p, nil
}

func parseRetryPolicy(raw json.RawMessage) (RetryPolicy, error) {
	p := DefaultRetryPolicy()
	if isEmptyJSON(raw) {
		return p, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return p, &FieldError{Field: "retry", Message: "must be an object"}
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch k {
		case "max_attempts", "schedule", "max_age":
		default:
			return p, &FieldError{Field: "retry." + k, Message: "unknown key"}
		}
	}

	if raw := obj["schedule"]; !isEmptyJSON(raw) {
		sched, err := parseSchedule(raw)
		if err != nil {
			return p, err
		}
		p.Schedule = sched
		p.MaxAttempts = len(sched) + 1
	}
	if raw := obj["max_attempts"]; !isEmptyJSON(raw) {
		var n int
		if err := json.Unmarshal(raw, &n); err != nil {
			return p, &FieldError{Field: "retry.max_attempts", Message: "must be a whole number"}
		}
		if n < 1 || n > maxAttemptsLimit {
			return p, &FieldError{Field: "retry.max_attempts",
				Message: fmt.Sprintf("must be between 1 and %d", maxAttemptsLimit)}
		}
		p.MaxAttempts = n
	}
	if raw := obj["max_age"]; !isEmptyJSON(raw) {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return p, &FieldError{Field: "retry.max_age", Message: `must be a duration such as "24h"`}
		}
		d, err := parseDuration(s)
		if err != nil {
			return p, &FieldError{Field: "retry.max_age", Message: `must be a duration such as "24h"`}
		}
		if d < 0 || d > maxAgeLimit {
			return p, &FieldError{Field: "retry.max_age", Message: "must be between 0 (no limit) and 30 days"}
		}
		p.MaxAge = d
	}
	return p, nil
}

func parseSchedule(raw json.RawMessage) ([]time.Duration, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, &FieldError{Field: "retry.schedule", Message: `must be a list of durations such as ["5s", "5m"]`}
	}
	switch {
	case len(items) == 0:
		return nil, &FieldError{Field: "retry.schedule", Message: "must not be empty"}
	case len(items) >= maxAttemptsLimit:
		return nil, &FieldError{Field: "retry.schedule",
			Message: fmt.Sprintf("must have at most %d entries", maxAttemptsLimit-1)}
	}
	sched := make([]time.Duration, len(items))
	for i, item := range items {
		field := fmt.Sprintf("retry.schedule[%d]", i)
		var s string
		if err := json.Unmarshal(item, &s); err != nil {
			return nil, &FieldError{Field: field, Message: `must be a duration such as "5m"`}
		}
		d, err := parseDuration(s)
		if err != nil {
			return nil, &FieldError{Field: field, Message: `must be a duration such as "5m"`}
		}
		if d < minWait || d > maxWait {
			return nil, &FieldError{Field: field, Message: "must be between 1s and 72h"}
		}
		sched[i] = d
	}
	return sched, nil
}

// parseDuration is time.ParseDuration plus whole days ("7d").
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 365 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

func (p RetryPolicy) schedule() []time.Duration {
	if len(p.Schedule) == 0 {
		return defaultSchedule
	}
	return p.Schedule
}

func (p RetryPolicy) maxAttempts() int {
	if p.MaxAttempts <= 0 {
		return defaultMaxAttempts
	}
	return p.MaxAttempts
}

// wait returns the scheduled wait after the given number of failed attempts (1-based).
func (p RetryPolicy) wait(failures int) time.Duration {
	s := p.schedule()
	return s[min(max(failures, 1), len(s))-1]
}

// Delay returns the wait before the next attempt after failures failed attempts
// (1-based), with ±20% jitter so that deliveries that failed together do not retry
// together. rnd returns a number in [0, 1); nil means math/rand/v2.Float64.
func (p RetryPolicy) Delay(failures int, rnd func() float64) time.Duration {
	if rnd == nil {
		rnd = rand.Float64
	}
	r := min(max(rnd(), 0), 1)
	return time.Duration(float64(p.wait(failures)) * (1 - jitter + 2*jitter*r))
}

// Span returns the sum of the scheduled waits (without jitter) of all MaxAttempts
// attempts: how long a delivery may stay in retry. The engine caps a destination's
// Retry-After with it.
func (p RetryPolicy) Span() time.Duration {
	var total time.Duration
	for f := 1; f < p.maxAttempts(); f++ {
		total += p.wait(f)
	}
	return total
}

// Exhausted reports whether failures failed attempts use up the policy.
func (p RetryPolicy) Exhausted(failures int) bool {
	return failures >= p.maxAttempts()
}
