package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestValidatePattern(t *testing.T) {
	tests := []struct {
		pattern string
		ok      bool
	}{
		{"lead.created", true},
		{"lead", true},
		{"lead.*", true},
		{"lead.x.*", true},
		{"*", true},
		{"Lead_1.created-v2", true},
		{"", false},
		{" ", false},
		{"lead created", false},
		{"lead.created ", false},
		{"lead*", false},
		{"*.created", false},
		{"lead.*.x", false},
		{"lead.**", false},
		{"**", false},
		{"lead.", false},
		{".lead", false},
		{"lead..created", false},
		{"lead.cr*", false},
		{"lead/created", false},
		{"lead.é", false},
		{strings.Repeat("a", maxTypeLen+1), false},
	}
	for _, tc := range tests {
		t.Run(tc.pattern, func(t *testing.T) {
			err := ValidatePattern(tc.pattern)
			if (err == nil) != tc.ok {
				t.Errorf("ValidatePattern(%q) = %v, want ok=%v", tc.pattern, err, tc.ok)
			}
		})
	}
}

func TestValidateEventType(t *testing.T) {
	for _, s := range []string{"lead.created", "a", "a-b_c.D9"} {
		if err := ValidateEventType(s); err != nil {
			t.Errorf("ValidateEventType(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", "*", "lead.*", "lead.", "a b"} {
		if err := ValidateEventType(s); err == nil {
			t.Errorf("ValidateEventType(%q) = nil, want an error", s)
		}
	}
}

func TestMatchType(t *testing.T) {
	tests := []struct {
		pattern, eventType string
		want               bool
	}{
		{"lead.created", "lead.created", true},
		{"lead.created", "lead.updated", false},
		{"lead.created", "lead.created.v2", false},
		{"lead.created", "Lead.created", false},
		{"lead.*", "lead.created", true},
		{"lead.*", "lead.x.y", true},
		{"lead.*", "lead", false},
		{"lead.*", "lead.", false},
		{"lead.*", "leads.created", false},
		{"lead.*", "user.lead.created", false},
		{"lead.x.*", "lead.x.y", true},
		{"lead.x.*", "lead.y.z", false},
		{"*", "anything.at.all", true},
		{"*", "x", true},
		{"lead*", "leadx", false}, // invalid patterns match only themselves
	}
	for _, tc := range tests {
		t.Run(tc.pattern+" "+tc.eventType, func(t *testing.T) {
			if got := MatchType(tc.pattern, tc.eventType); got != tc.want {
				t.Errorf("MatchType(%q, %q) = %v, want %v", tc.pattern, tc.eventType, got, tc.want)
			}
		})
	}
}

func TestEnv(t *testing.T) {
	at := time.Date(2025, 3, 4, 5, 6, 7, 890, time.FixedZone("CET", 3600))
	tests := []struct {
		name string
		in   Input
		want map[string]any
	}{
		{"full", Input{ID: "evt_1", Type: "lead.created", Source: "app", OccurredAt: at,
			Data: json.RawMessage(`{"a": 1, "b": [1.5, "x", null, true], "c": {"d": 9007199254740993, "e": -9007199254740993, "f": 9007199254740992}}`)},
			map[string]any{"id": "evt_1", "type": "lead.created", "source": "app", "occurred_at": "2025-03-04T04:06:07Z",
				"data": map[string]any{"a": 1.0, "b": []any{1.5, "x", nil, true},
					"c": map[string]any{"d": int64(9007199254740993), "e": int64(-9007199254740993), "f": 9007199254740992.0}}}},
		{"empty data", Input{Type: "t"},
			map[string]any{"id": "", "type": "t", "source": "", "occurred_at": "", "data": map[string]any{}}},
		{"null data", Input{Type: "t", Data: json.RawMessage(`null`)},
			map[string]any{"id": "", "type": "t", "source": "", "occurred_at": "", "data": map[string]any{}}},
		{"invalid data", Input{Type: "t", Data: json.RawMessage(`{`)},
			map[string]any{"id": "", "type": "t", "source": "", "occurred_at": "", "data": map[string]any{}}},
		{"list data", Input{Type: "t", Data: json.RawMessage(`[1]`)},
			map[string]any{"id": "", "type": "t", "source": "", "occurred_at": "", "data": []any{1.0}}},
		{"huge number", Input{Type: "t", Data: json.RawMessage(`{"n": 1e400}`)},
			map[string]any{"id": "", "type": "t", "source": "", "occurred_at": "", "data": map[string]any{"n": "1e400"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Env(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

func TestCompileAndMatch(t *testing.T) {
	env := fixtureEnv(fixture)
	tests := []struct {
		name       string
		expression string
		want       bool
		compileErr string // substring; "" means it compiles
		runErr     string // substring; "" means it runs
	}{
		{"empty", "", true, "", ""},
		{"blank", "  \n ", true, "", ""},
		{"simple", `data.plan == "pro"`, true, "", ""},
		{"false", `data.plan == "free"`, false, "", ""},
		{"type variable", `type == "lead.created" && id == "evt_1" && source == "app"`, true, "", ""},
		{"occurred_at", `occurred_at == ""`, true, "", ""},
		{"builtins", `lower(data.email) == "ann@example.com" && len(data.tags) == 2`, true, "", ""},
		{"predicates", `any(data.items, .sku == "b2") && all(data.ids, # > 0)`, true, "", ""},
		{"typeOf", `typeOf(data.amount) == "number" && typeOf(data.user) == "object" && typeOf(data.nope) == "null"`, true, "", ""},
		{"let", `let p = data.plan; p in ["pro", "team"]`, true, "", ""},
		{"nil-safe nested", `data.nope.deeper.still == nil`, true, "", ""},
		{"nil-safe through a string", `data.plan.x == nil`, true, "", ""},
		{"nil-safe index", `data.items[9].sku == nil && data.items[-1].sku == "b2"`, true, "", ""},
		{"optional chaining", `data?.user?.name == "ann"`, true, "", ""},
		{"env", `$env.type == "lead.created"`, true, "", ""},
		{"missing field alone", `data.flag`, false, "", ""},
		{"bool field", `data.active`, true, "", ""},
		{"not bool", `data.plan`, false, "", "bool"},
		{"unknown variable", `plan == "pro"`, false, "unknown name plan", ""},
		{"unknown function", `shout(data.plan)`, false, "unknown name shout", ""},
		{"not a boolean", `1 + 2`, false, "expected bool", ""},
		{"syntax", `data.plan ==`, false, "unexpected token", ""},
		{"too long", strings.Repeat(" ", maxSourceLen) + "true", false, "longer than", ""},
		{"too many nodes", strings.Repeat("1 + ", maxNodes) + "1 > 0", false, "exceeds maximum allowed nodes", ""},
		{"type mismatch", `data.amount > "a"`, false, "", "invalid operation"},
		{"nil comparison", `data.nope > 1`, false, "", "invalid operation"},
		{"memory budget", `len(repeat("x", 100000000)) > 0`, false, "", "memory budget"},
		{"huge range", `len(map(1..100000000, #)) > 0`, false, "", "memory budget"},
		{"function error", `lower(data.amount) == "x"`, false, "", ""},
		{"modulo needs int()", `data.count % 2 == 1`, false, "", "float64 % int"},
		{"modulo with int()", `int(data.count) % 2 == 1`, true, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compile(tc.expression)
			if tc.compileErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.compileErr) {
					t.Fatalf("Compile error = %v, want …%s…", err, tc.compileErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			got, err := p.Match(env)
			if tc.runErr != "" || tc.name == "function error" {
				if err == nil || !strings.Contains(err.Error(), tc.runErr) {
					t.Fatalf("Match error = %v, want …%s…", err, tc.runErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Match: %v", err)
			}
			if got != tc.want {
				t.Errorf("Match = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestProgramSource(t *testing.T) {
	p, err := Compile(`type == "x"`)
	if err != nil {
		t.Fatal(err)
	}
	if p.Source() != `type == "x"` {
		t.Errorf("Source = %q", p.Source())
	}
	var nilProgram *Program
	if ok, err := nilProgram.Match(nil); !ok || err != nil {
		t.Errorf("nil program: %v, %v", ok, err)
	}
}

func TestProgramConcurrent(t *testing.T) {
	p, err := Compile(`int(data.n) % 2 == 0 && any(data.list, # == data.n)`)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			env := Env(Input{Data: json.RawMessage(fmt.Sprintf(`{"n": %d, "list": [%d]}`, i, i))})
			got, err := p.Match(env)
			if err != nil || got != (i%2 == 0) {
				t.Errorf("n=%d: %v, %v", i, got, err)
			}
		})
	}
	wg.Wait()
}

func TestFieldError(t *testing.T) {
	var err error = &FieldError{Field: "condition.op", Message: "is required"}
	if err.Error() != "condition.op: is required" {
		t.Errorf("got %q", err)
	}
	wrapped := fmt.Errorf("create rule: %w", err)
	var fe *FieldError
	if !errors.As(wrapped, &fe) || fe.Field != "condition.op" {
		t.Errorf("errors.As failed on %v", wrapped)
	}
	if (&FieldError{Message: "bad"}).Error() != "bad" {
		t.Error("no field: want the message alone")
	}
}

func TestCache(t *testing.T) {
	var c Cache
	p1, err := c.Program(`type == "a"`)
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := c.Program(`type == "a"`)
	if p1 != p2 {
		t.Error("same source compiled twice")
	}
	if _, err := c.Program(`nope ==`); err == nil {
		t.Error("want a compile error")
	}
	if _, err := c.Program(`nope ==`); err == nil {
		t.Error("want the cached compile error")
	}

	m1, err := c.Mapping(json.RawMessage(`{"a": "data.a"}`))
	if err != nil {
		t.Fatal(err)
	}
	m2, _ := c.Mapping(json.RawMessage(`{"a": "data.a"}`))
	if m1 != m2 {
		t.Error("same mapping compiled twice")
	}
	var fe *FieldError
	if _, err := c.Mapping(json.RawMessage(`{"a": "data."}`)); !errors.As(err, &fe) {
		t.Errorf("got %v, want a *FieldError", err)
	}

	// Bounded: old entries go, entries in use stay.
	for i := range 3 * cacheGeneration {
		if _, err := c.Program(fmt.Sprintf("data.n == %d", i)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Program(`type == "a"`); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.programs.cur) + len(c.programs.old); n > 2*cacheGeneration {
		t.Errorf("cache holds %d programs", n)
	}
	if p3, _ := c.Program(`type == "a"`); p3 != p1 {
		t.Error("a program in constant use was evicted")
	}
}

func TestCacheConcurrent(t *testing.T) {
	var c Cache
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			src := fmt.Sprintf(`data.n == %d`, i%8)
			p, err := c.Program(src)
			if err != nil {
				t.Error(err)
				return
			}
			env := Env(Input{Data: json.RawMessage(fmt.Sprintf(`{"n": %d}`, i%8))})
			if ok, err := p.Match(env); !ok || err != nil {
				t.Errorf("%s: %v, %v", src, ok, err)
			}
			m, err := c.Mapping(json.RawMessage(`{"n": "data.n"}`))
			if err != nil {
				t.Error(err)
				return
			}
			out, err := m.Apply(env)
			if want := fmt.Sprintf(`{"n":%d}`, i%8); err != nil || string(out) != want {
				t.Errorf("Apply = %s, %v; want %s", out, err, want)
			}
		})
	}
	wg.Wait()
}
