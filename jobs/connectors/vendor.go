package connectors

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Credential keys of the vendor connectors (hubspot, mailchimp, intercom, slack, segment).
const (
	CredAccessToken  = "access_token"
	CredRefreshToken = "refresh_token"
	CredExpiresAt    = "expires_at" // RFC 3339; empty when the token does not expire
	CredAPIKey       = "api_key"
	CredBotToken     = "bot_token"
	CredWebhookURL   = "webhook_url"
	CredWriteKey     = "write_key"
)

// refreshSkew: an OAuth access token that expires within this is refreshed before use.
const refreshSkew = 2 * time.Minute

// maxVendorMessage bounds the vendor's own words kept in Result.Message.
const maxVendorMessage = 300

// accountInfo is the part of a vendor connection's config that the OAuth connect flow
// fills in: which account the tokens belong to. It is informational (shown in the
// dashboard, used to find the connection again on a reconnect).
type accountInfo struct {
	AccountID   string `json:"account_id,omitempty"`
	AccountName string `json:"account_name,omitempty"`
}

// decodeConfig decodes a connection's config strictly into v: unknown fields are errors,
// so a typo ("api_bsae") is reported when the connection is saved rather than ignored.
func decodeConfig(raw json.RawMessage, v any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &FieldError{Field: "config", Message: strings.TrimPrefix(err.Error(), "json: ")}
	}
	return nil
}

// apiBase returns the scheme://host[:port] that replaces the vendor's when config.api_base
// is set (a region, a compatible collector, a local fake), or def. The documented paths
// are appended by the connector, so api_base may not carry a path, query or fragment.
func apiBase(raw, def string) (string, error) {
	if raw == "" {
		return def, nil
	}
	u, err := parseDestination("config.api_base", raw)
	if err != nil {
		return "", err
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", &FieldError{Field: "config.api_base", Message: "must be scheme://host[:port] only; the API paths are added by the connector"}
	}
	return u.Scheme + "://" + u.Host, nil
}

// checkAPIBase validates config.api_base, when set, under the network policy, as the
// webhook connector does for its url.
func checkAPIBase(policy ClientOptions, raw string) error {
	if raw == "" {
		return nil
	}
	if _, err := apiBase(raw, ""); err != nil {
		return err
	}
	return policy.CheckURL(context.Background(), "config.api_base", raw)
}

// decodePayload decodes the mapped payload, an object; numbers stay json.Number so that
// they are sent exactly as mapped.
func decodePayload(raw json.RawMessage) (map[string]any, error) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, fmt.Errorf("the mapped payload must be a JSON object")
	}
	return m, nil
}

// decodeOptions decodes a rule action's options into v (unknown options are ignored: the
// rule API stores options as given).
func decodeOptions(raw json.RawMessage, v any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("options: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// stringField returns payload[key] as a trimmed string ("" when absent or null). Numbers
// and booleans are accepted as their JSON text.
func stringField(m map[string]any, key string) (string, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := scalarString(v)
	if !ok {
		return "", fmt.Errorf("mapping target %q must be a string, not %s", key, jsonKind(v))
	}
	return strings.TrimSpace(s), nil
}

// scalarString renders a JSON scalar as text.
func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	}
	return "", false
}

func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case nil:
		return "null"
	}
	return "a scalar"
}

func configFailure(err error) Result {
	return Result{Outcome: Permanent, ErrorClass: ClassConfig, Message: err.Error()}
}

func mappingFailure(err error) Result {
	return Result{Outcome: Permanent, ErrorClass: ClassMapping, Message: err.Error()}
}

// vendorHTTP makes the calls of one attempt, hiding the connection's secrets from
// everything it records.
type vendorHTTP struct {
	client *http.Client
	hidden []string
}

func newVendorHTTP(req *Request, extra ...string) *vendorHTTP {
	v := &vendorHTTP{client: req.HTTP}
	for k, s := range req.Credentials {
		if k != CredExpiresAt && s != "" {
			v.hidden = append(v.hidden, s)
		}
	}
	for _, s := range extra {
		if s != "" {
			v.hidden = append(v.hidden, s)
		}
	}
	return v
}

// hide adds secrets learnt during the attempt (a refreshed token).
func (v *vendorHTTP) hide(secrets ...string) {
	for _, s := range secrets {
		if s != "" {
			v.hidden = append(v.hidden, s)
		}
	}
}

func (v *vendorHTTP) redact(s string) string { return Redact(s, v.hidden...) }

// do sends one request. body, when not nil, is sent as JSON. The Result is Do's default
// classification, which the connector adjusts to its vendor.
func (v *vendorHTTP) do(ctx context.Context, method, rawURL string, body any, header http.Header) (Result, []byte, http.Header) {
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return mappingFailure(fmt.Errorf("encode request: %w", err)), nil, nil
		}
		rd = bytes.NewReader(b)
	}
	var req *http.Request
	var err error
	if rd != nil {
		req, err = http.NewRequestWithContext(ctx, method, rawURL, rd)
	} else {
		req, err = http.NewRequestWithContext(ctx, method, rawURL, nil)
	}
	if err != nil {
		return configFailure(fmt.Errorf("build request: invalid URL")), nil, nil
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	req.Header.Set("User-Agent", userAgent)
	var respHeader http.Header
	client := v.client
	if client == nil {
		client = defaultClient()
	}
	capture := &http.Client{Transport: headerCapture{next: client.Transport, header: &respHeader}, CheckRedirect: client.CheckRedirect, Jar: client.Jar, Timeout: client.Timeout}
	res, raw := Do(ctx, capture, req, v.redact)
	if respHeader == nil {
		respHeader = http.Header{}
	}
	return res, raw, respHeader
}

// headerCapture keeps the response headers of a round trip, which Do does not return but
// vendors use for rate limits (X-RateLimit-Reset, X-HubSpot-RateLimit-*).
type headerCapture struct {
	next   http.RoundTripper
	header *http.Header
}

func (h headerCapture) RoundTrip(req *http.Request) (*http.Response, error) {
	next := h.next
	if next == nil {
		next = http.DefaultTransport
	}
	resp, err := next.RoundTrip(req)
	if resp != nil {
		*h.header = resp.Header.Clone()
	}
	return resp, err
}

// setVendorMessage appends the vendor's explanation to a failed Result's message.
func (v *vendorHTTP) setVendorMessage(r *Result, detail string) {
	detail = strings.TrimSpace(detail)
	if detail == "" || r.Outcome == Succeeded {
		return
	}
	detail = v.redact(truncate(detail, maxVendorMessage))
	if r.Message == "" {
		r.Message = detail
		return
	}
	r.Message += ": " + detail
}

func bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// rateLimitWait reads a vendor's requested wait: Retry-After (seconds or HTTP date), then
// X-RateLimit-Reset, which is a Unix time at Intercom and a number of seconds at Segment
// (a value past 10^9 can only be a time).
func rateLimitWait(h http.Header, now time.Time) time.Duration {
	if d := ParseRetryAfter(h.Get("Retry-After"), now); d > 0 {
		return d
	}
	v := strings.TrimSpace(h.Get("X-RateLimit-Reset"))
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0
	}
	if n > 1_000_000_000 {
		return min(max(time.Unix(n, 0).Sub(now), time.Second), maxRetryAfter)
	}
	return min(time.Duration(n)*time.Second, maxRetryAfter)
}

// expiresSoon reports whether an RFC 3339 expiry is within refreshSkew of now. An empty or
// unreadable expiry never expires.
func expiresSoon(expiresAt string, now time.Time) bool {
	if expiresAt == "" {
		return false
	}
	t, err := time.Parse(time.RFC3339, expiresAt)
	if err != nil {
		return false
	}
	return t.Sub(now) < refreshSkew
}

// checkExpiresAt validates the optional expires_at credential.
func checkExpiresAt(creds Credentials) error {
	if v := creds[CredExpiresAt]; v != "" {
		if _, err := time.Parse(time.RFC3339, v); err != nil {
			return &FieldError{Field: "credentials." + CredExpiresAt, Message: "must be an RFC 3339 time"}
		}
	}
	return nil
}

// tokenCall is one vendor call made with a bearer token. It returns the classified
// Result and whether the vendor refused the token itself (expired, revoked, invalid):
// only then is a refresh worth trying.
type tokenCall func(token string) (res Result, rejected bool)

// bearerAuth runs call with the connection's token under tokenKey. With a refresh token
// and a configured OAuth app it refreshes first when the token expires within 2 minutes
// (best effort: a failed refresh ahead of time still tries the current token), and once
// after the vendor rejects the token. Refreshed credentials are returned in the Result for
// the engine to seal and store. A rejection that no refresh can cure is AuthFailed.
func bearerAuth(ctx context.Context, req *Request, v *vendorHTTP, p *OAuthProvider, tokenKey string, now time.Time, call tokenCall) Result {
	creds := req.Credentials
	token := creds[tokenKey]
	if token == "" {
		return configFailure(&FieldError{Field: "credentials." + tokenKey, Message: "is required"})
	}
	var renewed Credentials
	var early *refreshFailure
	canRefresh := creds[CredRefreshToken] != ""
	if canRefresh && expiresSoon(creds[CredExpiresAt], now) {
		if renewed, early = p.refreshCredentials(ctx, req.HTTP, v, creds, tokenKey); renewed != nil {
			token = renewed[tokenKey]
		}
	}
	res, rejected := call(token)
	if rejected && canRefresh && renewed == nil && early == nil {
		nc, fail := p.refreshCredentials(ctx, req.HTTP, v, creds, tokenKey)
		if fail != nil {
			return fail.Result
		}
		renewed = nc
		res, rejected = call(nc[tokenKey])
	}
	switch {
	case rejected && early != nil && early.Outcome != AuthFailed:
		// The token endpoint was only unavailable: no reason to disconnect.
		return early.Result
	case rejected:
		res.Outcome, res.ErrorClass = AuthFailed, ClassAuth
		if early != nil {
			res.Message += "; refreshing the token also failed: " + early.Message
		}
	case early != nil && early.dead && res.Outcome == Succeeded:
		// The vendor refused the refresh token but took the access token: new credentials
		// were given without one (a PATCH merges into the old). Forget the dead refresh
		// token and its expiry rather than fail a refresh on every attempt.
		renewed = make(Credentials, len(creds))
		for k, val := range creds {
			renewed[k] = val
		}
		delete(renewed, CredRefreshToken)
		delete(renewed, CredExpiresAt)
	}
	res.Credentials = renewed
	return res
}

// joinURL appends path segments, escaping each.
func joinURL(base string, segments ...string) string {
	var b strings.Builder
	b.WriteString(base)
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}
