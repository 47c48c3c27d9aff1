// Package fakes runs local stand-ins for the vendor APIs that Fanout's connectors call
// (HubSpot, Mailchimp, Intercom, Slack, Segment) and for their OAuth authorization
// servers, following /work/shared/VENDOR_APIS.md: the same paths, status codes, error
// bodies, rate-limit headers and quirks (Slack's HTTP 200 with ok:false, Mailchimp's
// subscriber hash, Intercom's search lag). Every fake records the requests it receives.
//
// Only tests import this package. Fakes listen on 127.0.0.1 and stop when the test ends.
// Facts that VENDOR_APIS.md marks unverified are fields or constants here, easy to change.
package fakes

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Request is one request a fake received.
type Request struct {
	Method   string
	Path     string
	RawQuery string
	Header   http.Header
	Body     []byte
	At       time.Time
}

// JSON decodes the body into v, failing the test if it cannot.
func (r Request) JSON(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		tb.Fatalf("fakes: %s %s: body %q is not JSON: %v", r.Method, r.Path, r.Body, err)
	}
}

// Recorder keeps the requests of a fake. Its methods are safe for concurrent use.
type Recorder struct {
	mu   sync.Mutex
	reqs []Request
}

// record reads and restores the body of r and keeps a copy of r.
func (rec *Recorder) record(r *http.Request) Request {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	r.Body = io.NopCloser(bytes.NewReader(body))
	req := Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body, At: time.Now()}
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, req)
	rec.mu.Unlock()
	return req
}

// Requests returns a copy of every request received so far.
func (rec *Recorder) Requests() []Request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]Request(nil), rec.reqs...)
}

// Calls returns the requests whose method and path match ("" matches any method).
func (rec *Recorder) Calls(method, path string) []Request {
	var out []Request
	for _, r := range rec.Requests() {
		if (method == "" || r.Method == method) && r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// WaitFor waits until at least n requests match method and path, or fails the test.
func (rec *Recorder) WaitFor(tb testing.TB, method, path string, n int, timeout time.Duration) []Request {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if got := rec.Calls(method, path); len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			tb.Fatalf("fakes: %d %s %s requests after %s, want %d", len(rec.Calls(method, path)), method, path, timeout, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TokenState is what a fake makes of a presented token.
type TokenState int

// Token states.
const (
	TokenUnknown TokenState = iota
	TokenValid
	TokenExpired
	TokenRevoked
)

type tokenInfo struct {
	expires time.Time // zero: never
	revoked bool
	scopes  []string
}

// Tokens is a set of credentials that fakes accept: access tokens (with an optional
// lifetime and scopes) and refresh tokens. An AuthServer issues into it and the vendor
// fakes check against it, so one Tokens ties a fake authorization server to a fake API.
// It is safe for concurrent use.
type Tokens struct {
	mu      sync.Mutex
	access  map[string]*tokenInfo
	refresh map[string]*tokenInfo
}

// NewTokens returns an empty set.
func NewTokens() *Tokens {
	return &Tokens{access: map[string]*tokenInfo{}, refresh: map[string]*tokenInfo{}}
}

// Add accepts token for lifetime (0: forever) with scopes (none: any scope).
func (t *Tokens) Add(token string, lifetime time.Duration, scopes ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	info := &tokenInfo{scopes: scopes}
	if lifetime > 0 {
		info.expires = time.Now().Add(lifetime)
	}
	t.access[token] = info
}

// AddRefresh accepts a refresh token.
func (t *Tokens) AddRefresh(token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refresh[token] = &tokenInfo{}
}

// Expire makes token expired (it stays known, so vendors can say "expired").
func (t *Tokens) Expire(token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if info, ok := t.access[token]; ok {
		info.expires = time.Now().Add(-time.Minute)
	}
}

// Revoke revokes an access or refresh token.
func (t *Tokens) Revoke(token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range []map[string]*tokenInfo{t.access, t.refresh} {
		if info, ok := m[token]; ok {
			info.revoked = true
		}
	}
}

// Check returns the state of an access token.
func (t *Tokens) Check(token string) TokenState {
	t.mu.Lock()
	defer t.mu.Unlock()
	return state(t.access[token])
}

// HasScope reports whether a valid token carries scope (a token added without scopes has
// them all).
func (t *Tokens) HasScope(token, scope string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	info := t.access[token]
	if state(info) != TokenValid {
		return false
	}
	if len(info.scopes) == 0 {
		return true
	}
	for _, s := range info.scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// CheckRefresh returns the state of a refresh token.
func (t *Tokens) CheckRefresh(token string) TokenState {
	t.mu.Lock()
	defer t.mu.Unlock()
	return state(t.refresh[token])
}

func state(info *tokenInfo) TokenState {
	switch {
	case info == nil:
		return TokenUnknown
	case info.revoked:
		return TokenRevoked
	case !info.expires.IsZero() && time.Now().After(info.expires):
		return TokenExpired
	}
	return TokenValid
}

// expiredFor returns how long ago token expired.
func (t *Tokens) expiredFor(token string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if info := t.access[token]; info != nil && !info.expires.IsZero() {
		return time.Since(info.expires)
	}
	return 0
}

// countdown is a "fail the next n requests" switch.
type countdown struct {
	mu sync.Mutex
	n  int
}

func (c *countdown) set(n int) {
	c.mu.Lock()
	c.n = n
	c.mu.Unlock()
}

// take reports whether this request is one of the n, consuming it.
func (c *countdown) take() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n <= 0 {
		return false
	}
	c.n--
	return true
}

func randomID(prefix string) string { return prefix + strings.ToLower(rand.Text()) }

func bearerToken(r *http.Request) string {
	v := r.Header.Get("Authorization")
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return strings.TrimSpace(v[7:])
	}
	return ""
}

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	if contentType == "" {
		contentType = "application/json; charset=utf-8"
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeJSON decodes a request body with numbers kept exact.
func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	return dec.Decode(v)
}
