package connectors

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// conformanceFixture is what the shared contract tests need to know about one connector.
// Adding a connector to Default() means adding one entry to conformanceFixtures.
type conformanceFixture struct {
	// request returns a valid request aimed at a fake vendor listening at baseURL
	// (config.url for the webhook, config.api_base for vendor connectors). The test sets
	// HTTP. The config must pass ValidateConfig when private addresses are allowed.
	request func(baseURL string) *Request
	// okBody is what the fake answers with 200 (e.g. `{"ok":true}` for Slack). It must
	// stay valid when followed by whitespace.
	okBody string
	// on401 is the expected outcome of HTTP 401: Permanent for the webhook (the receiver
	// is not ours to reconnect), AuthFailed for vendor connectors.
	on401 Outcome
	// secrets are values besides the credentials that must never appear in a Result
	// (a token in a custom header, a secret URL path).
	secrets []string
}

// conformanceFixtures holds one entry per connector kind in Default().
var conformanceFixtures = map[string]conformanceFixture{
	"webhook": {
		request: func(baseURL string) *Request {
			return &Request{
				DeliveryID: "dlv_conformance",
				Attempt:    1,
				Action:     "webhook.post",
				Event:      conformanceEvent,
				Payload:    json.RawMessage(`{"email":"ada@example.com"}`),
				Config: mustMarshal(map[string]any{
					"url":     baseURL + "/hooks/in",
					"headers": map[string]string{"Authorization": "Bearer conformance-header-token"},
				}),
				Credentials: Credentials{CredSigningSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
			}
		},
		okBody:  `{"received":true}`,
		on401:   Permanent,
		secrets: []string{"conformance-header-token"},
	},
	"hubspot": {
		request: func(baseURL string) *Request {
			return &Request{
				DeliveryID: "dlv_conformance", Attempt: 1, Action: "hubspot.upsert_contact", Event: conformanceEvent,
				Payload:     json.RawMessage(`{"email":"Ada@Example.com","firstname":"Ada"}`),
				Config:      mustMarshal(map[string]any{"api_base": baseURL}),
				Credentials: Credentials{CredAccessToken: "pat-na1-conformance-token"},
			}
		},
		okBody: `{"status":"COMPLETE","results":[{"id":"101","properties":{"email":"ada@example.com"},"new":true}]}`,
		on401:  AuthFailed,
	},
	"mailchimp": {
		request: func(baseURL string) *Request {
			return &Request{
				DeliveryID: "dlv_conformance", Attempt: 1, Action: "mailchimp.upsert_member", Event: conformanceEvent,
				Payload:     json.RawMessage(`{"email_address":"ada@example.com","status_if_new":"subscribed","merge_fields":{"FNAME":"Ada"}}`),
				Options:     json.RawMessage(`{"list_id":"a1b2c3"}`),
				Config:      mustMarshal(map[string]any{"api_base": baseURL}),
				Credentials: Credentials{CredAPIKey: "0123456789abcdef0123456789abcdef-us6"},
			}
		},
		okBody: `{"id":"bf5ad8b4b2ae1a5ed4b1b1a4b5e4d9b7","email_address":"ada@example.com","status":"subscribed"}`,
		on401:  AuthFailed,
	},
	"intercom": {
		request: func(baseURL string) *Request {
			return &Request{
				DeliveryID: "dlv_conformance", Attempt: 1, Action: "intercom.upsert_contact", Event: conformanceEvent,
				Payload:     json.RawMessage(`{"email":"ada@example.com","name":"Ada","custom_attributes":{"plan":"pro"}}`),
				Config:      mustMarshal(map[string]any{"api_base": baseURL, "region": "eu"}),
				Credentials: Credentials{CredAccessToken: "dG9rOmNvbmZvcm1hbmNlLXRva2Vu"},
			}
		},
		// The same answer serves the search (no contact yet) and the create.
		okBody: `{"type":"list","data":[],"total_count":0}`,
		on401:  AuthFailed,
	},
	"slack": {
		request: func(baseURL string) *Request {
			return &Request{
				DeliveryID: "dlv_conformance", Attempt: 1, Action: "slack.post_message", Event: conformanceEvent,
				Payload:     json.RawMessage(`{"text":"New lead ada@example.com"}`),
				Options:     json.RawMessage(`{"channel":"C0123456789"}`),
				Config:      mustMarshal(map[string]any{"api_base": baseURL}),
				Credentials: Credentials{CredBotToken: "xoxb-1234-5678-conformance"},
			}
		},
		okBody: `{"ok":true,"channel":"C0123456789","ts":"1503435956.000247"}`,
		on401:  AuthFailed,
	},
	"segment": {
		request: func(baseURL string) *Request {
			return &Request{
				DeliveryID: "dlv_conformance", Attempt: 1, Action: "segment.track", Event: conformanceEvent,
				Payload:     json.RawMessage(`{"event":"Lead Created","userId":"u_1","properties":{"plan":"pro"}}`),
				Config:      mustMarshal(map[string]any{"api_base": baseURL}),
				Credentials: Credentials{CredWriteKey: "conformance-write-key"},
			}
		},
		okBody: `{"success":true}`,
		on401:  AuthFailed,
	},
}

var conformanceEvent = Event{
	ID:         "evt_conformance",
	Type:       "lead.created",
	OccurredAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	Data:       json.RawMessage(`{"email":"ada@example.com","name":"Ada"}`),
}

func mustMarshal(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

const redirectTarget = "/__redirect_target"

// conformanceCase is one clause of the contract, run against every connector.
type conformanceCase struct {
	name string
	// handler is the fake vendor's behaviour for this clause.
	handler func(fx conformanceFixture, srvURL func() string) http.HandlerFunc
	// timeout is the attempt's deadline (default 5s).
	timeout time.Duration
	check   func(t *testing.T, fx conformanceFixture, r Result, elapsed time.Duration)
}

func respondWith(code int, header ...string) func(conformanceFixture, func() string) http.HandlerFunc {
	return func(conformanceFixture, func() string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			for i := 0; i+1 < len(header); i += 2 {
				w.Header().Set(header[i], header[i+1])
			}
			w.WriteHeader(code)
			io.WriteString(w, `{"error":"fake"}`)
		}
	}
}

func expect(outcome Outcome, class string) func(*testing.T, conformanceFixture, Result, time.Duration) {
	return func(t *testing.T, _ conformanceFixture, r Result, _ time.Duration) {
		t.Helper()
		if r.Outcome != outcome || (class != "" && r.ErrorClass != class) {
			t.Errorf("got %s/%s (%s), want %s/%s", r.Outcome, r.ErrorClass, r.Message, outcome, class)
		}
	}
}

var conformanceCases = []conformanceCase{
	{
		name: "200 succeeds",
		handler: func(fx conformanceFixture, _ func() string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, fx.okBody)
			}
		},
		check: expect(Succeeded, ""),
	},
	{
		name: "deadline is respected",
		handler: func(conformanceFixture, func() string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done(): // the client hung up
				case <-time.After(10 * time.Second):
				}
			}
		},
		timeout: 300 * time.Millisecond,
		check: func(t *testing.T, fx conformanceFixture, r Result, elapsed time.Duration) {
			expect(Retry, ClassTimeout)(t, fx, r, elapsed)
			if elapsed > 1500*time.Millisecond {
				t.Errorf("took %s with a 300ms deadline", elapsed)
			}
		},
	},
	{name: "500 is retried", handler: respondWith(500), check: expect(Retry, ClassHTTP5xx)},
	{name: "503 is retried", handler: respondWith(503), check: expect(Retry, ClassHTTP5xx)},
	{name: "400 is permanent", handler: respondWith(400), check: expect(Permanent, "")},
	{name: "404 is permanent", handler: respondWith(404), check: expect(Permanent, "")},
	{
		name:    "401 per connector",
		handler: respondWith(401),
		check: func(t *testing.T, fx conformanceFixture, r Result, elapsed time.Duration) {
			expect(fx.on401, "")(t, fx, r, elapsed)
		},
	},
	{
		name:    "429 with Retry-After seconds",
		handler: respondWith(429, "Retry-After", "7"),
		check: func(t *testing.T, fx conformanceFixture, r Result, elapsed time.Duration) {
			expect(RateLimited, ClassRateLimited)(t, fx, r, elapsed)
			if r.RetryAfter != 7*time.Second {
				t.Errorf("RetryAfter = %s, want 7s", r.RetryAfter)
			}
		},
	},
	{
		name: "429 with Retry-After date",
		handler: func(conformanceFixture, func() string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", time.Now().Add(30*time.Second).UTC().Format(http.TimeFormat))
				w.WriteHeader(429)
			}
		},
		check: func(t *testing.T, fx conformanceFixture, r Result, elapsed time.Duration) {
			expect(RateLimited, ClassRateLimited)(t, fx, r, elapsed)
			if r.RetryAfter < 25*time.Second || r.RetryAfter > 31*time.Second {
				t.Errorf("RetryAfter = %s, want about 30s", r.RetryAfter)
			}
		},
	},
	{
		name: "302 is not followed",
		handler: func(_ conformanceFixture, srvURL func() string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == redirectTarget {
					return // counted by runConformanceCase, which fails the test
				}
				http.Redirect(w, r, srvURL()+redirectTarget, http.StatusFound)
			}
		},
		check: func(t *testing.T, fx conformanceFixture, r Result, elapsed time.Duration) {
			expect(Permanent, ClassRedirect)(t, fx, r, elapsed)
			if r.StatusCode != http.StatusFound {
				t.Errorf("StatusCode = %d, want 302", r.StatusCode)
			}
		},
	},
	{
		name: "secrets are redacted",
		handler: func(fx conformanceFixture, _ func() string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintf(w, "you sent %s %s\n", r.Method, r.URL)
				r.Header.Write(w)
				fmt.Fprintf(w, "\n%s\n", body)
				for _, s := range allSecrets(fx, fx.request("")) {
					fmt.Fprintf(w, "planted %s and Bearer %s and %q\n", s, s, s)
				}
			}
		},
		check: expect(Permanent, ""),
	},
	{
		name: "huge body is bounded",
		handler: func(fx conformanceFixture, _ func() string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, fx.okBody)
				for written := 0; written < 10<<20; written += len(hugeChunk) {
					if _, err := w.Write(hugeChunk); err != nil {
						return // the client hung up, as it should
					}
				}
			}
		},
		check: func(t *testing.T, fx conformanceFixture, r Result, elapsed time.Duration) {
			expect(Succeeded, "")(t, fx, r, elapsed)
			if len(r.Response) > MaxExcerpt {
				t.Errorf("Response is %d bytes, more than MaxExcerpt", len(r.Response))
			}
		},
	},
}

// hugeChunk is JSON whitespace, so a success body padded with it stays valid JSON.
var hugeChunk = []byte(strings.Repeat(" ", 32<<10))

// allSecrets lists what must never be stored: every credential value and the fixture's
// extra secrets.
func allSecrets(fx conformanceFixture, req *Request) []string {
	out := append([]string(nil), fx.secrets...)
	for _, v := range req.Credentials {
		if len(v) >= 8 { // skip values like expiry dates that are not secret
			out = append(out, v)
		}
	}
	return out
}

func TestConformance(t *testing.T) {
	// Not parallel: the huge-body case measures the process's allocations.
	client := NewHTTPClient(ClientOptions{AllowPrivate: true})
	permissive := DefaultWith(ClientOptions{AllowPrivate: true})

	for _, c := range Default().All() {
		fx, ok := conformanceFixtures[c.Kind()]
		if !ok {
			t.Errorf("connector %q has no entry in conformanceFixtures", c.Kind())
			continue
		}
		t.Run(c.Kind(), func(t *testing.T) {
			t.Run("fixture config is valid", func(t *testing.T) {
				req := fx.request("http://127.0.0.1:1")
				pc, _ := permissive.Get(c.Kind())
				if err := pc.ValidateConfig(req.Config, req.Credentials); err != nil {
					t.Fatal(err)
				}
				if _, _, ok := permissive.Action(req.Action); !ok {
					t.Fatalf("fixture action %q is not registered", req.Action)
				}
			})
			for _, tc := range conformanceCases {
				t.Run(tc.name, func(t *testing.T) {
					runConformanceCase(t, c, fx, tc, client)
				})
			}
		})
	}
}

func runConformanceCase(t *testing.T, c Connector, fx conformanceFixture, tc conformanceCase, client *http.Client) {
	var srv *httptest.Server
	var redirected atomic.Int64
	h := tc.handler(fx, func() string { return srv.URL })
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == redirectTarget {
			redirected.Add(1)
		}
		// Consume the body first: only then does the server watch the connection and
		// cancel r.Context() when the client hangs up.
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		h(w, r)
	}))
	defer srv.Close()

	req := fx.request(srv.URL)
	req.HTTP = client
	timeout := tc.timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	r := c.Send(ctx, req)
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)

	tc.check(t, fx, r, elapsed)
	if n := redirected.Load(); n != 0 {
		t.Errorf("redirect target requested %d times", n)
	}
	// Reading a 10 MiB body whole would allocate far more than this.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("Send allocated %d KiB", alloc>>10)
	}
	if len(r.Response) > MaxExcerpt {
		t.Errorf("Response is %d bytes", len(r.Response))
	}
	for _, s := range allSecrets(fx, req) {
		for field, v := range map[string]string{"Request": r.Request, "Response": r.Response, "Message": r.Message} {
			if strings.Contains(v, s) {
				t.Errorf("Result.%s contains the secret %q: %q", field, s, v)
			}
		}
	}
}
