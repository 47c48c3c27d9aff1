package jobstest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Received is one request the sink saw.
type Received struct {
	Header http.Header
	Body   []byte
	At     time.Time
}

// Reply is what the sink answers.
type Reply struct {
	Status int
	Header map[string]string
	Body   string
	Delay  time.Duration
}

// Sink is a loopback receiver that records every request. Respond decides each answer
// from the number (1-based) of requests it has seen for that webhook-id.
type Sink struct {
	*httptest.Server
	mu       sync.Mutex
	got      []Received
	perID    map[string]int
	Respond  func(n int, r *http.Request) Reply
	arrivals chan struct{}
}

// NewSink starts a sink answering 200 unless Respond says otherwise.
func NewSink(tb testing.TB) *Sink {
	s := &Sink{perID: map[string]int{}, arrivals: make(chan struct{}, 1<<16)}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(s.Close)
	return s
}

func (s *Sink) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	id := r.Header.Get("webhook-id")
	s.perID[id]++
	n := s.perID[id]
	s.got = append(s.got, Received{Header: r.Header.Clone(), Body: body, At: time.Now()})
	respond := s.Respond
	s.mu.Unlock()
	select {
	case s.arrivals <- struct{}{}:
	default:
	}
	reply := Reply{Status: http.StatusOK, Body: "ok"}
	if respond != nil {
		reply = respond(n, r)
	}
	if reply.Delay > 0 {
		select {
		case <-time.After(reply.Delay):
		case <-r.Context().Done():
			return
		}
	}
	for k, v := range reply.Header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(reply.Status)
	_, _ = io.WriteString(w, reply.Body)
}

// SetRespond replaces the answering function.
func (s *Sink) SetRespond(f func(n int, r *http.Request) Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Respond = f
}

// Requests returns a copy of everything received so far.
func (s *Sink) Requests() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.got...)
}

// WaitFor waits until the sink has seen at least n requests, or fails the test.
func (s *Sink) WaitFor(tb testing.TB, n int, timeout time.Duration) []Received {
	tb.Helper()
	deadline := time.After(timeout)
	for {
		if got := s.Requests(); len(got) >= n {
			return got
		}
		select {
		case <-s.arrivals:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			tb.Fatalf("sink: got %d requests, want %d within %s", len(s.Requests()), n, timeout)
		}
	}
}
