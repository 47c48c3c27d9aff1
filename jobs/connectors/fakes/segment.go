package fakes

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Segment limits (§5.5).
const (
	SegmentMaxEvent = 32 << 10
	SegmentMaxBatch = 500 << 10
)

// SegmentEvent is a call the fake accepted.
type SegmentEvent struct {
	WriteKey string
	Body     map[string]any
	// Duplicate is set when its messageId was seen before (Segment drops it, §5.6).
	Duplicate bool
}

// Segment is a fake of Segment's HTTP Tracking API, or of a compatible collector
// (VENDOR_APIS.md §5): /v1/{track,identify,page,screen,group,alias,batch} with the write
// key as the Basic user name (or a writeKey body field); 400 only for invalid JSON or a
// call over 32 KB (500 KB for a batch), 200 {"success":true} otherwise, even when Segment
// would drop the event (unknown write key, no userId or anonymousId, no event name): those
// are recorded in Dropped. 429 with Retry-After and X-RateLimit-Reset on demand.
type Segment struct {
	*httptest.Server
	Recorder

	limited    countdown
	mu         sync.Mutex
	retryAfter int
	keys       map[string]bool
	seen       map[string]bool
	accepted   []SegmentEvent
	dropped    []string
}

// NewSegment starts the fake accepting writeKeys.
func NewSegment(tb testing.TB, writeKeys ...string) *Segment {
	f := &Segment{keys: map[string]bool{}, seen: map[string]bool{}}
	for _, k := range writeKeys {
		f.keys[k] = true
	}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	tb.Cleanup(f.Close)
	return f
}

// RateLimit makes the next n requests answer 429 asking to wait retryAfter seconds.
func (f *Segment) RateLimit(n, retryAfter int) {
	f.mu.Lock()
	f.retryAfter = retryAfter
	f.mu.Unlock()
	f.limited.set(n)
}

// Accepted returns the accepted calls, duplicates included (marked).
func (f *Segment) Accepted() []SegmentEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]SegmentEvent(nil), f.accepted...)
}

// Dropped returns why calls were silently dropped.
func (f *Segment) Dropped() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.dropped...)
}

var segmentTypes = map[string]bool{"track": true, "identify": true, "page": true, "screen": true, "group": true, "alias": true}

func (f *Segment) serve(w http.ResponseWriter, r *http.Request) {
	req := f.record(r)
	if f.limited.take() {
		f.mu.Lock()
		ra := strconv.Itoa(f.retryAfter)
		f.mu.Unlock()
		w.Header().Set("Retry-After", ra)
		w.Header().Set("X-RateLimit-Reset", ra)
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	kind := strings.TrimPrefix(r.URL.Path, "/v1/")
	if r.Method != http.MethodPost || (!segmentTypes[kind] && kind != "batch") {
		http.NotFound(w, r)
		return
	}
	limit := SegmentMaxEvent
	if kind == "batch" {
		limit = SegmentMaxBatch
	}
	if len(req.Body) > limit {
		writeJSON(w, http.StatusBadRequest, "", map[string]any{"success": false, "message": "payload too large"})
		return
	}
	var body map[string]any
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") || decodeJSON(req.Body, &body) != nil {
		writeJSON(w, http.StatusBadRequest, "", map[string]any{"success": false, "message": "invalid JSON"})
		return
	}
	key, _, ok := r.BasicAuth()
	if !ok {
		key, _ = body["writeKey"].(string)
	}
	calls := []map[string]any{body}
	if kind == "batch" {
		calls = nil
		items, _ := body["batch"].([]any)
		for _, it := range items {
			if m, ok := it.(map[string]any); ok {
				calls = append(calls, m)
			}
		}
	} else {
		body["type"] = kind
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range calls {
		f.accept(key, c)
	}
	writeJSON(w, http.StatusOK, "", map[string]any{"success": true})
}

func (f *Segment) accept(key string, c map[string]any) {
	userID, _ := c["userId"].(string)
	anonID, _ := c["anonymousId"].(string)
	switch {
	case !f.keys[key]:
		f.dropped = append(f.dropped, "invalid write key")
		return
	case userID == "" && anonID == "":
		f.dropped = append(f.dropped, "no_user_anon_id")
		return
	case c["type"] == "track" && c["event"] == nil:
		f.dropped = append(f.dropped, "missing event")
		return
	}
	id, _ := c["messageId"].(string)
	dup := id != "" && f.seen[id]
	f.seen[id] = true
	f.accepted = append(f.accepted, SegmentEvent{WriteKey: key, Body: c, Duplicate: dup})
}
