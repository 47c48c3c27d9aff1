package connectors

import (
	"cmp"
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// Redacted replaces secrets in anything Fanout stores or shows.
const Redacted = "[REDACTED]"

// secretPatterns catch credentials whose value the caller may not know: Authorization
// values echoed by a server, signing keys and Slack tokens.
var secretPatterns = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`(?i)\b(bearer|basic)(\s+)[A-Za-z0-9\-._~+/]+=*`), "${1}${2}" + Redacted},
	{regexp.MustCompile(`\bwhs(ec|k)_[A-Za-z0-9+/=]+`), Redacted},
	{regexp.MustCompile(`\bxox[a-z]-[A-Za-z0-9-]+`), Redacted},
}

// Redact replaces every occurrence of each non-empty secret, including its URL- and
// JSON-escaped spellings, and anything that looks like a bearer or basic credential, a
// whsec_/whsk_ key or a Slack token, with [REDACTED].
func Redact(s string, secrets ...string) string {
	var forms []string
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		forms = append(forms, sec, url.QueryEscape(sec), url.PathEscape(sec))
		if b, err := json.Marshal(sec); err == nil {
			forms = append(forms, string(b[1:len(b)-1]))
		}
	}
	// Longest first, so a secret that contains another is replaced whole.
	slices.SortFunc(forms, func(a, b string) int {
		return cmp.Or(cmp.Compare(len(b), len(a)), strings.Compare(a, b))
	})
	for _, f := range slices.Compact(forms) {
		s = strings.ReplaceAll(s, f, Redacted)
	}
	for _, p := range secretPatterns {
		s = p.re.ReplaceAllString(s, p.repl)
	}
	return s
}

// Excerpt makes body storable: invalid UTF-8 and NUL bytes (which Postgres text refuses)
// become U+FFFD, and the result is cut to at most MaxExcerpt bytes at a rune boundary.
func Excerpt(body []byte) string {
	s := strings.ToValidUTF8(string(body), "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	if len(s) <= MaxExcerpt {
		return s
	}
	cut := MaxExcerpt
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
