package rules

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/expr-lang/expr"
)

// maxAnyReasons bounds how many failed alternatives of an "any" group Explain lists.
const maxAnyReasons = 3

// Explain returns a short human reason why a condition tree does not match an
// environment built by Env, naming the first failing row: `data.plan is "free", not eq
// "pro"` or `data.email does not exist`. For an "any" group whose rows all fail it lists
// their reasons. It returns "" when the condition matches (an empty condition always
// does), and a description of the problem when the condition is invalid.
func Explain(condition json.RawMessage, env map[string]any) string {
	root, err := parseCondition(condition)
	if err != nil {
		return "invalid condition: " + err.Error()
	}
	if root == nil {
		return ""
	}
	_, why := explain(root, env)
	return why
}

func explain(n *condNode, env map[string]any) (bool, string) {
	if n.group == "" {
		return explainRow(n, env)
	}
	var reasons []string
	for _, c := range n.children {
		ok, why := explain(c, env)
		switch {
		case n.group == "all" && !ok:
			return false, why
		case n.group == "any" && ok:
			return true, ""
		}
		reasons = append(reasons, why)
	}
	if n.group == "all" {
		return true, ""
	}
	if len(reasons) == 1 {
		return false, reasons[0]
	}
	more := ""
	if len(reasons) > maxAnyReasons {
		more = fmt.Sprintf("; and %d more", len(reasons)-maxAnyReasons)
		reasons = reasons[:maxAnyReasons]
	}
	return false, "none of: " + strings.Join(reasons, "; ") + more
}

// explainRow evaluates one row with the very expression CompileCondition emits for it, so
// the explanation cannot disagree with the rule.
func explainRow(n *condNode, env map[string]any) (bool, string) {
	src, _ := n.renderRow()
	prog, err := compile(src, expr.AsBool())
	if err != nil {
		return false, fmt.Sprintf("%s: %v", n.field, firstLine(err.Error()))
	}
	out, err := expr.Run(prog, env)
	if err != nil {
		return false, fmt.Sprintf("%s: %v", n.field, firstLine(err.Error()))
	}
	if ok, _ := out.(bool); ok {
		return true, ""
	}
	v := lookup(env, n.field)
	switch {
	case n.op == "not_exists":
		return false, fmt.Sprintf("%s exists (is %s)", n.field, show(v))
	case v == nil:
		return false, n.field + " does not exist"
	case n.op == "neq" || n.op == "not_in":
		return false, fmt.Sprintf("%s is %s, failing %s %s", n.field, show(v), n.op, show(n.value))
	}
	actual := show(v)
	if want := wantType(n); want != "" && !strings.Contains(want, typeOf(v)) {
		actual += " (" + article(typeOf(v)) + ")"
	}
	return false, fmt.Sprintf("%s is %s, not %s %s", n.field, actual, n.op, show(n.value))
}

// wantType names the field types a row's operator can be true for ("" for any type).
func wantType(n *condNode) string {
	switch n.op {
	case "gt", "gte", "lt", "lte":
		return typeOf(n.value)
	case "contains":
		if _, ok := n.value.(string); ok {
			return "string array"
		}
		return "array"
	case "starts_with", "ends_with", "matches":
		return "string"
	}
	return ""
}

func article(typ string) string {
	switch typ {
	case "array", "object":
		return "an " + typ
	}
	return "a " + typ
}

// lookup resolves a validated field in env the way the compiled expression does.
func lookup(env map[string]any, field string) any {
	segs := strings.Split(field, ".")
	v := env[segs[0]]
	for _, s := range segs[1:] {
		v = fetch(v, s)
	}
	return v
}

// maxShown bounds how much of a value Explain quotes.
const maxShown = 60

func show(v any) string {
	b, err := json.Marshal(v)
	s := string(b)
	if err != nil {
		s = fmt.Sprint(v)
	}
	if len(s) > maxShown {
		s = strings.ToValidUTF8(s[:maxShown], "") + "…"
	}
	return s
}
