package connectors

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Slack posts messages (VENDOR_APIS.md §4): with a bot token through chat.postMessage,
// whose failures come back as HTTP 200 {"ok": false, "error": "<code>"} and are classified
// by code; or through an incoming webhook, whose secret URL is the credential and whose
// errors are plain text.
//
// Config: {"api_base": "https://slack.com"} (optional; the Web API host) plus account_id
// and account_name from the OAuth connect. Credentials: bot_token (OAuth v2; with token
// rotation also refresh_token and expires_at), or webhook_url.
type Slack struct {
	policy ClientOptions
	oauth  *OAuthProvider
	now    func() time.Time
}

// NewSlack returns the Slack connector; oauth (may be nil) is its OAuth v2 flow and
// refreshes rotated tokens.
func NewSlack(opts ClientOptions, oauth *OAuthProvider) *Slack {
	return &Slack{policy: opts, oauth: oauth, now: time.Now}
}

var slackOAuth = oauthSpec{
	kind:        "slack",
	displayName: "Slack",
	authURL:     "https://slack.com/oauth/v2/authorize",
	tokenURL:    "https://slack.com/api/oauth.v2.access",
	// chat:write.public posts to public channels without joining; the read scopes list
	// channels for the rule builder.
	scopes:      []string{"chat:write", "chat:write.public", "channels:read", "groups:read"},
	scopeSep:    ",",
	pkce:        true,
	basicAuth:   true,
	refreshable: true, // with token rotation
	tokenKey:    CredBotToken,
	account:     slackAccount,
}

const slackDefaultBase = "https://slack.com"

// Slack error codes (§4.1) by what they mean for a delivery; any other code is permanent.
var (
	// slackTokenErrors refuse the token; a refresh may cure them when rotation is on.
	slackTokenErrors = map[string]bool{"invalid_auth": true, "token_expired": true}
	// slackAuthErrors need the user to reconnect.
	slackAuthErrors = map[string]bool{
		"not_authed": true, "account_inactive": true, "token_revoked": true, "missing_scope": true,
		"no_permission": true, "team_access_not_granted": true, "ekm_access_denied": true,
		"not_allowed_token_type": true, "org_login_required": true,
	}
	slackTransientErrors = map[string]bool{
		"internal_error": true, "fatal_error": true, "service_unavailable": true, "request_timeout": true,
	}
	slackRateErrors = map[string]bool{"ratelimited": true, "rate_limited": true}
	// slackWebhookAuthErrors mean the webhook was removed or its app uninstalled.
	slackWebhookAuthErrors = map[string]bool{
		"no_service": true, "no_service_id": true, "no_team": true, "team_disabled": true, "invalid_token": true,
	}
)

// slackRateLimitWait applies to ok:false ratelimited without Retry-After.
const slackRateLimitWait = 5 * time.Second

// Kind returns "slack".
func (*Slack) Kind() string { return "slack" }

// Info describes the Slack kind.
func (*Slack) Info() Info {
	return Info{
		Kind:             "slack",
		DisplayName:      "Slack",
		AuthModes:        []AuthMode{AuthOAuth, AuthAPIKey},
		CredentialFields: []string{CredBotToken, CredRefreshToken, CredExpiresAt, CredWebhookURL},
		Actions: []Action{{
			Name:        "slack.post_message",
			DisplayName: "Post a message",
			Fields: []Field{
				{Name: "text", Type: "string", Required: true, Help: `A template, e.g. "New lead {{ data.email }}"; the notification text when blocks are mapped.`},
				{Name: "blocks", Type: "array", Help: "Block Kit blocks."},
				{Name: "thread_ts", Type: "string", Help: "Reply in this thread."},
				{Name: "channel", Type: "string", Help: "Overrides options.channel (bot tokens only)."},
				{Name: "unfurl_links", Type: "boolean"},
				{Name: "unfurl_media", Type: "boolean"},
			},
			Options: []Field{
				{Name: "channel", Type: "string", Help: "Channel id (C…) or name; required with a bot token, unused with a webhook URL (which has its channel)."},
			},
		}},
	}
}

// OAuthProvider returns the provider of the Slack app, or nil.
func (s *Slack) OAuthProvider() *OAuthProvider { return s.oauth }

type slackConfig struct {
	APIBase string `json:"api_base,omitempty"`
	accountInfo
}

func parseSlackConfig(raw json.RawMessage) (slackConfig, string, error) {
	var cfg slackConfig
	if err := decodeConfig(raw, &cfg); err != nil {
		return cfg, "", err
	}
	base, err := apiBase(cfg.APIBase, slackDefaultBase)
	return cfg, base, err
}

// ValidateConfig checks api_base and webhook_url under the network policy, and that a
// bot token or a webhook URL is present.
func (s *Slack) ValidateConfig(config json.RawMessage, creds Credentials) error {
	cfg, _, err := parseSlackConfig(config)
	if err != nil {
		return err
	}
	if err := checkAPIBase(s.policy, cfg.APIBase); err != nil {
		return err
	}
	if hook := creds[CredWebhookURL]; hook != "" {
		return s.policy.CheckURL(context.Background(), "credentials."+CredWebhookURL, hook)
	}
	if creds[CredBotToken] == "" {
		return &FieldError{Field: "credentials." + CredBotToken, Message: "is required, or a webhook_url (connect with OAuth to get a bot token)"}
	}
	return checkExpiresAt(creds)
}

type slackOptions struct {
	Channel string `json:"channel"`
}

// Send posts the mapped message.
func (s *Slack) Send(ctx context.Context, req *Request) Result {
	_, base, err := parseSlackConfig(req.Config)
	if err != nil {
		return configFailure(err)
	}
	msg, err := decodePayload(req.Payload)
	if err != nil {
		return mappingFailure(err)
	}
	text, err := stringField(msg, "text")
	if err != nil {
		return mappingFailure(err)
	}
	if text == "" && msg["blocks"] == nil {
		return mappingFailure(fmt.Errorf("text is empty"))
	}
	channel, err := stringField(msg, "channel")
	if err != nil {
		return mappingFailure(err)
	}
	delete(msg, "channel")
	if hook := req.Credentials[CredWebhookURL]; hook != "" {
		return s.sendWebhook(ctx, req, hook, msg)
	}
	if channel == "" {
		var opts slackOptions
		if err := decodeOptions(req.Options, &opts); err != nil {
			return configFailure(err)
		}
		channel = strings.TrimSpace(opts.Channel)
	}
	if channel == "" {
		return configFailure(&FieldError{Field: "options.channel", Message: "is required"})
	}
	msg["channel"] = channel
	v := newVendorHTTP(req)
	now := s.now()
	return bearerAuth(ctx, req, v, s.oauth, CredBotToken, now, func(token string) (Result, bool) {
		h := bearer(token)
		h.Set("Content-Type", "application/json; charset=utf-8")
		res, raw, hdr := v.do(ctx, http.MethodPost, base+"/api/chat.postMessage", msg, h)
		return slackClassify(v, res, raw, hdr, now)
	})
}

// Test checks a bot token with auth.test. A webhook has no harmless call, so Test posts
// an empty message, which Slack refuses with 400 no_text while the webhook exists and
// with 404 no_service once it is gone: nothing reaches the channel.
func (s *Slack) Test(ctx context.Context, req *Request) Result {
	if hook := req.Credentials[CredWebhookURL]; hook != "" {
		res := s.sendWebhook(ctx, req, hook, map[string]any{})
		if res.StatusCode == http.StatusBadRequest || res.Outcome == Succeeded {
			res.Outcome, res.ErrorClass, res.Message = Succeeded, "", "the webhook exists (Slack refused the empty test message, as it should)"
		}
		return res
	}
	_, base, err := parseSlackConfig(req.Config)
	if err != nil {
		return configFailure(err)
	}
	v := newVendorHTTP(req)
	now := s.now()
	return bearerAuth(ctx, req, v, s.oauth, CredBotToken, now, func(token string) (Result, bool) {
		res, raw, hdr := v.do(ctx, http.MethodPost, base+"/api/auth.test", nil, bearer(token))
		return slackClassify(v, res, raw, hdr, now)
	})
}

// ListOptions lists the channels the bot can see, for the channel option.
func (s *Slack) ListOptions(ctx context.Context, req *Request, option string) ([]Option, error) {
	if option != "channel" {
		return nil, &FieldError{Field: "option", Message: fmt.Sprintf("slack has no list for %q", option)}
	}
	if req.Credentials[CredWebhookURL] != "" {
		return nil, &FieldError{Field: "option", Message: "a webhook posts to the channel it was created for"}
	}
	_, base, err := parseSlackConfig(req.Config)
	if err != nil {
		return nil, err
	}
	token := req.Credentials[CredBotToken]
	if token == "" {
		return nil, &FieldError{Field: "credentials." + CredBotToken, Message: "is required"}
	}
	v := newVendorHTTP(req)
	var out []Option
	cursor := ""
	for page := 0; page < 10; page++ {
		q := url.Values{"types": {"public_channel,private_channel"}, "exclude_archived": {"true"}, "limit": {"200"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		res, raw, hdr := v.do(ctx, http.MethodGet, base+"/api/conversations.list?"+q.Encode(), nil, bearer(token))
		if res, _ = slackClassify(v, res, raw, hdr, time.Now()); res.Outcome != Succeeded {
			return nil, fmt.Errorf("list channels: %s", res.Message)
		}
		var body struct {
			Channels []struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"channels"`
			Meta struct {
				NextCursor string `json:"next_cursor"`
			} `json:"response_metadata"`
		}
		if err := json.Unmarshal(raw, &body); err != nil {
			return nil, fmt.Errorf("list channels: unreadable answer")
		}
		for _, c := range body.Channels {
			out = append(out, Option{Value: c.ID, Label: "#" + c.Name})
		}
		if cursor = body.Meta.NextCursor; cursor == "" {
			break
		}
	}
	return out, nil
}

func (s *Slack) sendWebhook(ctx context.Context, req *Request, hook string, msg map[string]any) Result {
	u, err := parseDestination("credentials."+CredWebhookURL, hook)
	if err != nil {
		return configFailure(err)
	}
	// The URL is the secret: hide its path and query, not the whole URL, so the attempt
	// still shows the host it went to.
	v := &vendorHTTP{client: req.HTTP}
	for k, val := range req.Credentials {
		if k != CredWebhookURL && k != CredExpiresAt {
			v.hide(val)
		}
	}
	v.hide(strings.TrimPrefix(u.EscapedPath(), "/"), strings.TrimPrefix(u.Path, "/"), u.RawQuery)
	if i := strings.LastIndexByte(u.Path, '/'); i >= 0 && len(u.Path)-i > 1 {
		v.hide(u.Path[i+1:])
	}
	res, raw, hdr := v.do(ctx, http.MethodPost, hook, msg, nil)
	if res.StatusCode == 0 || res.Outcome == Succeeded {
		return res
	}
	code := strings.TrimSpace(string(raw))
	if len(code) > 64 || strings.ContainsAny(code, " \n{") {
		code = ""
	}
	switch {
	case slackWebhookAuthErrors[code], res.StatusCode == http.StatusUnauthorized:
		res.Outcome, res.ErrorClass = AuthFailed, ClassAuth
	case res.StatusCode == http.StatusTooManyRequests:
		res.RetryAfter = rateLimitWait(hdr, s.now())
	}
	v.setVendorMessage(&res, code)
	return res
}

// slackClassify reads chat.postMessage's answer: HTTP 429 waits for Retry-After, and an
// HTTP 200 with ok:false is classified by its error code. It reports whether the token
// was refused in a way a refresh might cure.
func slackClassify(v *vendorHTTP, res Result, raw []byte, hdr http.Header, now time.Time) (Result, bool) {
	if res.StatusCode == 0 {
		return res, false
	}
	if res.StatusCode == http.StatusUnauthorized {
		res.Outcome, res.ErrorClass = AuthFailed, ClassAuth
		return res, true
	}
	if res.Outcome != Succeeded {
		return res, false
	}
	var body struct {
		OK     *bool  `json:"ok"`
		Error  string `json:"error"`
		Needed string `json:"needed"`
	}
	if err := json.Unmarshal(raw, &body); err != nil || body.OK == nil {
		res.Outcome, res.ErrorClass, res.Message = Retry, ClassVendor, "Slack answered 200 without its ok field"
		return res, false
	}
	if *body.OK {
		return res, false
	}
	code := body.Error
	res.Message = "Slack refused: " + v.redact(truncate(code, 100))
	if body.Needed != "" {
		res.Message += " (needs " + v.redact(truncate(body.Needed, 100)) + ")"
	}
	res.ErrorClass = ClassVendor
	switch {
	case slackRateErrors[code]:
		res.Outcome, res.ErrorClass = RateLimited, ClassRateLimited
		if res.RetryAfter = rateLimitWait(hdr, now); res.RetryAfter == 0 {
			res.RetryAfter = slackRateLimitWait
		}
	case slackTokenErrors[code]:
		res.Outcome, res.ErrorClass = AuthFailed, ClassAuth
		return res, true
	case slackAuthErrors[code]:
		res.Outcome, res.ErrorClass = AuthFailed, ClassAuth
	case slackTransientErrors[code]:
		res.Outcome = Retry
	default: // channel_not_found, not_in_channel, is_archived, msg_too_long, invalid_blocks, …
		res.Outcome = Permanent
	}
	return res, false
}

// slackAccount names the workspace from the oauth.v2.access answer (team, or enterprise
// for an org-wide install); Slack needs no metadata call.
func slackAccount(_ context.Context, _ *OAuthProvider, tok *oauthToken) (OAuthAccount, error) {
	if tt, _ := tok.Raw["token_type"].(string); tt != "" && tt != "bot" {
		return OAuthAccount{}, fmt.Errorf("expected a bot token, got a %s token", tt)
	}
	var acct OAuthAccount
	for _, k := range []string{"team", "enterprise"} {
		if t, ok := tok.Raw[k].(map[string]any); ok {
			acct.ID, _ = t["id"].(string)
			acct.Name, _ = t["name"].(string)
			if acct.ID != "" {
				break
			}
		}
	}
	acct.Config = map[string]any{}
	return acct, nil
}
