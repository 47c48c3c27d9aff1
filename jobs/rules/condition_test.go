package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// fixture is the data of the event most condition tests run against.
const fixture = `{
	"plan": "pro", "amount": 120.5, "count": 3, "email": "Ann@Example.com",
	"tags": ["vip", "beta"], "ids": [1, 2, 3], "active": true, "none": null,
	"user": {"name": "ann", "first-name": "Ann", "address": {"city": "Oslo"}},
	"items": [{"sku": "a1"}, {"sku": "b2"}], "str_num": "100", "in": "kw",
	"big": 9007199254740993, "tricky": "a\"b\\c\n😀 \u0000"
}`

func row(field, op, value string) string {
	if value == "" {
		return fmt.Sprintf(`{"field": %q, "op": %q}`, field, op)
	}
	return fmt.Sprintf(`{"field": %q, "op": %q, "value": %s}`, field, op, value)
}

func all(nodes ...string) string { return `{"all": [` + strings.Join(nodes, ", ") + `]}` }
func anyOf(nodes ...string) string {
	return `{"any": [` + strings.Join(nodes, ", ") + `]}`
}

func fixtureEnv(data string) map[string]any {
	return Env(Input{ID: "evt_1", Type: "lead.created", Source: "app", Data: json.RawMessage(data)})
}

// evalCondition compiles a condition tree, runs it through Compile and Match like the
// router does, and fails the test on any error.
func evalCondition(t *testing.T, cond, data string) bool {
	t.Helper()
	src, err := CompileCondition(json.RawMessage(cond))
	if err != nil {
		t.Fatalf("CompileCondition(%s): %v", cond, err)
	}
	p, err := Compile(src)
	if err != nil {
		t.Fatalf("Compile(%s): %v", src, err)
	}
	got, err := p.Match(fixtureEnv(data))
	if err != nil {
		t.Fatalf("Match(%s): %v", src, err)
	}
	return got
}

func TestConditionOperators(t *testing.T) {
	tests := []struct {
		name string
		cond string
		want bool
	}{
		{"eq string", row("data.plan", "eq", `"pro"`), true},
		{"eq string other", row("data.plan", "eq", `"free"`), false},
		{"eq missing", row("data.nope", "eq", `"pro"`), false},
		{"eq float", row("data.amount", "eq", `120.5`), true},
		{"eq integral float", row("data.count", "eq", `3`), true},
		{"eq bool", row("data.active", "eq", `true`), true},
		{"eq bool other", row("data.active", "eq", `false`), false},
		{"eq null on null", row("data.none", "eq", `null`), true},
		{"eq null on missing", row("data.nope", "eq", `null`), true},
		{"eq null on value", row("data.plan", "eq", `null`), false},
		{"eq number vs numeric string", row("data.str_num", "eq", `100`), false},
		{"eq string vs number", row("data.count", "eq", `"3"`), false},
		{"eq object field", row("data.user", "eq", `"ann"`), false},
		{"eq big integer", row("data.big", "eq", `9007199254740993`), true},
		{"eq big integer off by one", row("data.big", "eq", `9007199254740992`), false},

		{"neq other", row("data.plan", "neq", `"free"`), true},
		{"neq same", row("data.plan", "neq", `"pro"`), false},
		{"neq missing", row("data.nope", "neq", `"pro"`), true},
		{"neq type mismatch", row("data.count", "neq", `"3"`), true},

		{"gt number", row("data.amount", "gt", `100`), true},
		{"gt number false", row("data.amount", "gt", `200`), false},
		{"gt equal", row("data.amount", "gt", `120.5`), false},
		{"gte equal", row("data.amount", "gte", `120.5`), true},
		{"gte false", row("data.amount", "gte", `121`), false},
		{"lt number", row("data.amount", "lt", `121`), true},
		{"lt false", row("data.amount", "lt", `120.5`), false},
		{"lte equal", row("data.count", "lte", `3`), true},
		{"lte false", row("data.count", "lte", `2.5`), false},
		{"gt negative literal", row("data.count", "gt", `-5`), true},
		{"gt exponent literal", row("data.amount", "gt", `1e-7`), true},
		{"gt numeric string vs number", row("data.str_num", "gt", `5`), false},
		{"gt string vs number", row("data.plan", "gt", `5`), false},
		{"gt missing", row("data.nope", "gt", `5`), false},
		{"gt null", row("data.none", "gt", `5`), false},
		{"gt array", row("data.ids", "gt", `0`), false},
		{"gt string", row("data.plan", "gt", `"a"`), true},
		{"lt string", row("data.plan", "lt", `"a"`), false},
		{"gt number vs string literal", row("data.amount", "gt", `"a"`), false},
		{"lte string", row("type", "lte", `"lead.created"`), true},

		{"in strings", row("data.plan", "in", `["free", "pro"]`), true},
		{"in strings false", row("data.plan", "in", `["free"]`), false},
		{"in numbers", row("data.count", "in", `[1, 3]`), true},
		{"in mixed", row("data.count", "in", `["3", true, null]`), false},
		{"in missing", row("data.nope", "in", `["pro"]`), false},
		{"in missing with null", row("data.nope", "in", `["pro", null]`), true},
		{"in array field", row("data.tags", "in", `["vip"]`), false},
		{"in object field", row("data.user", "in", `["vip"]`), false},
		{"in strings on number", row("data.amount", "in", `["120.5"]`), false},
		{"in numbers on array", row("data.ids", "in", `[1, 2]`), false},
		{"not_in strings on number", row("data.amount", "not_in", `["120.5"]`), true},
		{"not_in strings on array", row("data.tags", "not_in", `["vip"]`), true},
		{"not_in", row("data.plan", "not_in", `["free"]`), true},
		{"not_in false", row("data.plan", "not_in", `["pro", "free"]`), false},
		{"not_in missing", row("data.nope", "not_in", `["pro"]`), true},

		{"contains substring", row("data.email", "contains", `"Example"`), true},
		{"contains substring false", row("data.email", "contains", `"example"`), false},
		{"contains in list", row("data.tags", "contains", `"vip"`), true},
		{"contains in list false", row("data.tags", "contains", `"vi"`), false},
		{"contains number in list", row("data.ids", "contains", `2`), true},
		{"contains number in list false", row("data.ids", "contains", `7`), false},
		{"contains bool on string", row("data.plan", "contains", `true`), false},
		{"contains on number", row("data.amount", "contains", `"1"`), false},
		{"contains on object", row("data.user", "contains", `"name"`), false},
		{"contains missing", row("data.nope", "contains", `"a"`), false},

		{"starts_with", row("data.email", "starts_with", `"Ann@"`), true},
		{"starts_with is case-sensitive", row("data.email", "starts_with", `"ann@"`), false},
		{"starts_with on number", row("data.amount", "starts_with", `"1"`), false},
		{"starts_with on list", row("data.tags", "starts_with", `"vip"`), false},
		{"starts_with missing", row("data.nope", "starts_with", `""`), false},
		{"ends_with", row("data.email", "ends_with", `".com"`), true},
		{"ends_with false", row("data.email", "ends_with", `".org"`), false},
		{"ends_with on bool", row("data.active", "ends_with", `"e"`), false},

		{"exists", row("data.email", "exists", ""), true},
		{"exists with null value", row("data.email", "exists", `null`), true},
		{"exists missing", row("data.nope", "exists", ""), false},
		{"exists null", row("data.none", "exists", ""), false},
		{"exists false bool", row("data.active", "exists", ""), true},
		{"exists nested", row("data.user.address.city", "exists", ""), true},
		{"exists under a string", row("data.plan.x", "exists", ""), false},
		{"exists under a number", row("data.amount.x.y", "exists", ""), false},
		{"exists under missing", row("data.nope.x.y", "exists", ""), false},
		{"exists list element", row("data.items.1.sku", "exists", ""), true},
		{"exists list element out of range", row("data.items.5.sku", "exists", ""), false},
		{"not_exists missing", row("data.nope", "not_exists", ""), true},
		{"not_exists null", row("data.none", "not_exists", ""), true},
		{"not_exists present", row("data.email", "not_exists", ""), false},

		{"matches", row("data.email", "matches", `"(?i)^ann@example\\.com$"`), true},
		{"matches false", row("data.email", "matches", `"^bob"`), false},
		{"matches on number", row("data.amount", "matches", `"1"`), false},
		{"matches missing", row("data.nope", "matches", `".*"`), false},

		{"type", row("type", "eq", `"lead.created"`), true},
		{"type prefix", row("type", "starts_with", `"lead."`), true},
		{"id", row("id", "eq", `"evt_1"`), true},
		{"source", row("source", "in", `["app", "web"]`), true},
		{"source false", row("source", "neq", `"app"`), false},

		{"bracketed segment", row("data.user.first-name", "eq", `"Ann"`), true},
		{"deep path", row("data.user.address.city", "eq", `"Oslo"`), true},
		{"list index", row("data.items.0.sku", "eq", `"a1"`), true},
		{"keyword segment", row("data.in", "eq", `"kw"`), true},
		{"escapes round trip", row("data.tricky", "eq", `"a\"b\\c\n😀 \u0000"`), true},

		{"all true", all(row("data.plan", "eq", `"pro"`), row("data.amount", "gt", `100`)), true},
		{"all one false", all(row("data.plan", "eq", `"pro"`), row("data.amount", "gt", `200`)), false},
		{"any one true", anyOf(row("data.plan", "eq", `"free"`), row("data.amount", "gt", `100`)), true},
		{"any none true", anyOf(row("data.plan", "eq", `"free"`), row("data.amount", "gt", `200`)), false},
		{"any with erroring types", anyOf(row("data.plan", "gt", `5`), row("data.tags", "contains", `"vip"`)), true},
		{"nested any in all", all(row("type", "eq", `"lead.created"`),
			anyOf(row("data.plan", "eq", `"free"`), all(row("data.count", "eq", `3`), row("data.active", "eq", `true`)))), true},
		{"nested any in all false", all(row("type", "eq", `"lead.created"`),
			anyOf(row("data.plan", "eq", `"free"`), all(row("data.count", "eq", `3`), row("data.active", "eq", `false`)))), false},
		{"single-row group", all(anyOf(row("data.plan", "eq", `"pro"`))), true},
		{"or inside and keeps precedence", all(anyOf(row("data.plan", "eq", `"free"`), row("data.plan", "eq", `"pro"`)),
			row("data.count", "eq", `4`)), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := evalCondition(t, tc.cond, fixture); got != tc.want {
				src, _ := CompileCondition(json.RawMessage(tc.cond))
				t.Errorf("got %v, want %v; expression: %s", got, tc.want, src)
			}
		})
	}
}

// Values are literals: nothing in a value can change the expression around it.
func TestConditionInjection(t *testing.T) {
	values := []string{
		`pro" || true || "`,
		`pro' || true || '`,
		"pro` || true || `",
		`\" || true || \"`,
		`") || true || ("`,
		`pro\`,
		"line\nbreak",
		`{{ true }}`,
		`#{true}`,
	}
	for _, v := range values {
		t.Run(v, func(t *testing.T) {
			value, _ := json.Marshal(v)
			for _, op := range []string{"eq", "contains", "starts_with", "ends_with"} {
				if evalCondition(t, row("data.plan", op, string(value)), fixture) {
					t.Errorf("%s %s matched", op, value)
				}
			}
			if got := evalCondition(t, row("data.plan", "gt", string(value)), fixture); got != ("pro" > v) {
				t.Errorf("gt %s = %v, want plain string comparison", value, got)
			}
			if evalCondition(t, row("data.plan", "in", "["+string(value)+"]"), fixture) {
				t.Errorf("in [%s] matched", value)
			}
			// The same string in the data must compare equal: the literal is exact.
			data, _ := json.Marshal(map[string]string{"plan": v})
			if !evalCondition(t, row("data.plan", "eq", string(value)), string(data)) {
				t.Errorf("eq %s did not match itself", value)
			}
		})
	}
}

// Rows never fail at run time, whatever the shape of the data.
func TestConditionOddData(t *testing.T) {
	cond := anyOf(
		row("data.plan", "gt", `5`), row("data.plan.x", "starts_with", `"a"`),
		row("data.0", "contains", `"a"`), row("data.a.b.c", "matches", `"x"`),
		row("data.plan", "in", `[1]`), row("data.plan", "eq", `"pro"`),
	)
	for _, data := range []string{``, `null`, `{}`, `[1, 2]`, `"text"`, `42`, `true`, `{"plan": [1]}`, `{"plan": {"x": 1}}`, `not json`} {
		t.Run(data, func(t *testing.T) {
			if evalCondition(t, cond, data) {
				t.Errorf("matched")
			}
			if !evalCondition(t, row("data.plan", "not_exists", ""), `{"other": 1}`) {
				t.Errorf("not_exists did not match")
			}
		})
	}
}

func TestCompileConditionOutput(t *testing.T) {
	tests := []struct {
		name string
		cond string
		want string
	}{
		{"empty", ``, ``},
		{"null", `null`, ``},
		{"eq", row("data.plan", "eq", `"pro"`), `data.plan == "pro"`},
		{"group", all(row("data.plan", "eq", `"pro"`), row("data.amount", "gt", `100`)),
			`data.plan == "pro" && (typeOf(data.amount) == "number" && data.amount > 100)`},
		{"any in all", all(row("type", "eq", `"a"`), anyOf(row("id", "eq", `"1"`), row("id", "eq", `"2"`))),
			`type == "a" && (id == "1" || id == "2")`},
		{"brackets", row("data.user.first-name", "exists", ""), `data.user["first-name"] != nil`},
		{"index", row("data.items.0", "not_exists", ""), `data.items["0"] == nil`},
		{"keyword", row("data.in.not", "eq", `1`), `data["in"]["not"] == 1`},
		{"in", row("data.n", "not_in", `[1, 2.5, "x", true, null]`), `data.n not in [1, 2.5, "x", true, nil]`},
		{"in strings", row("data.n", "in", `["a", "b"]`), `typeOf(data.n) == "string" && data.n in ["a", "b"]`},
		{"not_in strings", row("data.n", "not_in", `["a"]`), `typeOf(data.n) != "string" || data.n not in ["a"]`},
		{"integral float", row("data.n", "eq", `3.0`), `data.n == 3`},
		{"large float", row("data.n", "gt", `1e300`), `typeOf(data.n) == "number" && data.n > 1e+300`},
		{"contains", row("data.t", "contains", `"v"`),
			`(typeOf(data.t) == "string" && data.t contains "v") || (typeOf(data.t) == "array" && "v" in data.t)`},
		{"contains number", row("data.t", "contains", `1`), `typeOf(data.t) == "array" && 1 in data.t`},
		{"quoted", row("data.p", "eq", `"a\"b"`), `data.p == "a\"b"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CompileCondition(json.RawMessage(tc.cond))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func nest(depth int) string {
	s := row("data.a", "exists", "")
	for range depth {
		s = all(s)
	}
	return s
}

func rows(n int) string {
	r := make([]string, n)
	for i := range r {
		r[i] = row("data.a", "in", `["x", "y", "z"]`)
	}
	return anyOf(r...)
}

func TestValidateCondition(t *testing.T) {
	long := make([]string, maxListLen+1)
	for i := range long {
		long[i] = `1`
	}
	tests := []struct {
		name      string
		cond      string
		wantField string // "" means valid
		wantMsg   string
	}{
		{"empty", ``, "", ""},
		{"null", `null`, "", ""},
		{"row", row("data.plan", "eq", `"pro"`), "", ""},
		{"max depth", nest(maxDepth), "", ""},
		{"max rows", rows(maxRows), "", ""},
		{"too deep", nest(maxDepth + 1), "condition" + strings.Repeat(".all[0]", maxDepth), "nested more than 8"},
		{"too many rows", rows(maxRows + 1), "condition.any[100]", "at most 100 rows"},
		{"not an object", `[]`, "condition", "must be an object"},
		{"string", `"data.plan == 1"`, "condition", "must be an object"},
		{"empty object", `{}`, "condition", "must have all, any or field"},
		{"both groups", `{"all": [], "any": []}`, "condition", "only one of all and any"},
		{"group and row", `{"all": [` + row("id", "exists", "") + `], "field": "id"}`, "condition", "cannot also have"},
		{"empty group", `{"all": []}`, "condition.all", "must not be empty"},
		{"group not a list", `{"any": {}}`, "condition.any", "must be a list"},
		{"group null", `{"any": null}`, "condition.any", "must be a list"},
		{"unknown key", `{"field": "id", "op": "exists", "vaule": 1}`, "condition.vaule", "unknown key"},
		{"nested error path", all(row("id", "exists", ""), anyOf(row("id", "exists", ""), row("id", "eq", `[1]`))),
			"condition.all[1].any[1].value", "must be a string, number, boolean or null"},
		{"bad op path", all(row("id", "exists", ""), row("id", "like", `"x"`)), "condition.all[1].op", `unknown operator "like"`},
		{"missing op", `{"field": "id"}`, "condition.op", "is required"},
		{"missing field", `{"op": "exists"}`, "condition.field", "is required"},
		{"field not string", `{"field": 1, "op": "exists"}`, "condition.field", "must be a string"},
		{"field bare data", row("data", "exists", ""), "condition.field", "must be type, id, source or a data path"},
		{"field unknown root", row("occurred_at", "exists", ""), "condition.field", "must be type"},
		{"field injection", row("data.plan || true", "exists", ""), "condition.field", "may only hold"},
		{"field bracket", row(`data["plan"]`, "exists", ""), "condition.field", "must be type"},
		{"field bracket segment", row(`data.user["plan"]`, "exists", ""), "condition.field", "may only hold"},
		{"field empty segment", row("data..plan", "exists", ""), "condition.field", "empty segment"},
		{"field trailing dot", row("data.plan.", "exists", ""), "condition.field", "empty segment"},
		{"field space", row("data.first name", "exists", ""), "condition.field", "may only hold"},
		{"eq missing value", row("data.plan", "eq", ""), "condition.value", "is required"},
		{"eq object", row("data.plan", "eq", `{}`), "condition.value", "must be a string"},
		{"gt bool", row("data.n", "gt", `true`), "condition.value", "must be a number or a string"},
		{"gt null", row("data.n", "lte", `null`), "condition.value", "must be a number or a string"},
		{"in not list", row("data.n", "in", `"a"`), "condition.value", "must be a list"},
		{"in empty", row("data.n", "not_in", `[]`), "condition.value", "must not be empty"},
		{"in nested", row("data.n", "in", `["a", ["b"]]`), "condition.value[1]", "must be a string"},
		{"in too long", row("data.n", "in", "["+strings.Join(long, ",")+"]"), "condition.value", "at most 500"},
		{"exists with value", row("data.n", "exists", `"x"`), "condition.value", "takes no value"},
		{"not_exists with value", row("data.n", "not_exists", `false`), "condition.value", "takes no value"},
		{"contains list", row("data.n", "contains", `["a"]`), "condition.value", "must be a string"},
		{"starts_with number", row("data.n", "starts_with", `1`), "condition.value", "must be a string"},
		{"ends_with missing", row("data.n", "ends_with", ""), "condition.value", "must be a string"},
		{"matches bad regexp", row("data.n", "matches", `"a("`), "condition.value", "not a valid regular expression: missing closing )"},
		{"matches backreference", row("data.n", "matches", `"(a)\\1"`), "condition.value", "not a valid regular expression"},
		{"matches number", row("data.n", "matches", `1`), "condition.value", "must be a string"},
		{"too large", anyOf(row("data.a", "eq", `"`+strings.Repeat("x", maxSourceLen)+`"`)), "condition", "is too large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateCondition(json.RawMessage(tc.cond))
			if tc.wantField == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v (%T), want a *FieldError", err, err)
			}
			if fe.Field != tc.wantField || !strings.Contains(fe.Message, tc.wantMsg) {
				t.Errorf("got %q: %q, want %q: …%s…", fe.Field, fe.Message, tc.wantField, tc.wantMsg)
			}
		})
	}
}

func TestExplain(t *testing.T) {
	tests := []struct {
		name string
		cond string
		want string
	}{
		{"matches", row("data.plan", "eq", `"pro"`), ""},
		{"empty", ``, ""},
		{"eq", row("data.plan", "eq", `"free"`), `data.plan is "pro", not eq "free"`},
		{"missing", row("data.email2", "eq", `"x"`), `data.email2 does not exist`},
		{"exists", row("data.nope", "exists", ""), `data.nope does not exist`},
		{"null", row("data.none", "exists", ""), `data.none does not exist`},
		{"not_exists", row("data.plan", "not_exists", ""), `data.plan exists (is "pro")`},
		{"neq", row("data.plan", "neq", `"pro"`), `data.plan is "pro", failing neq "pro"`},
		{"not_in", row("data.count", "not_in", `[3]`), `data.count is 3, failing not_in [3]`},
		{"gt", row("data.amount", "gt", `200`), `data.amount is 120.5, not gt 200`},
		{"gt type mismatch", row("data.str_num", "gt", `5`), `data.str_num is "100" (a string), not gt 5`},
		{"contains type mismatch", row("data.user", "contains", `"a"`),
			`data.user is {"address":{"city":"Oslo"},"first-name":"Ann","name":"ann"} (an object), not contains "a"`},
		{"contains in list", row("data.tags", "contains", `"x"`), `data.tags is ["vip","beta"], not contains "x"`},
		{"starts_with", row("type", "starts_with", `"user."`), `type is "lead.created", not starts_with "user."`},
		{"matches", row("data.email", "matches", `"^b"`), `data.email is "Ann@Example.com", not matches "^b"`},
		{"long value is cut", row("data.tricky", "eq", `"x"`), `data.tricky is "a\"b\\c\n😀 \u0000", not eq "x"`},
		{"first failing row of all", all(row("data.plan", "eq", `"pro"`), row("data.count", "gt", `5`), row("data.x", "exists", "")),
			`data.count is 3, not gt 5`},
		{"any lists its rows", anyOf(row("data.plan", "eq", `"free"`), row("data.x", "exists", "")),
			`none of: data.plan is "pro", not eq "free"; data.x does not exist`},
		{"any with more rows", anyOf(row("data.a", "exists", ""), row("data.b", "exists", ""), row("data.c", "exists", ""),
			row("data.d", "exists", ""), row("data.e", "exists", "")),
			`none of: data.a does not exist; data.b does not exist; data.c does not exist; and 2 more`},
		{"any matching", anyOf(row("data.plan", "eq", `"free"`), row("data.plan", "eq", `"pro"`)), ""},
		{"nested", all(row("type", "eq", `"lead.created"`), anyOf(row("data.plan", "eq", `"free"`))),
			`data.plan is "pro", not eq "free"`},
		{"invalid", row("data.plan", "like", `"x"`), `invalid condition: condition.op: unknown operator "like"`},
	}
	env := fixtureEnv(fixture)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Explain(json.RawMessage(tc.cond), env)
			if !strings.HasPrefix(got, tc.want) || (tc.want == "") != (got == "") {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			// Explain agrees with the compiled rule.
			if !strings.HasPrefix(tc.want, "invalid") {
				if matched := evalCondition(t, tc.cond, fixture); matched != (got == "") {
					t.Errorf("rule matched = %v but Explain says %q", matched, got)
				}
			}
		})
	}
}

func TestExplainCutsLongValues(t *testing.T) {
	env := fixtureEnv(`{"s": "` + strings.Repeat("é", 100) + `"}`)
	got := Explain(json.RawMessage(row("data.s", "eq", `"x"`)), env)
	if len(got) > 2*maxShown+40 || !strings.Contains(got, "…") || !strings.HasSuffix(got, `not eq "x"`) {
		t.Errorf("got %q", got)
	}
}

func TestOperators(t *testing.T) {
	ops := Operators()
	if len(ops) != 14 {
		t.Fatalf("got %d operators", len(ops))
	}
	ops[0] = "changed"
	if Operators()[0] != "eq" {
		t.Error("Operators returned the package's own slice")
	}
}
