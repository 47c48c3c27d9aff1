package connectors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// oauthToken is a token endpoint's answer, whatever its spelling: RFC 6749 snake_case,
// the camelCase of HubSpot's dated endpoints, or Intercom's "token".
type oauthToken struct {
	AccessToken  string
	RefreshToken string
	ExpiresIn    int64
	Raw          map[string]any // the whole answer, for vendor extras (Slack's team)
	obtained     time.Time
}

// OAuthError is a token endpoint's refusal.
type OAuthError struct {
	Status      int    // HTTP status (200 for Slack's ok:false)
	Code        string // "invalid_grant", "BAD_REFRESH_TOKEN", "invalid_code", …
	Description string
}

func (e *OAuthError) Error() string {
	msg := fmt.Sprintf("token endpoint answered %d", e.Status)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Description != "" {
		msg += ": " + e.Description
	}
	return msg
}

// transientOAuthCodes are refusals that say "later" rather than "no".
var transientOAuthCodes = map[string]bool{
	"temporarily_unavailable": true, "server_error": true, "internal_error": true,
	"service_unavailable": true, "ratelimited": true, "rate_limited": true, "request_timeout": true,
}

// result classifies a refused refresh: 429 and rate-limit codes wait, 5xx and
// transient codes retry, anything else (invalid_grant, a revoked refresh token, a bad
// client) needs the user to reconnect.
func (e *OAuthError) result() Result {
	r := Result{StatusCode: e.Status, Message: e.Error()}
	switch {
	case e.Status == http.StatusTooManyRequests || e.Code == "ratelimited" || e.Code == "rate_limited":
		r.Outcome, r.ErrorClass = RateLimited, ClassRateLimited
	case e.Status >= 500 || transientOAuthCodes[e.Code]:
		r.Outcome, r.ErrorClass = Retry, ClassHTTP5xx
	default:
		r.Outcome, r.ErrorClass = AuthFailed, ClassAuth
	}
	return r
}

// tokenRequest posts a token grant with the app's client credentials and parses the
// answer.
func (p *OAuthProvider) tokenRequest(ctx context.Context, client *http.Client, form url.Values) (*oauthToken, error) {
	if p.spec.basicAuth {
		form.Del("client_id")
		form.Del("client_secret")
	} else {
		form.Set("client_id", p.app.ClientID)
		form.Set("client_secret", p.app.ClientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.app.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("oauth: token URL: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if p.spec.basicAuth {
		// RFC 6749 §2.3.1: the client id and secret are form-encoded before Basic.
		req.SetBasicAuth(url.QueryEscape(p.app.ClientID), url.QueryEscape(p.app.ClientSecret))
	}
	obtained := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	tok, perr := parseOAuthToken(body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, oauthErrorFrom(resp.StatusCode, tok.Raw)
	}
	if ok, present := tok.Raw["ok"].(bool); present && !ok { // Slack
		return nil, oauthErrorFrom(resp.StatusCode, tok.Raw)
	}
	if perr != nil || tok.AccessToken == "" {
		return nil, &OAuthError{Status: resp.StatusCode, Code: "invalid_response", Description: "the answer has no access token"}
	}
	tok.obtained = obtained
	return &tok, nil
}

func parseOAuthToken(body []byte) (oauthToken, error) {
	var raw map[string]any
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return oauthToken{Raw: map[string]any{}}, err
	}
	tok := oauthToken{
		AccessToken:  firstString(raw, "access_token", "accessToken", "token"),
		RefreshToken: firstString(raw, "refresh_token", "refreshToken"),
		Raw:          raw,
	}
	for _, k := range []string{"expires_in", "expiresIn"} {
		if n, ok := jsonInt(raw[k]); ok {
			tok.ExpiresIn = n
			break
		}
	}
	return tok, nil
}

func oauthErrorFrom(status int, raw map[string]any) *OAuthError {
	return &OAuthError{
		Status:      status,
		Code:        firstString(raw, "error", "status", "category"),
		Description: truncate(firstString(raw, "error_description", "message"), maxVendorMessage),
	}
}

// firstString returns the first of keys that holds a non-empty string.
func firstString(m map[string]any, keys ...string) string {
	for _, k := range keys {
		if s, ok := m[k].(string); ok && s != "" {
			return s
		}
	}
	return ""
}

// jsonInt reads a JSON number, or a string holding one.
func jsonInt(v any) (int64, bool) {
	switch x := v.(type) {
	case json.Number:
		n, err := x.Int64()
		if err != nil {
			f, ferr := x.Float64()
			return int64(f), ferr == nil
		}
		return n, true
	case float64:
		return int64(x), true
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		return n, err == nil
	}
	return 0, false
}

// getJSON makes an authenticated GET of the connect flow and decodes the answer.
func (p *OAuthProvider) getJSON(ctx context.Context, rawURL string, header http.Header, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return fmt.Errorf("metadata URL: %w", err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	resp, err := p.client.Do(req)
	if err != nil {
		var ue *url.Error // its text repeats the URL, which may carry the token
		if errors.As(err, &ue) {
			return fmt.Errorf("account endpoint: %w", ue.Err)
		}
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("account endpoint answered %d", resp.StatusCode)
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("account endpoint: decode the answer: %w", err)
	}
	return nil
}
