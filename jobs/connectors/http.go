package connectors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Response body limits: Do keeps at most MaxBody bytes (enough for any vendor's error
// JSON), then drains up to maxBodyDrain more so the connection can be reused; anything
// longer is cut off by closing the connection.
const (
	MaxBody      = 4 * MaxExcerpt
	maxBodyDrain = 64 << 10
)

// maxRetryAfter caps a destination's requested wait; beyond a week it is noise, and the
// cap keeps time arithmetic far from overflow.
const maxRetryAfter = 7 * 24 * time.Hour

// Do sends req with client under ctx and classifies the answer with Classify (or the
// error with ClassifyError). It reads at most MaxBody bytes of the response and returns
// them raw for the connector to inspect (Slack's ok:false, error codes); the Result's
// Request summary, Message and Response excerpt are passed through redact. A nil client
// means the strict default client; a nil redact still applies Redact's patterns. Do does
// not measure duration: the engine does.
func Do(ctx context.Context, client *http.Client, req *http.Request, redact func(string) string) (Result, []byte) {
	if client == nil {
		client = defaultClient()
	}
	if redact == nil {
		redact = func(s string) string { return Redact(s) }
	}
	req = req.WithContext(ctx)
	summary := redact(req.Method + " " + summarizeURL(req.URL))

	resp, err := client.Do(req)
	if err != nil {
		r := ClassifyError(err)
		r.Request = summary
		r.Message = redact(r.Message)
		return r, nil
	}
	defer resp.Body.Close()
	// A body that fails half-way (deadline, reset) still leaves a status to judge by.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBodyDrain))

	r := Classify(resp.StatusCode, resp.Header, time.Now())
	r.Request = summary
	r.Message = redact(r.Message)
	// Redact before cutting so that a secret is never left half-visible at the cut.
	r.Response = Excerpt([]byte(redact(string(body))))
	return r, body
}

// summarizeURL renders scheme://host/path: no user info and no query, where API keys
// like to hide.
func summarizeURL(u *url.URL) string {
	s := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return s.String()
}

// Classify is the default classification of an HTTP status:
//
//	2xx                Succeeded
//	408, 425           Retry, ClassHTTP4xx
//	429                RateLimited, ClassRateLimited, RetryAfter from Retry-After
//	5xx                Retry, ClassHTTP5xx (RetryAfter set if the server sent one)
//	3xx                Permanent, ClassRedirect: redirects are never followed, since a
//	                   destination that moved must be re-configured, and following one
//	                   could lead the request somewhere the saved URL was not checked for
//	other 4xx          Permanent, ClassHTTP4xx (401 and 403 too; vendor connectors turn
//	                   their authentication failures into AuthFailed themselves)
//
// Connectors adjust the Result where their vendor differs.
func Classify(status int, header http.Header, now time.Time) Result {
	r := Result{StatusCode: status, Message: statusLine(status)}
	switch {
	case status >= 200 && status < 300:
		r.Outcome, r.Message = Succeeded, ""
	case status == http.StatusTooManyRequests:
		r.Outcome, r.ErrorClass = RateLimited, ClassRateLimited
		r.RetryAfter = ParseRetryAfter(header.Get("Retry-After"), now)
	case status == http.StatusRequestTimeout || status == http.StatusTooEarly:
		r.Outcome, r.ErrorClass = Retry, ClassHTTP4xx
	case status >= 500 && status < 600:
		r.Outcome, r.ErrorClass = Retry, ClassHTTP5xx
		r.RetryAfter = ParseRetryAfter(header.Get("Retry-After"), now)
	case status >= 300 && status < 400:
		r.Outcome, r.ErrorClass = Permanent, ClassRedirect
		r.Message += ": redirect not followed"
		if loc := header.Get("Location"); loc != "" {
			r.Message += " (to " + truncate(loc, 200) + ")"
		}
	case status == http.StatusGone:
		r.Outcome, r.ErrorClass = Permanent, ClassHTTP4xx
		r.Message += ": the destination asks not to be sent more"
	case status >= 400 && status < 500:
		r.Outcome, r.ErrorClass = Permanent, ClassHTTP4xx
	default:
		r.Outcome, r.ErrorClass = Retry, ClassConnection
		r.Message = fmt.Sprintf("unexpected HTTP status %d", status)
	}
	return r
}

// ClassifyError classifies a failed round trip: a refused destination is Permanent
// ClassBlocked; a deadline or network timeout is Retry ClassTimeout; anything else
// (refused, reset, EOF, DNS, TLS) is Retry ClassConnection.
func ClassifyError(err error) Result {
	msg := err.Error()
	var ue *url.Error // its text repeats the URL, which may carry secrets
	if errors.As(err, &ue) {
		msg = ue.Err.Error()
	}
	var ne net.Error
	switch {
	case errors.Is(err, ErrBlocked):
		return Result{Outcome: Permanent, ErrorClass: ClassBlocked, Message: msg}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return Result{Outcome: Retry, ErrorClass: ClassTimeout, Message: "timed out: " + msg}
	case errors.Is(err, context.Canceled):
		return Result{Outcome: Retry, ErrorClass: ClassConnection, Message: "canceled before an answer"}
	default:
		return Result{Outcome: Retry, ErrorClass: ClassConnection, Message: msg}
	}
}

// ParseRetryAfter reads a Retry-After value: delta-seconds or an HTTP-date. A date in
// the past, a negative or malformed value gives 0; waits are capped at a week.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if strings.Trim(v, "0123456789") == "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter // only overflow makes ParseUint fail on digits
		}
		return time.Duration(n) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return min(max(t.Sub(now), 0), maxRetryAfter)
}

func statusLine(status int) string {
	if text := http.StatusText(status); text != "" {
		return strconv.Itoa(status) + " " + text
	}
	return "HTTP " + strconv.Itoa(status)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return Excerpt([]byte(s[:n]))
}
