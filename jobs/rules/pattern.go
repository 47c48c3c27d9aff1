package rules

import (
	"errors"
	"fmt"
	"strings"
)

// maxTypeLen bounds event types and patterns.
const maxTypeLen = 255

// ValidateEventType checks an event type such as "lead.created": dot-separated segments
// of letters, digits, '_' and '-'.
func ValidateEventType(t string) error {
	return validateSegments(t, false)
}

// ValidatePattern checks an event type pattern: an exact type ("lead.created"), a prefix
// pattern whose last segment is "*" ("lead.*"), or "*" alone. A '*' anywhere else
// ("lead*", "*.created", "lead.*.x") is rejected.
func ValidatePattern(p string) error {
	return validateSegments(p, true)
}

func validateSegments(s string, wildcard bool) error {
	switch {
	case s == "":
		return errors.New("must not be empty")
	case len(s) > maxTypeLen:
		return fmt.Errorf("must be at most %d characters", maxTypeLen)
	}
	segs := strings.Split(s, ".")
	for i, seg := range segs {
		if wildcard && seg == "*" && i == len(segs)-1 {
			continue
		}
		if seg == "" {
			return fmt.Errorf("%q has an empty segment", s)
		}
		for _, c := range seg {
			if !isSegmentChar(c) {
				if c == '*' && wildcard {
					return fmt.Errorf("%q: '*' may only be the whole last segment, as in \"lead.*\"", s)
				}
				return fmt.Errorf("%q: segments may only hold letters, digits, '_' and '-' (found %q)", s, c)
			}
		}
	}
	return nil
}

func isSegmentChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// MatchType reports whether an event type matches a pattern. "*" matches every type;
// "lead.*" matches "lead.created" and "lead.x.y" but not "lead"; any other pattern
// matches only itself. Matching is case-sensitive. The pattern is assumed valid.
func MatchType(pattern, eventType string) bool {
	if pattern == "*" {
		return true
	}
	if prefix, ok := strings.CutSuffix(pattern, ".*"); ok {
		prefix += "."
		return len(eventType) > len(prefix) && strings.HasPrefix(eventType, prefix)
	}
	return pattern == eventType
}
