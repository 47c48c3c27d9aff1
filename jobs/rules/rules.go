// Package rules is the pure logic of routing: event type patterns, the condition trees the
// rule builder edits and the expr-lang programs they compile to, payload mappings and
// retry policies. It does no I/O; everything it returns is safe for concurrent use.
//
// All programs compiled here (rule expressions, conditions, mapping expressions and
// template holes) share one environment, built by Env, and one extension of expr-lang:
// member access (a.b, a["b"], a[0]) never fails. A missing key, an index out of range or
// a step into a value that is not an object or array yields nil instead of a run-time
// error, so `data.user.email` is nil when data.user is absent or is a string. The builtin
// type() is shadowed by the env's `type` variable; use typeOf(v), which answers in JSON
// terms: "null", "boolean", "number", "string", "array" or "object".
package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/types"
	"github.com/expr-lang/expr/vm"
	"github.com/expr-lang/expr/vm/runtime"
)

// Limits that keep user-written programs cheap to compile and run. The VM's own memory
// budget (expr's default) bounds what a program can allocate at run time.
const (
	maxSourceLen = 64 << 10
	maxNodes     = 10000
)

// FieldError is a validation error tied to one field of the submitted document, named by
// a path such as "condition.all[1].op", "mapping.merge_fields.FNAME" or "retry.schedule[2]".
type FieldError struct {
	Field   string
	Message string
}

// Error implements error.
func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// Input is the part of an event that rules and mappings can see.
type Input struct {
	ID         string
	Type       string
	Source     string
	OccurredAt time.Time
	Data       json.RawMessage
}

// Env builds the evaluation environment of an event: id, type, source, occurred_at (RFC
// 3339, UTC, empty when unknown) and data, the decoded JSON payload. Data numbers are
// float64, except integers beyond float64's exact range (±2^53) that fit in an int64: they
// stay int64 so that large ids pass through mappings unchanged. Empty, null or undecodable
// data becomes an empty object. Each call returns a fresh map the caller may keep.
func Env(e Input) map[string]any {
	occurred := ""
	if !e.OccurredAt.IsZero() {
		occurred = e.OccurredAt.UTC().Format(time.RFC3339)
	}
	return map[string]any{
		"id":          e.ID,
		"type":        e.Type,
		"source":      e.Source,
		"occurred_at": occurred,
		"data":        decodeData(e.Data),
	}
}

func decodeData(raw json.RawMessage) any {
	v, err := decodeJSON(raw)
	if err != nil || v == nil {
		return map[string]any{}
	}
	return v
}

// decodeJSON decodes one JSON value the way Env does (see Env for numbers).
func decodeJSON(raw []byte) (any, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return convertNumbers(v), nil
}

func convertNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		return number(x)
	case map[string]any:
		for k, e := range x {
			x[k] = convertNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = convertNumbers(e)
		}
	}
	return v
}

const maxExactFloat = 1 << 53

func number(n json.Number) any {
	if i, err := n.Int64(); err == nil && (i > maxExactFloat || i < -maxExactFloat) {
		return i
	}
	f, err := n.Float64()
	if err != nil {
		// Out of float64 range (1e400): keep the digits rather than an infinity that
		// cannot be encoded again.
		return n.String()
	}
	return f
}

// envShape declares the environment's variables to the type checker, so that a typo such
// as `plan == "pro"` (for data.plan) fails at compile time. data is left untyped: it is
// usually an object, but any JSON value is allowed.
var envShape = types.Map{
	"id":          types.String,
	"type":        types.String,
	"source":      types.String,
	"occurred_at": types.String,
	"data":        types.Any,
}

// fetchFunc is the function that member access is rewritten to (see safeAccess).
const fetchFunc = "fetch"

func options(extra ...expr.Option) []expr.Option {
	return append([]expr.Option{
		expr.Env(envShape),
		expr.Function(fetchFunc, func(p ...any) (any, error) { return fetch(p[0], p[1]), nil },
			new(func(any, any) any)),
		expr.Function("typeOf", func(p ...any) (any, error) { return typeOf(p[0]), nil },
			new(func(any) string)),
		expr.Patch(safeAccess{}),
		expr.Timezone("UTC"),
		expr.MaxNodes(maxNodes),
	}, extra...)
}

func compile(source string, opts ...expr.Option) (*vm.Program, error) {
	if len(source) > maxSourceLen {
		return nil, fmt.Errorf("expression is longer than %d KiB", maxSourceLen>>10)
	}
	return expr.Compile(source, options(opts...)...)
}

// safeAccess rewrites every member access a.b / a[k] into fetch(a, k), which is total.
// Event payloads are heterogeneous; a rule must not blow up because one event lacks a
// nested object or carries a string where others carry an object.
type safeAccess struct{}

// Visit implements ast.Visitor.
func (safeAccess) Visit(node *ast.Node) {
	m, ok := (*node).(*ast.MemberNode)
	if !ok || m.Method {
		return
	}
	ast.Patch(node, &ast.CallNode{
		Callee:    &ast.IdentifierNode{Value: fetchFunc},
		Arguments: []ast.Node{m.Node, m.Property},
	})
}

// fetch returns from[key], or nil when there is no such element.
func fetch(from, key any) any {
	switch f := from.(type) {
	case nil:
		return nil
	case map[string]any:
		if k, ok := key.(string); ok {
			return f[k]
		}
		return nil
	case []any:
		i, ok := toIndex(key)
		if !ok {
			return nil
		}
		if i < 0 {
			i += len(f)
		}
		if i < 0 || i >= len(f) {
			return nil
		}
		return f[i]
	}
	return fetchAny(from, key)
}

// fetchAny covers values that do not come from JSON (hand-built environments) with expr's
// own semantics, turning its panics into nil.
func fetchAny(from, key any) (v any) {
	defer func() {
		if recover() != nil {
			v = nil
		}
	}()
	return runtime.Fetch(from, key)
}

func toIndex(key any) (int, bool) {
	switch k := key.(type) {
	case int:
		return k, true
	case int64:
		return int(k), true
	case float64:
		if k == float64(int(k)) {
			return int(k), true
		}
	case string:
		if i, err := strconv.Atoi(k); err == nil {
			return i, true
		}
	}
	return 0, false
}

// typeOf names the JSON type of a value.
func typeOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64, int, int64:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Bool:
		return "boolean"
	case reflect.String:
		return "string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	}
	return "unknown"
}

// Program is a compiled rule expression. It is safe for concurrent use.
type Program struct {
	source string
	prog   *vm.Program
}

// Compile compiles an expr-lang rule expression over the Env shape. The expression must
// yield a boolean. An empty (or blank) expression compiles to a program that matches
// every event. Unknown variables, calls of unknown functions and non-boolean results are
// compile errors.
func Compile(expression string) (*Program, error) {
	if strings.TrimSpace(expression) == "" {
		return &Program{}, nil
	}
	prog, err := compile(expression, expr.AsBool())
	if err != nil {
		return nil, fmt.Errorf("compile expression: %w", err)
	}
	return &Program{source: expression, prog: prog}, nil
}

// Source returns the expression the program was compiled from.
func (p *Program) Source() string {
	if p == nil {
		return ""
	}
	return p.source
}

// Match runs the program against an environment built by Env. A nil result (a missing
// field used as the whole condition) counts as false; a run-time error, such as comparing
// a string with a number in a user-written expression, is returned as an error.
func (p *Program) Match(env map[string]any) (bool, error) {
	if p == nil || p.prog == nil {
		return true, nil
	}
	out, err := expr.Run(p.prog, env)
	if err != nil {
		return false, fmt.Errorf("evaluate expression: %w", err)
	}
	switch v := out.(type) {
	case bool:
		return v, nil
	case nil:
		return false, nil
	}
	return false, fmt.Errorf("evaluate expression: result is a %s, not a boolean", typeOf(out))
}
