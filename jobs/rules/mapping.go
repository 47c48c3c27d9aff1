package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"github.com/tidwall/sjson"
)

// Limits of a mapping.
const (
	maxTargets   = 200
	maxTargetLen = 256
)

// Mapping is a compiled payload mapping: target field → expression or template. It is
// safe for concurrent use; the zero value and nil produce an empty object.
type Mapping struct {
	targets []mappingTarget // sorted by name
}

type mappingTarget struct {
	name string       // as written: "merge_fields.FNAME"
	path string       // the sjson path, every segment escaped and forced to be an object key
	prog *vm.Program  // an expression; nil for a template
	tmpl []textOrHole // a template
}

type textOrHole struct {
	text string
	hole *vm.Program // nil for literal text
}

// CompileMapping compiles a mapping document, a JSON object of target → source:
//
//	{"email": "lower(data.email)", "merge_fields.FNAME": "data.first_name",
//	 "text": "New lead {{ data.email }} on {{ data.plan }}"}
//
// A source containing "{{" is a text template: literal text with expr-lang holes whose
// results are stringified (nil → ""). Any other source is one expr-lang expression whose
// result is placed as is (string, number, boolean, null, list or object). Targets are
// dotted paths that build nested objects; segments are always object keys, even when
// numeric, and may hold any character but '.'. A target may not also be the parent of
// another ("a" and "a.b"). An empty or null document is an empty mapping. Errors are
// *FieldError with Field "mapping.<target>" (or "mapping" for the document).
func CompileMapping(raw json.RawMessage) (*Mapping, error) {
	if isEmptyJSON(raw) {
		return &Mapping{}, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, &FieldError{Field: "mapping", Message: "must be an object of target field → expression"}
	}
	if len(obj) > maxTargets {
		return nil, &FieldError{Field: "mapping", Message: fmt.Sprintf("may have at most %d targets", maxTargets)}
	}
	names := make([]string, 0, len(obj))
	for name := range obj {
		names = append(names, name)
	}
	sort.Strings(names)

	m := &Mapping{targets: make([]mappingTarget, 0, len(names))}
	for _, name := range names {
		t, err := compileTarget(name, obj[name], obj)
		if err != nil {
			return nil, &FieldError{Field: "mapping." + name, Message: err.Error()}
		}
		m.targets = append(m.targets, t)
	}
	return m, nil
}

func compileTarget(name string, raw json.RawMessage, all map[string]json.RawMessage) (mappingTarget, error) {
	segs, err := targetSegments(name)
	if err != nil {
		return mappingTarget{}, err
	}
	for i := 1; i < len(segs); i++ {
		if parent := strings.Join(segs[:i], "."); all[parent] != nil {
			return mappingTarget{}, fmt.Errorf("conflicts with target %q, which sets its parent", parent)
		}
	}
	t := mappingTarget{name: name, path: sjsonPath(segs)}

	var src string
	if err := json.Unmarshal(raw, &src); err != nil || isEmptyJSON(raw) {
		return t, fmt.Errorf("must be a string holding an expression or a {{ template }}")
	}
	if len(src) > maxSourceLen {
		return t, fmt.Errorf("is longer than %d KiB", maxSourceLen>>10)
	}
	if strings.Contains(src, "{{") {
		t.tmpl, err = compileTemplate(src)
		return t, err
	}
	if strings.TrimSpace(src) == "" {
		return t, fmt.Errorf("expression is empty")
	}
	t.prog, err = compile(src)
	if err != nil {
		return t, fmt.Errorf("invalid expression: %s", firstLine(err.Error()))
	}
	return t, nil
}

func targetSegments(name string) ([]string, error) {
	if strings.TrimSpace(name) == "" {
		return nil, fmt.Errorf("target must not be empty")
	}
	if len(name) > maxTargetLen {
		return nil, fmt.Errorf("target must be at most %d characters", maxTargetLen)
	}
	for _, c := range name {
		if c < ' ' || c == 0x7f {
			return nil, fmt.Errorf("target must not contain control characters")
		}
	}
	segs := strings.Split(name, ".")
	for _, s := range segs {
		if s == "" {
			return nil, fmt.Errorf("target has an empty segment")
		}
	}
	return segs, nil
}

// sjsonPath escapes each segment for sjson and prefixes it with ':', which makes sjson
// treat numeric segments as object keys rather than array indexes.
func sjsonPath(segs []string) string {
	var b strings.Builder
	for i, s := range segs {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteByte(':')
		for j := 0; j < len(s); j++ {
			switch s[j] {
			case '\\', '|', '#', '@', '*', '?', ':', '!', '=', '<', '>', '%', '~':
				b.WriteByte('\\')
			}
			b.WriteByte(s[j])
		}
	}
	return b.String()
}

func compileTemplate(src string) ([]textOrHole, error) {
	var parts []textOrHole
	for n := 1; ; n++ {
		start := strings.Index(src, "{{")
		if start < 0 {
			if src != "" {
				parts = append(parts, textOrHole{text: src})
			}
			return parts, nil
		}
		if start > 0 {
			parts = append(parts, textOrHole{text: src[:start]})
		}
		rest := src[start+2:]
		end := closingBraces(rest)
		if end < 0 {
			return nil, fmt.Errorf("template: {{ #%d is not closed with }}", n)
		}
		code := strings.TrimSpace(rest[:end])
		if code == "" {
			return nil, fmt.Errorf("template: {{ }} #%d is empty", n)
		}
		prog, err := compile(code)
		if err != nil {
			return nil, fmt.Errorf("template: {{ %s }}: %s", code, firstLine(err.Error()))
		}
		parts = append(parts, textOrHole{hole: prog})
		src = rest[end+2:]
	}
}

// closingBraces returns the index of the first "}}" in s outside string literals, or -1.
func closingBraces(s string) int {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' && quote != '`' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '}' && i+1 < len(s) && s[i+1] == '}':
			return i
		}
	}
	return -1
}

// Targets returns the mapping's target fields, sorted.
func (m *Mapping) Targets() []string {
	if m == nil {
		return nil
	}
	names := make([]string, len(m.targets))
	for i, t := range m.targets {
		names[i] = t.name
	}
	return names
}

// Apply evaluates every target, in sorted order, against an environment built by Env and
// returns the resulting JSON object. A missing source field yields null. A run-time
// error (say, lower() of a number) is returned naming its target; it will fail the same
// way on every retry.
func (m *Mapping) Apply(env map[string]any) (json.RawMessage, error) {
	out := []byte("{}")
	if m == nil {
		return out, nil
	}
	for _, t := range m.targets {
		v, err := t.eval(env)
		if err != nil {
			return nil, fmt.Errorf("mapping %s: %w", t.name, err)
		}
		b, err := marshal(v)
		if err != nil {
			return nil, fmt.Errorf("mapping %s: encode result: %w", t.name, err)
		}
		if out, err = sjson.SetRawBytes(out, t.path, b); err != nil {
			return nil, fmt.Errorf("mapping %s: %w", t.name, err)
		}
	}
	return out, nil
}

func (t *mappingTarget) eval(env map[string]any) (any, error) {
	if t.prog != nil {
		return expr.Run(t.prog, env)
	}
	var b strings.Builder
	for _, p := range t.tmpl {
		if p.hole == nil {
			b.WriteString(p.text)
			continue
		}
		v, err := expr.Run(p.hole, env)
		if err != nil {
			return nil, err
		}
		b.WriteString(stringify(v))
	}
	return b.String(), nil
}

// marshal encodes without HTML escaping: payloads carry text such as Slack's <url|label>.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// stringify renders a template hole's value.
func stringify(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case time.Time:
		return x.Format(time.RFC3339Nano)
	case fmt.Stringer:
		return x.String()
	}
	if b, err := marshal(v); err == nil {
		return string(b)
	}
	return fmt.Sprint(v)
}
