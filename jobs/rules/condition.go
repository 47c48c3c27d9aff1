package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/expr-lang/expr"
)

// Limits of a condition tree.
const (
	maxDepth      = 8   // nested groups
	maxRows       = 100 // {field, op, value} rows in the whole tree
	maxListLen    = 500 // elements of an in / not_in list
	maxFieldParts = 32  // segments of a data path
)

var operators = []string{
	"eq", "neq", "gt", "gte", "lt", "lte", "in", "not_in",
	"contains", "starts_with", "ends_with", "exists", "not_exists", "matches",
}

// Operators returns the condition row operators, in the order a builder should offer them.
func Operators() []string { return slices.Clone(operators) }

// condNode is one parsed node of a condition tree: a group (all/any) or a row.
type condNode struct {
	group    string // "all" or "any"; empty for a row
	children []*condNode

	field string
	op    string
	value any // decoded like event data (see decodeJSON)
}

// ValidateCondition checks a condition tree as the rule builder edits it:
//
//	{"all": [{"field": "data.plan", "op": "eq", "value": "pro"}, {"any": [...]}]}
//
// A node is a group with exactly one of "all" and "any" holding a non-empty list, or a
// row {field, op, value}. An empty or null document is valid and means "always". The
// error is a *FieldError whose Field names the offending node, such as
// "condition.all[1].op".
func ValidateCondition(raw json.RawMessage) error {
	_, err := CompileCondition(raw)
	return err
}

// CompileCondition validates a condition tree and compiles it to one expr-lang expression
// for Compile. Values become literals (strings are quoted, never spliced), so a value
// cannot change the expression's structure. Rows never fail at run time: a missing field
// or a value of another type makes a comparison false rather than an error. neq, not_in
// and not_exists are the exact negations of eq, in and exists, so they hold for a
// missing field. An empty or null tree compiles to "" (always true).
func CompileCondition(raw json.RawMessage) (string, error) {
	root, err := parseCondition(raw)
	if err != nil || root == nil {
		return "", err
	}
	src, _ := root.render()
	if _, err := compile(src, expr.AsBool()); err != nil {
		// Only size can get here (the node and length limits), as every row is valid.
		return "", &FieldError{Field: "condition", Message: "is too large: " + firstLine(err.Error())}
	}
	return src, nil
}

func isEmptyJSON(raw []byte) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

func parseCondition(raw json.RawMessage) (*condNode, error) {
	if isEmptyJSON(raw) {
		return nil, nil
	}
	var p condParser
	return p.node(raw, "condition", 1)
}

type condParser struct{ rows int }

func (p *condParser) node(raw json.RawMessage, path string, depth int) (*condNode, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, &FieldError{Field: path, Message: "must be an object with all, any or field"}
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch k {
		case "all", "any", "field", "op", "value":
		default:
			return nil, &FieldError{Field: path + "." + k, Message: "unknown key"}
		}
	}
	_, hasAll := obj["all"]
	_, hasAny := obj["any"]
	_, hasField := obj["field"]
	_, hasOp := obj["op"]
	_, hasValue := obj["value"]
	switch {
	case hasAll && hasAny:
		return nil, &FieldError{Field: path, Message: "must have only one of all and any"}
	case (hasAll || hasAny) && (hasField || hasOp || hasValue):
		return nil, &FieldError{Field: path, Message: "a group (all or any) cannot also have field, op or value"}
	case hasAll:
		return p.group("all", obj["all"], path, depth)
	case hasAny:
		return p.group("any", obj["any"], path, depth)
	case hasField || hasOp || hasValue:
		return p.row(obj, path)
	}
	return nil, &FieldError{Field: path, Message: "must have all, any or field"}
}

func (p *condParser) group(kind string, raw json.RawMessage, path string, depth int) (*condNode, error) {
	if depth > maxDepth {
		return nil, &FieldError{Field: path, Message: fmt.Sprintf("groups are nested more than %d deep", maxDepth)}
	}
	listPath := path + "." + kind
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || items == nil {
		return nil, &FieldError{Field: listPath, Message: "must be a list of conditions"}
	}
	if len(items) == 0 {
		return nil, &FieldError{Field: listPath, Message: "must not be empty"}
	}
	n := &condNode{group: kind, children: make([]*condNode, 0, len(items))}
	for i, item := range items {
		child, err := p.node(item, fmt.Sprintf("%s[%d]", listPath, i), depth+1)
		if err != nil {
			return nil, err
		}
		n.children = append(n.children, child)
	}
	return n, nil
}

func (p *condParser) row(obj map[string]json.RawMessage, path string) (*condNode, error) {
	p.rows++
	if p.rows > maxRows {
		return nil, &FieldError{Field: path, Message: fmt.Sprintf("a condition may have at most %d rows", maxRows)}
	}
	n := &condNode{}
	if err := requiredString(obj, "field", &n.field); err != nil {
		return nil, &FieldError{Field: path + ".field", Message: err.Error()}
	}
	if err := validateField(n.field); err != nil {
		return nil, &FieldError{Field: path + ".field", Message: err.Error()}
	}
	if err := requiredString(obj, "op", &n.op); err != nil {
		return nil, &FieldError{Field: path + ".op", Message: err.Error()}
	}
	if !slices.Contains(operators, n.op) {
		return nil, &FieldError{Field: path + ".op", Message: fmt.Sprintf("unknown operator %q (one of %s)",
			n.op, strings.Join(operators, ", "))}
	}
	v, sub, err := checkValue(n.op, obj["value"])
	if err != nil {
		return nil, &FieldError{Field: path + ".value" + sub, Message: err.Error()}
	}
	n.value = v
	return n, nil
}

func requiredString(obj map[string]json.RawMessage, key string, dst *string) error {
	raw, ok := obj[key]
	if !ok || isEmptyJSON(raw) {
		return fmt.Errorf("is required")
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("must be a string")
	}
	if *dst == "" {
		return fmt.Errorf("is required")
	}
	return nil
}

// validateField accepts "type", "id", "source" and dotted data paths ("data.user.email").
func validateField(f string) error {
	switch f {
	case "type", "id", "source":
		return nil
	}
	rest, ok := strings.CutPrefix(f, "data.")
	if !ok {
		return fmt.Errorf("must be type, id, source or a data path such as data.plan")
	}
	segs := strings.Split(rest, ".")
	if len(segs) > maxFieldParts {
		return fmt.Errorf("must have at most %d segments", maxFieldParts)
	}
	for _, s := range segs {
		if s == "" {
			return fmt.Errorf("%q has an empty segment", f)
		}
		for _, c := range s {
			if !isSegmentChar(c) {
				return fmt.Errorf("%q: path segments may only hold letters, digits, '_' and '-'", f)
			}
		}
	}
	return nil
}

// checkValue decodes and checks a row's value for its operator. sub is the suffix of the
// error's path inside the value ("[2]" for a list element).
func checkValue(op string, raw json.RawMessage) (v any, sub string, err error) {
	present := len(raw) > 0
	v, err = decodeJSON(raw)
	if err != nil {
		return nil, "", fmt.Errorf("is not valid JSON")
	}
	switch op {
	case "exists", "not_exists":
		if v != nil {
			return nil, "", fmt.Errorf("must be empty: %s takes no value", op)
		}
	case "eq", "neq":
		if !present {
			return nil, "", fmt.Errorf("is required")
		}
		if !isScalar(v) {
			return nil, "", fmt.Errorf("must be a string, number, boolean or null")
		}
	case "gt", "gte", "lt", "lte":
		switch v.(type) {
		case string, float64, int64:
		default:
			return nil, "", fmt.Errorf("must be a number or a string")
		}
	case "in", "not_in":
		list, ok := v.([]any)
		if !ok {
			return nil, "", fmt.Errorf("must be a list")
		}
		if len(list) == 0 {
			return nil, "", fmt.Errorf("must not be empty")
		}
		if len(list) > maxListLen {
			return nil, "", fmt.Errorf("must have at most %d elements", maxListLen)
		}
		for i, e := range list {
			if !isScalar(e) {
				return nil, fmt.Sprintf("[%d]", i), fmt.Errorf("must be a string, number, boolean or null")
			}
		}
	case "contains":
		switch v.(type) {
		case string, float64, int64, bool:
		default:
			return nil, "", fmt.Errorf("must be a string (or a number or boolean to find in a list)")
		}
	case "starts_with", "ends_with":
		if _, ok := v.(string); !ok {
			return nil, "", fmt.Errorf("must be a string")
		}
	case "matches":
		s, ok := v.(string)
		if !ok {
			return nil, "", fmt.Errorf("must be a string holding a regular expression")
		}
		if _, err := regexp.Compile(s); err != nil {
			msg := strings.TrimPrefix(err.Error(), "error parsing regexp: ")
			return nil, "", fmt.Errorf("is not a valid regular expression: %s", msg)
		}
	}
	return v, "", nil
}

func allStrings(list []any) bool {
	for _, e := range list {
		if _, ok := e.(string); !ok {
			return false
		}
	}
	return true
}

func isScalar(v any) bool {
	switch v.(type) {
	case nil, string, float64, int64, bool:
		return true
	}
	return false
}

// render returns the node's expression and whether it is atomic, i.e. needs no
// parentheses as an operand of && or ||.
func (n *condNode) render() (string, bool) {
	if n.group == "" {
		return n.renderRow()
	}
	if len(n.children) == 1 {
		return n.children[0].render()
	}
	join := " && "
	if n.group == "any" {
		join = " || "
	}
	parts := make([]string, len(n.children))
	for i, c := range n.children {
		s, atomic := c.render()
		if !atomic {
			s = "(" + s + ")"
		}
		parts[i] = s
	}
	return strings.Join(parts, join), false
}

func (n *condNode) renderRow() (string, bool) {
	a := accessor(n.field)
	lit := literal(n.value)
	guard := func(typ, cmp string) string {
		return fmt.Sprintf("typeOf(%s) == %q && %s", a, typ, cmp)
	}
	switch n.op {
	case "eq":
		return a + " == " + lit, true
	case "neq":
		return a + " != " + lit, true
	case "gt", "gte", "lt", "lte":
		sym := map[string]string{"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[n.op]
		typ := "number"
		if _, ok := n.value.(string); ok {
			typ = "string"
		}
		return guard(typ, a+" "+sym+" "+lit), false
	case "in", "not_in":
		// expr-lang turns `x in [<only strings>]` into a map lookup that fails at run time
		// when x is not a string; only a string can equal one of these anyway.
		if !allStrings(n.value.([]any)) {
			if n.op == "in" {
				return a + " in " + lit, true
			}
			return a + " not in " + lit, true
		}
		if n.op == "in" {
			return guard("string", a+" in "+lit), false
		}
		return fmt.Sprintf("typeOf(%s) != \"string\" || %s not in %s", a, a, lit), false
	case "contains":
		inList := guard("array", lit+" in "+a)
		if _, ok := n.value.(string); !ok {
			return inList, false
		}
		return "(" + guard("string", a+" contains "+lit) + ") || (" + inList + ")", false
	case "starts_with":
		return guard("string", a+" startsWith "+lit), false
	case "ends_with":
		return guard("string", a+" endsWith "+lit), false
	case "exists":
		return a + " != nil", true
	case "not_exists":
		return a + " == nil", true
	case "matches":
		return guard("string", a+" matches "+lit), false
	}
	panic("rules: unknown operator " + n.op) // parseCondition rejects unknown operators
}

// keywords are expr-lang words that are bracketed rather than written after a dot.
var keywords = map[string]bool{
	"in": true, "not": true, "and": true, "or": true, "matches": true, "contains": true,
	"startsWith": true, "endsWith": true, "let": true, "if": true, "else": true,
	"nil": true, "true": true, "false": true,
}

// accessor renders a validated field as an expression: data.user.email,
// data["first-name"], data.items["0"].
func accessor(field string) string {
	segs := strings.Split(field, ".")
	var b strings.Builder
	b.WriteString(segs[0])
	for _, s := range segs[1:] {
		if isIdent(s) && !keywords[s] {
			b.WriteString("." + s)
		} else {
			b.WriteString("[" + strconv.Quote(s) + "]")
		}
	}
	return b.String()
}

func isIdent(s string) bool {
	for i, c := range s {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return s != ""
}

// literal renders a decoded JSON scalar or list as an expr-lang literal. strconv.Quote's
// escapes are a subset of expr-lang's, so a quoted string reads back unchanged.
func literal(v any) string {
	switch x := v.(type) {
	case nil:
		return "nil"
	case bool:
		return strconv.FormatBool(x)
	case string:
		return strconv.Quote(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		// Integral values are written as integers, which expr-lang compares exactly with
		// the int64 that Env keeps for integers beyond 2^53.
		if x == math.Trunc(x) && math.Abs(x) < math.MaxInt64 {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = literal(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	panic(fmt.Sprintf("rules: no literal for %T", v)) // checkValue admits only the cases above
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
