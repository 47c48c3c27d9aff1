package connectors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		status     int
		header     http.Header
		outcome    Outcome
		class      string
		retryAfter time.Duration
	}{
		{200, nil, Succeeded, "", 0},
		{202, nil, Succeeded, "", 0},
		{204, nil, Succeeded, "", 0},
		{301, http.Header{"Location": {"https://elsewhere/"}}, Permanent, ClassRedirect, 0},
		{302, nil, Permanent, ClassRedirect, 0},
		{307, nil, Permanent, ClassRedirect, 0},
		{400, nil, Permanent, ClassHTTP4xx, 0},
		{401, nil, Permanent, ClassHTTP4xx, 0},
		{403, nil, Permanent, ClassHTTP4xx, 0},
		{404, nil, Permanent, ClassHTTP4xx, 0},
		{408, nil, Retry, ClassHTTP4xx, 0},
		{410, nil, Permanent, ClassHTTP4xx, 0},
		{422, nil, Permanent, ClassHTTP4xx, 0},
		{425, nil, Retry, ClassHTTP4xx, 0},
		{429, nil, RateLimited, ClassRateLimited, 0},
		{429, http.Header{"Retry-After": {"7"}}, RateLimited, ClassRateLimited, 7 * time.Second},
		{429, http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, RateLimited, ClassRateLimited, 90 * time.Second},
		{500, nil, Retry, ClassHTTP5xx, 0},
		{502, nil, Retry, ClassHTTP5xx, 0},
		{503, http.Header{"Retry-After": {"120"}}, Retry, ClassHTTP5xx, 2 * time.Minute},
		{504, nil, Retry, ClassHTTP5xx, 0},
		{599, nil, Retry, ClassHTTP5xx, 0},
		{600, nil, Retry, ClassConnection, 0},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			r := Classify(tc.status, tc.header, now)
			if r.Outcome != tc.outcome || r.ErrorClass != tc.class || r.RetryAfter != tc.retryAfter || r.StatusCode != tc.status {
				t.Errorf("got %+v, want %s/%s retry after %s", r, tc.outcome, tc.class, tc.retryAfter)
			}
			if (r.Outcome == Succeeded) != (r.Message == "") {
				t.Errorf("message %q for outcome %s", r.Message, r.Outcome)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"7", 7 * time.Second},
		{" 30 ", 30 * time.Second},
		{"86400", 24 * time.Hour},
		{"99999999999999999999999", maxRetryAfter},
		{"-5", 0},
		{"+5", 0},
		{"1.5", 0},
		{"soon", 0},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{"Sun, 01 Mar 2026 12:01:00 GMT", time.Minute},
		{"Sunday, 01-Mar-26 12:01:00 GMT", time.Minute}, // RFC 850
		{"Sun Mar  1 12:01:00 2026", time.Minute},       // ANSI C
		{"Sun, 01 Mar 2026 11:59:00 GMT", 0},            // past
		{"Sun, 01 Mar 2099 12:00:00 GMT", maxRetryAfter},
		{"Sun, 32 Mar 2026 12:00:00 GMT", 0},
	}
	for _, tc := range tests {
		if got := ParseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("ParseRetryAfter(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestClassifyError(t *testing.T) {
	t.Parallel()
	wrapURL := func(err error) error {
		return &url.Error{Op: "Post", URL: "https://hooks.slack.com/services/T/B/SECRETPATH", Err: err}
	}
	tests := []struct {
		name    string
		err     error
		outcome Outcome
		class   string
	}{
		{"deadline", wrapURL(context.DeadlineExceeded), Retry, ClassTimeout},
		{"net timeout", wrapURL(&net.OpError{Op: "dial", Net: "tcp", Err: timeoutErr{}}), Retry, ClassTimeout},
		{"refused", wrapURL(&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}), Retry, ClassConnection},
		{"eof", wrapURL(io.EOF), Retry, ClassConnection},
		{"dns", wrapURL(&net.DNSError{Err: "no such host", Name: "x.test", IsNotFound: true}), Retry, ClassConnection},
		{"canceled", wrapURL(context.Canceled), Retry, ClassConnection},
		{"blocked", wrapURL(&net.OpError{Op: "dial", Net: "tcp", Err: fmt.Errorf("%w: nope", ErrBlocked)}), Permanent, ClassBlocked},
	}
	for _, tc := range tests {
		r := ClassifyError(tc.err)
		if r.Outcome != tc.outcome || r.ErrorClass != tc.class {
			t.Errorf("%s: got %s/%s, want %s/%s", tc.name, r.Outcome, r.ErrorClass, tc.outcome, tc.class)
		}
		if strings.Contains(r.Message, "SECRETPATH") {
			t.Errorf("%s: message repeats the URL: %q", tc.name, r.Message)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestRedact(t *testing.T) {
	t.Parallel()
	const secret = "sk_live_a+b/c=="
	tests := []struct {
		in, want string
	}{
		{"token " + secret + " end", "token [REDACTED] end"},
		{"q=sk_live_a%2Bb%2Fc%3D%3D", "q=[REDACTED]"},
		{`{"k":"sk_live_a+b/c=="}`, `{"k":"[REDACTED]"}`},
		{"Authorization: Bearer abc.def-ghi_jkl~", "Authorization: Bearer [REDACTED]"},
		{"authorization: basic dXNlcjpwYXNz", "authorization: basic [REDACTED]"},
		{"secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw here", "secret [REDACTED] here"},
		{"xoxb-1234-5678-abcdef", "[REDACTED]"},
		{"nothing to see", "nothing to see"},
	}
	for _, tc := range tests {
		if got := Redact(tc.in, secret, ""); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := Redact("abcdef abc", "abc", "abcdef"); got != "[REDACTED] [REDACTED]" {
		t.Errorf("nested secrets: %q", got)
	}
}

func TestExcerpt(t *testing.T) {
	t.Parallel()
	if got := Excerpt([]byte("short")); got != "short" {
		t.Errorf("short: %q", got)
	}
	long := strings.Repeat("a", MaxExcerpt-1) + "é" + "tail" // é straddles the limit
	got := Excerpt([]byte(long))
	if len(got) > MaxExcerpt || !utf8.ValidString(got) || got != strings.Repeat("a", MaxExcerpt-1) {
		t.Errorf("cut: len %d valid %v", len(got), utf8.ValidString(got))
	}
	if got := Excerpt([]byte("a\x00b\xffc")); got != "a\uFFFDb\uFFFDc" {
		t.Errorf("sanitise: %q", got)
	}
	bin := make([]byte, 3*MaxExcerpt)
	for i := range bin {
		bin[i] = byte(i)
	}
	if got := Excerpt(bin); len(got) > MaxExcerpt || !utf8.ValidString(got) || strings.ContainsRune(got, 0) {
		t.Errorf("binary: len %d", len(got))
	}
}

// TestDo checks what Do returns: a bounded raw body, a redacted excerpt and summary
// without query or user info.
func TestDo(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"bad key s3cr3t-value"}`+strings.Repeat("x", 3*MaxBody))
	}))
	t.Cleanup(srv.Close)
	client := NewHTTPClient(ClientOptions{AllowPrivate: true})
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/things?api_key=s3cr3t-value", strings.NewReader("{}"))
	r, body := Do(t.Context(), client, req, func(s string) string { return Redact(s, "s3cr3t-value") })

	if r.Outcome != Permanent || r.StatusCode != 400 {
		t.Fatalf("got %+v", r)
	}
	if want := "POST " + srv.URL + "/v1/things"; r.Request != want {
		t.Errorf("Request = %q, want %q", r.Request, want)
	}
	if len(body) != MaxBody || !strings.Contains(string(body), "s3cr3t-value") {
		t.Errorf("raw body: len %d", len(body))
	}
	if len(r.Response) > MaxExcerpt || !strings.HasPrefix(r.Response, `{"error":"bad key [REDACTED]"}`) {
		t.Errorf("Response = %.60q… (len %d)", r.Response, len(r.Response))
	}
}
