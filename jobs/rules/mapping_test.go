package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestMappingApply(t *testing.T) {
	tests := []struct {
		name    string
		mapping string
		want    string
	}{
		{"empty", ``, `{}`},
		{"null", `null`, `{}`},
		{"empty object", `{}`, `{}`},
		{"field", `{"email": "data.email"}`, `{"email":"Ann@Example.com"}`},
		{"function", `{"email": "lower(data.email)"}`, `{"email":"ann@example.com"}`},
		{"constant", `{"kind": "\"lead\""}`, `{"kind":"lead"}`},
		{"arithmetic", `{"cents": "data.amount * 100"}`, `{"cents":12050}`},
		{"integer stays integer", `{"n": "data.count"}`, `{"n":3}`},
		{"big integer exact", `{"n": "data.big"}`, `{"n":9007199254740993}`},
		{"bool", `{"b": "data.active"}`, `{"b":true}`},
		{"list", `{"l": "data.tags"}`, `{"l":["vip","beta"]}`},
		{"object", `{"o": "data.user.address"}`, `{"o":{"city":"Oslo"}}`},
		{"built list", `{"l": "[data.plan, 1, nil]"}`, `{"l":["pro",1,null]}`},
		{"built object", `{"o": "{plan: data.plan}"}`, `{"o":{"plan":"pro"}}`},
		{"missing", `{"x": "data.nope"}`, `{"x":null}`},
		{"missing nested", `{"x": "data.nope.deeper"}`, `{"x":null}`},
		{"through a string", `{"x": "data.plan.x"}`, `{"x":null}`},
		{"default", `{"x": "data.nope ?? \"n/a\""}`, `{"x":"n/a"}`},
		{"envelope fields", `{"id": "id", "type": "type", "source": "source"}`,
			`{"id":"evt_1","source":"app","type":"lead.created"}`},
		{"nesting", `{"merge_fields.FNAME": "data.user.name", "merge_fields.LNAME": "\"x\"", "email_address": "data.email"}`,
			`{"email_address":"Ann@Example.com","merge_fields":{"FNAME":"ann","LNAME":"x"}}`},
		{"deep nesting", `{"a.b.c.d": "1", "a.b.e": "2"}`, `{"a":{"b":{"c":{"d":1},"e":2}}}`},
		{"numeric segments are keys", `{"list.0": "1", "list.1.x": "2"}`, `{"list":{"0":1,"1":{"x":2}}}`},
		{"special characters in keys", `{"a|b.c#d.@e.f*g?.h\\i.:j.k!=<>%~": "1", "$email": "data.email"}`,
			`{"$email":"Ann@Example.com","a|b":{"c#d":{"@e":{"f*g?":{"h\\i":{":j":{"k!=<>%~":1}}}}}}}`},
		{"spaces and unicode in keys", `{"First Name": "data.user.name", "prénom.nom": "\"x\""}`,
			`{"First Name":"ann","prénom":{"nom":"x"}}`},
		{"html is not escaped", `{"text": "\"<https://x.io?a=1&b=2|link>\""}`, `{"text":"<https://x.io?a=1&b=2|link>"}`},

		{"template", `{"text": "New lead {{ data.email }} on {{ upper(data.plan) }}"}`,
			`{"text":"New lead Ann@Example.com on PRO"}`},
		{"template only hole", `{"text": "{{ data.count }}"}`, `{"text":"3"}`},
		{"template numbers", `{"text": "{{ data.amount }}/{{ data.big }}/{{ data.count * 1000000 }}/{{ 0.1 + 0.2 }}"}`,
			`{"text":"120.5/9007199254740993/3000000/0.30000000000000004"}`},
		{"template missing is empty", `{"text": "[{{ data.nope }}]"}`, `{"text":"[]"}`},
		{"template bool and list", `{"text": "{{ data.active }} {{ data.tags }} {{ data.user.address }}"}`,
			`{"text":"true [\"vip\",\"beta\"] {\"city\":\"Oslo\"}"}`},
		{"template braces in strings", `{"text": "{{ \"}}\" + data.plan }} {{ '{{' }}"}`, `{"text":"}}pro {{"}`},
		{"template stray closing braces", `{"text": "a }} b {{ 1 }}"}`, `{"text":"a }} b 1"}`},
		{"template no spaces", `{"text": "{{data.plan}}{{data.count}}"}`, `{"text":"pro3"}`},
		{"template escapes survive", `{"text": "{{ data.tricky }}"}`, `{"text":"a\"b\\c\n😀 \u0000"}`},
	}
	env := fixtureEnv(fixture)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := CompileMapping(json.RawMessage(tc.mapping))
			if err != nil {
				t.Fatalf("CompileMapping: %v", err)
			}
			got, err := m.Apply(env)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if !json.Valid(got) {
				t.Fatalf("invalid JSON: %s", got)
			}
			if !jsonEqual(t, got, []byte(tc.want)) {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}

// Output is byte-for-byte deterministic: targets are applied in sorted order.
func TestMappingDeterministic(t *testing.T) {
	m, err := CompileMapping(json.RawMessage(`{"z": "1", "a.y": "2", "m": "3", "a.b": "4", "a-b": "5"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"a-b":5,"a":{"b":4,"y":2},"m":3,"z":1}`
	for range 20 {
		got, err := m.Apply(fixtureEnv(fixture))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	if got := m.Targets(); !reflect.DeepEqual(got, []string{"a-b", "a.b", "a.y", "m", "z"}) {
		t.Errorf("Targets = %q", got)
	}
}

func TestMappingErrors(t *testing.T) {
	many := make([]string, maxTargets+1)
	for i := range many {
		many[i] = fmt.Sprintf(`"t%d": "1"`, i)
	}
	tests := []struct {
		name      string
		mapping   string
		wantField string
		wantMsg   string
	}{
		{"not an object", `[]`, "mapping", "must be an object"},
		{"string", `"data.email"`, "mapping", "must be an object"},
		{"too many targets", `{` + strings.Join(many, ",") + `}`, "mapping", "at most 200 targets"},
		{"empty target", `{"": "1"}`, "mapping.", "must not be empty"},
		{"blank target", `{"  ": "1"}`, "mapping.  ", "must not be empty"},
		{"empty segment", `{"a..b": "1"}`, "mapping.a..b", "empty segment"},
		{"leading dot", `{".a": "1"}`, "mapping..a", "empty segment"},
		{"control character", `{"a\nb": "1"}`, "mapping.a\nb", "control characters"},
		{"long target", `{"` + strings.Repeat("a", maxTargetLen+1) + `": "1"}`, "mapping." + strings.Repeat("a", maxTargetLen+1), "at most 256"},
		{"parent conflict", `{"a": "1", "a.b": "2"}`, "mapping.a.b", `conflicts with target "a"`},
		{"grandparent conflict", `{"a.b.c": "1", "a": "2"}`, "mapping.a.b.c", `conflicts with target "a"`},
		{"not a string", `{"a": 1}`, "mapping.a", "must be a string"},
		{"null source", `{"a": null}`, "mapping.a", "must be a string"},
		{"empty expression", `{"a": " "}`, "mapping.a", "expression is empty"},
		{"bare word", `{"kind": "lead"}`, "mapping.kind", "unknown name lead"},
		{"syntax", `{"a": "data.email +"}`, "mapping.a", "invalid expression"},
		{"unknown function", `{"a": "shout(data.email)"}`, "mapping.a", "unknown name shout"},
		{"unclosed hole", `{"a": "x {{ data.email"}`, "mapping.a", "{{ #1 is not closed"},
		{"unclosed second hole", `{"a": "{{ 1 }} {{ \"}}"}`, "mapping.a", "{{ #2 is not closed"},
		{"empty hole", `{"a": "x {{ }}"}`, "mapping.a", "{{ }} #1 is empty"},
		{"bad hole", `{"a": "x {{ data. }}"}`, "mapping.a", "template: {{ data. }}"},
		{"too long", `{"a": "\"` + strings.Repeat("x", maxSourceLen) + `\""}`, "mapping.a", "longer than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := CompileMapping(json.RawMessage(tc.mapping))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, %v; want a *FieldError", m, err)
			}
			if fe.Field != tc.wantField || !strings.Contains(fe.Message, tc.wantMsg) {
				t.Errorf("got %q: %q, want %q: …%s…", fe.Field, fe.Message, tc.wantField, tc.wantMsg)
			}
		})
	}
}

func TestMappingRuntimeErrors(t *testing.T) {
	tests := []struct {
		name    string
		mapping string
		want    string
	}{
		{"function of a number", `{"ok": "data.plan", "email": "lower(data.amount)"}`, "mapping email: "},
		{"function of nil", `{"email": "lower(data.nope)"}`, "mapping email: "},
		{"in a template", `{"text": "hi {{ upper(data.count) }}"}`, "mapping text: "},
		{"type mismatch", `{"n": "data.plan * 2"}`, "mapping n: "},
		{"not encodable", `{"n": "data.amount / 0"}`, "mapping n: encode result"},
		{"memory budget", `{"n": "repeat(\"x\", 100000000)"}`, "memory budget"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := CompileMapping(json.RawMessage(tc.mapping))
			if err != nil {
				t.Fatalf("CompileMapping: %v", err)
			}
			out, err := m.Apply(fixtureEnv(fixture))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Apply = %s, %v; want an error containing %q", out, err, tc.want)
			}
		})
	}
}

func TestNilMapping(t *testing.T) {
	var m *Mapping
	out, err := m.Apply(nil)
	if err != nil || string(out) != `{}` {
		t.Errorf("got %s, %v", out, err)
	}
	if m.Targets() != nil {
		t.Error("want no targets")
	}
}

func TestClosingBraces(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{`a }}`, 2},
		{`"}}" }}`, 5},
		{`'}}' }}`, 5},
		{"`}}` }}", 5},
		{`"\"}}" }}`, 7},
		{"`\\` }}", 4},
		{`"}}`, -1},
		{`}`, -1},
		{``, -1},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := closingBraces(tc.in); got != tc.want {
				t.Errorf("closingBraces(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}
