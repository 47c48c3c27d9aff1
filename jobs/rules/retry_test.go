package rules

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultRetryPolicy(t *testing.T) {
	p := DefaultRetryPolicy()
	if p.MaxAttempts != 8 || p.MaxAge != 0 {
		t.Errorf("got %+v", p)
	}
	want := []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}
	if !reflect.DeepEqual(p.Schedule, want) {
		t.Errorf("schedule %v", p.Schedule)
	}
	if span := p.Span(); span != 27*time.Hour+35*time.Minute+5*time.Second {
		t.Errorf("Span = %v, want about 27.6h", span)
	}
	// Callers may change their copy without changing the default.
	p.Schedule[0] = time.Hour
	if DefaultRetryPolicy().Schedule[0] != 5*time.Second {
		t.Error("DefaultRetryPolicy shares its schedule")
	}
}

func TestParseRetryPolicy(t *testing.T) {
	def := DefaultRetryPolicy()
	tests := []struct {
		name string
		raw  string
		want RetryPolicy
	}{
		{"empty", ``, def},
		{"null", `null`, def},
		{"empty object", `{}`, def},
		{"full", `{"max_attempts": 5, "schedule": ["5s", "1m30s", "2h"], "max_age": "24h"}`,
			RetryPolicy{MaxAttempts: 5, Schedule: []time.Duration{5 * time.Second, 90 * time.Second, 2 * time.Hour}, MaxAge: 24 * time.Hour}},
		{"schedule alone", `{"schedule": ["1s", "2s"]}`,
			RetryPolicy{MaxAttempts: 3, Schedule: []time.Duration{time.Second, 2 * time.Second}}},
		{"max_attempts alone", `{"max_attempts": 3}`,
			RetryPolicy{MaxAttempts: 3, Schedule: def.Schedule}},
		{"one attempt", `{"max_attempts": 1}`, RetryPolicy{MaxAttempts: 1, Schedule: def.Schedule}},
		{"max_age alone", `{"max_age": "7d"}`, RetryPolicy{MaxAttempts: 8, Schedule: def.Schedule, MaxAge: 7 * 24 * time.Hour}},
		{"max_age zero", `{"max_age": "0s"}`, def},
		{"nulls", `{"max_attempts": null, "schedule": null, "max_age": null}`, def},
		{"limits", `{"max_attempts": 50, "schedule": ["1s", "72h", "3d"], "max_age": "720h"}`,
			RetryPolicy{MaxAttempts: 50, Schedule: []time.Duration{time.Second, 72 * time.Hour, 72 * time.Hour}, MaxAge: 30 * 24 * time.Hour}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRetryPolicy(json.RawMessage(tc.raw))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseRetryPolicyErrors(t *testing.T) {
	long := `["1s"` + strings.Repeat(`, "1s"`, maxAttemptsLimit-1) + `]`
	tests := []struct {
		name      string
		raw       string
		wantField string
		wantMsg   string
	}{
		{"not an object", `[1]`, "retry", "must be an object"},
		{"unknown key", `{"max_attempts": 2, "backoff": "exp"}`, "retry.backoff", "unknown key"},
		{"attempts zero", `{"max_attempts": 0}`, "retry.max_attempts", "between 1 and 50"},
		{"attempts too many", `{"max_attempts": 51}`, "retry.max_attempts", "between 1 and 50"},
		{"attempts negative", `{"max_attempts": -1}`, "retry.max_attempts", "between 1 and 50"},
		{"attempts fraction", `{"max_attempts": 2.5}`, "retry.max_attempts", "whole number"},
		{"attempts string", `{"max_attempts": "3"}`, "retry.max_attempts", "whole number"},
		{"schedule not list", `{"schedule": "5s"}`, "retry.schedule", "must be a list"},
		{"schedule empty", `{"schedule": []}`, "retry.schedule", "must not be empty"},
		{"schedule too long", `{"schedule": ` + long + `}`, "retry.schedule", "at most 49"},
		{"schedule bad entry", `{"schedule": ["5s", "5m", "soon"]}`, "retry.schedule[2]", "must be a duration"},
		{"schedule number", `{"schedule": [5]}`, "retry.schedule[0]", "must be a duration"},
		{"schedule too short", `{"schedule": ["5s", "500ms"]}`, "retry.schedule[1]", "between 1s and 72h"},
		{"schedule too long wait", `{"schedule": ["73h"]}`, "retry.schedule[0]", "between 1s and 72h"},
		{"schedule negative", `{"schedule": ["-5s"]}`, "retry.schedule[0]", "between 1s and 72h"},
		{"max_age bad", `{"max_age": "forever"}`, "retry.max_age", "must be a duration"},
		{"max_age number", `{"max_age": 3600}`, "retry.max_age", "must be a duration"},
		{"max_age too long", `{"max_age": "31d"}`, "retry.max_age", "30 days"},
		{"max_age negative", `{"max_age": "-1h"}`, "retry.max_age", "30 days"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRetryPolicy(json.RawMessage(tc.raw))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want a *FieldError", err)
			}
			if fe.Field != tc.wantField || !strings.Contains(fe.Message, tc.wantMsg) {
				t.Errorf("got %q: %q, want %q: …%s…", fe.Field, fe.Message, tc.wantField, tc.wantMsg)
			}
		})
	}
}

func fixed(r float64) func() float64 { return func() float64 { return r } }

func TestRetryDelay(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 6, Schedule: []time.Duration{10 * time.Second, time.Minute, time.Hour}}
	tests := []struct {
		name     string
		failures int
		rnd      float64
		want     time.Duration
	}{
		{"first, no jitter", 1, 0.5, 10 * time.Second},
		{"first, lowest", 1, 0, 8 * time.Second},
		{"first, highest", 1, 0.999999999, 12 * time.Second},
		{"second", 2, 0.5, time.Minute},
		{"third", 3, 0.5, time.Hour},
		{"last entry repeats", 5, 0.5, time.Hour},
		{"zero failures is the first", 0, 0.5, 10 * time.Second},
		{"out of range rnd is clamped", 2, 7, 72 * time.Second},
		{"negative rnd is clamped", 2, -1, 48 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := p.Delay(tc.failures, fixed(tc.rnd))
			if diff := got - tc.want; diff < -time.Millisecond || diff > time.Millisecond {
				t.Errorf("Delay(%d) = %v, want %v", tc.failures, got, tc.want)
			}
		})
	}
}

func TestRetryDelayJitterBounds(t *testing.T) {
	p := DefaultRetryPolicy()
	for f := 1; f <= p.MaxAttempts; f++ {
		base := p.Schedule[min(f, len(p.Schedule))-1]
		lo, hi := time.Duration(float64(base)*0.8), time.Duration(float64(base)*1.2)
		seen := map[time.Duration]bool{}
		for range 500 {
			d := p.Delay(f, nil) // the real random source
			if d < lo || d >= hi {
				t.Fatalf("Delay(%d) = %v, outside [%v, %v)", f, d, lo, hi)
			}
			seen[d] = true
		}
		if len(seen) < 100 {
			t.Errorf("Delay(%d) is barely jittered: %d distinct values of 500", f, len(seen))
		}
	}
}

func TestRetrySpanAndExhausted(t *testing.T) {
	tests := []struct {
		name      string
		policy    RetryPolicy
		span      time.Duration
		exhausted int // the first failure count that is exhausted
	}{
		{"default", DefaultRetryPolicy(), 27*time.Hour + 35*time.Minute + 5*time.Second, 8},
		{"zero value is the default", RetryPolicy{}, 27*time.Hour + 35*time.Minute + 5*time.Second, 8},
		{"one attempt", RetryPolicy{MaxAttempts: 1, Schedule: []time.Duration{time.Hour}}, 0, 1},
		{"schedule longer than attempts", RetryPolicy{MaxAttempts: 2, Schedule: []time.Duration{time.Second, time.Hour}}, time.Second, 2},
		{"last entry repeats", RetryPolicy{MaxAttempts: 5, Schedule: []time.Duration{time.Second, time.Minute}},
			time.Second + 3*time.Minute, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.policy.Span(); got != tc.span {
				t.Errorf("Span = %v, want %v", got, tc.span)
			}
			if tc.policy.Exhausted(tc.exhausted - 1) {
				t.Errorf("Exhausted(%d) = true", tc.exhausted-1)
			}
			if !tc.policy.Exhausted(tc.exhausted) || !tc.policy.Exhausted(tc.exhausted+1) {
				t.Errorf("Exhausted(%d) = false", tc.exhausted)
			}
		})
	}
}
