package connectors_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/jobs/connectors"
	"github.com/fanout-dev/fanout/jobs/connectors/fakes"
)

func slackRequest(f *fakes.Slack, payload string, creds connectors.Credentials) *connectors.Request {
	return &connectors.Request{
		Action: "slack.post_message", Payload: json.RawMessage(payload), Options: json.RawMessage(`{"channel":"C0GENERAL"}`),
		Config: raw(map[string]string{"api_base": f.URL}), Credentials: creds, HTTP: loopbackClient,
	}
}

func TestSlackPostMessage(t *testing.T) {
	t.Parallel()
	f := fakes.NewSlack(t, nil)
	f.Tokens.Add("xoxb-bot", 0, "chat:write")
	c := connectors.NewSlack(loopback, nil)
	r := send(t, c, slackRequest(f, `{"text":"New lead ada@example.com"}`, connectors.Credentials{connectors.CredBotToken: "xoxb-bot"}))
	expectOutcome(t, r, connectors.Succeeded, "")
	calls := f.Calls(http.MethodPost, "/api/chat.postMessage")
	if len(calls) != 1 {
		t.Fatalf("%d posts", len(calls))
	}
	if h := calls[0].Header.Get("Authorization"); h != "Bearer xoxb-bot" {
		t.Errorf("Authorization %q", h)
	}
	if ct := calls[0].Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	jsonEqual(t, calls[0].Body, `{"channel":"C0GENERAL","text":"New lead ada@example.com"}`)
	if m := f.Messages(); len(m) != 1 || m[0].Channel != "C0GENERAL" || m[0].Text != "New lead ada@example.com" {
		t.Errorf("messages %+v", m)
	}
	noSecrets(t, r, "xoxb-bot")

	// A mapped channel overrides the option.
	f.AddChannel("C0SALES", "sales", false)
	expectOutcome(t, send(t, c, slackRequest(f, `{"text":"hi","channel":"C0SALES"}`, connectors.Credentials{connectors.CredBotToken: "xoxb-bot"})), connectors.Succeeded, "")
	if m := f.Messages(); m[1].Channel != "C0SALES" {
		t.Errorf("posted to %s", m[1].Channel)
	}
}

// TestSlackOKFalse: HTTP 200 {"ok":false} is a failure, classified by its error code.
func TestSlackOKFalse(t *testing.T) {
	t.Parallel()
	f := fakes.NewSlack(t, nil)
	f.Tokens.Add("xoxb-bot", 0)
	f.Tokens.Add("xoxb-revoked", 0)
	f.Tokens.Revoke("xoxb-revoked")
	f.Tokens.Add("xoxb-noscope", 0, "channels:read")
	c := connectors.NewSlack(loopback, nil)
	bot := connectors.Credentials{connectors.CredBotToken: "xoxb-bot"}
	tests := []struct {
		name, payload, channel string
		creds                  connectors.Credentials
		before                 func()
		outcome                connectors.Outcome
		class                  string
		wait                   time.Duration
	}{
		{name: "channel_not_found is permanent", payload: `{"text":"x"}`, channel: "C0NOPE", creds: bot, outcome: connectors.Permanent, class: connectors.ClassVendor},
		{name: "is_archived is permanent", payload: `{"text":"x"}`, channel: "C0ARCHIVE", creds: bot, outcome: connectors.Permanent, class: connectors.ClassVendor},
		{name: "invalid_auth", payload: `{"text":"x"}`, creds: connectors.Credentials{connectors.CredBotToken: "xoxb-unknown"}, outcome: connectors.AuthFailed, class: connectors.ClassAuth},
		{name: "token_revoked", payload: `{"text":"x"}`, creds: connectors.Credentials{connectors.CredBotToken: "xoxb-revoked"}, outcome: connectors.AuthFailed, class: connectors.ClassAuth},
		{name: "missing_scope", payload: `{"text":"x"}`, creds: connectors.Credentials{connectors.CredBotToken: "xoxb-noscope"}, outcome: connectors.AuthFailed, class: connectors.ClassAuth},
		{name: "ratelimited waits", payload: `{"text":"x"}`, creds: bot, before: func() { f.RateLimitOK(1) }, outcome: connectors.RateLimited, class: connectors.ClassRateLimited, wait: 5 * time.Second},
		{name: "HTTP 429 waits Retry-After", payload: `{"text":"x"}`, creds: bot, before: func() { f.RateLimit(1, 3) }, outcome: connectors.RateLimited, class: connectors.ClassRateLimited, wait: 3 * time.Second},
		{name: "internal_error is retried", payload: `{"text":"x"}`, creds: bot, before: func() { f.FailNext(1, "internal_error") }, outcome: connectors.Retry, class: connectors.ClassVendor},
		{name: "empty text is a mapping error", payload: `{"text":"  "}`, creds: bot, outcome: connectors.Permanent, class: connectors.ClassMapping},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			req := slackRequest(f, tc.payload, tc.creds)
			if tc.channel != "" {
				req.Options = raw(map[string]string{"channel": tc.channel})
			}
			r := send(t, c, req)
			expectOutcome(t, r, tc.outcome, tc.class)
			if r.RetryAfter != tc.wait {
				t.Errorf("RetryAfter %s, want %s", r.RetryAfter, tc.wait)
			}
			noSecrets(t, r, tc.creds[connectors.CredBotToken])
		})
	}
}

func TestSlackTokenRotation(t *testing.T) {
	t.Parallel()
	tokens := fakes.NewTokens()
	f := fakes.NewSlack(t, tokens)
	auth := fakes.NewAuthServer(t, fakes.AuthOptions{Flavor: fakes.FlavorSlack, ClientID: "sl-client", ClientSecret: "sl-secret", Tokens: tokens, Rotate: true})
	ps := connectors.NewOAuthProviders(connectors.OAuthConfig{BaseURL: "https://fanout.test", HTTPClient: loopbackClient,
		Slack: connectors.OAuthApp{ClientID: "sl-client", ClientSecret: "sl-secret", AuthURL: auth.URL + fakes.SlackAuthorizePath, TokenURL: auth.URL + fakes.SlackTokenPath}})
	c := connectors.NewSlack(loopback, ps["slack"])
	tokens.Add("xoxb-old", time.Second)
	tokens.Expire("xoxb-old")
	tokens.AddRefresh("xoxe-1-old")
	creds := connectors.Credentials{connectors.CredBotToken: "xoxb-old", connectors.CredRefreshToken: "xoxe-1-old",
		connectors.CredExpiresAt: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}
	// The expiry looks fine, Slack says token_expired: refresh (rotating the refresh token) and post.
	r := send(t, c, slackRequest(f, `{"text":"hi"}`, creds))
	expectOutcome(t, r, connectors.Succeeded, "")
	if r.Credentials[connectors.CredBotToken] == "xoxb-old" || r.Credentials[connectors.CredRefreshToken] == "xoxe-1-old" || r.Credentials[connectors.CredRefreshToken] == "" {
		t.Errorf("credentials %v, want rotated tokens", r.Credentials)
	}
	tok := auth.Calls(http.MethodPost, fakes.SlackTokenPath)
	if len(tok) != 1 || !strings.HasPrefix(tok[0].Header.Get("Authorization"), "Basic ") || strings.Contains(string(tok[0].Body), "client_secret") {
		t.Errorf("token request: want client credentials in Basic only: %+v", tok)
	}
	// Slack takes a refresh token once; an attempt that loaded the old credentials before
	// the new ones were saved gets the same answer instead of a refusal.
	again := send(t, c, slackRequest(f, `{"text":"hi"}`, creds))
	expectOutcome(t, again, connectors.Succeeded, "")
	if again.Credentials[connectors.CredBotToken] != r.Credentials[connectors.CredBotToken] || len(auth.Calls(http.MethodPost, fakes.SlackTokenPath)) != 1 {
		t.Errorf("a second refresh was made with a used refresh token")
	}
	// A refresh token Slack does not know is AuthFailed.
	creds[connectors.CredRefreshToken] = "xoxe-1-unknown"
	r = send(t, c, slackRequest(f, `{"text":"hi"}`, creds))
	expectOutcome(t, r, connectors.AuthFailed, connectors.ClassAuth)
	if !strings.Contains(r.Message, "invalid_refresh_token") {
		t.Errorf("message %q", r.Message)
	}
}

func TestSlackWebhook(t *testing.T) {
	t.Parallel()
	f := fakes.NewSlack(t, nil)
	hook := f.AddWebhook("C0GENERAL")
	u, _ := url.Parse(hook)
	secret := u.Path[strings.LastIndexByte(u.Path, '/')+1:]
	c := connectors.NewSlack(loopback, nil)
	creds := connectors.Credentials{connectors.CredWebhookURL: hook}
	req := slackRequest(f, `{"text":"hello","channel":"ignored"}`, creds)
	req.Config, req.Options = nil, nil

	r := send(t, c, req)
	expectOutcome(t, r, connectors.Succeeded, "")
	if m := f.Messages(); len(m) != 1 || !m[0].Webhook || m[0].Text != "hello" {
		t.Errorf("messages %+v", m)
	}
	jsonEqual(t, f.Requests()[0].Body, `{"text":"hello"}`)
	if !strings.HasPrefix(r.Request, "POST "+f.URL+"/") || strings.Contains(r.Request, secret) {
		t.Errorf("Request %q: want the host and no secret", r.Request)
	}

	// Test posts an empty message: refused with no_text while the hook exists.
	expectOutcome(t, c.Test(t.Context(), req), connectors.Succeeded, "")
	if n := len(f.Messages()); n != 1 {
		t.Errorf("Test posted a message")
	}

	f.AddChannel("C0GONE", "gone", true)
	archived := f.AddWebhook("C0GONE")
	areq := slackRequest(f, `{"text":"x"}`, connectors.Credentials{connectors.CredWebhookURL: archived})
	expectOutcome(t, send(t, c, areq), connectors.Permanent, connectors.ClassHTTP4xx)

	f.RemoveWebhook(hook)
	r = send(t, c, req)
	expectOutcome(t, r, connectors.AuthFailed, connectors.ClassAuth)
	if !strings.Contains(r.Message, "no_service") {
		t.Errorf("message %q", r.Message)
	}
	expectOutcome(t, c.Test(t.Context(), req), connectors.AuthFailed, connectors.ClassAuth)
	noSecrets(t, r, hook, secret, strings.TrimPrefix(u.Path, "/"))
}

func TestSlackListChannelsAndTest(t *testing.T) {
	t.Parallel()
	f := fakes.NewSlack(t, nil)
	f.Tokens.Add("xoxb-bot", 0)
	for i := range 250 {
		f.AddChannel(fmt.Sprintf("C1%04d", i), fmt.Sprintf("chan-%d", i), false)
	}
	c := connectors.NewSlack(loopback, nil)
	req := slackRequest(f, `{}`, connectors.Credentials{connectors.CredBotToken: "xoxb-bot"})
	opts, err := c.ListOptions(t.Context(), req, "channel")
	if err != nil {
		t.Fatal(err)
	}
	// 251 live channels over two pages; the archived one is left out.
	if len(opts) != 251 || opts[0] != (connectors.Option{Value: "C0GENERAL", Label: "#general"}) {
		t.Errorf("%d options, first %+v", len(opts), opts[0])
	}
	if n := len(f.Calls(http.MethodGet, "/api/conversations.list")); n != 2 {
		t.Errorf("%d pages fetched", n)
	}
	expectOutcome(t, c.Test(t.Context(), req), connectors.Succeeded, "")
	if n := len(f.Calls(http.MethodPost, "/api/auth.test")); n != 1 {
		t.Errorf("%d auth.test calls", n)
	}
}

func TestSlackValidateConfig(t *testing.T) {
	t.Parallel()
	strict := connectors.NewSlack(connectors.ClientOptions{}, nil)
	fieldErr(t, strict.ValidateConfig(nil, connectors.Credentials{connectors.CredWebhookURL: "http://127.0.0.1:9/services/x"}), "credentials.webhook_url")
	fieldErr(t, strict.ValidateConfig(nil, connectors.Credentials{connectors.CredWebhookURL: "ftp://hooks.slack.com/x"}), "credentials.webhook_url")
	fieldErr(t, strict.ValidateConfig(raw(map[string]string{"api_base": "http://169.254.169.254"}), connectors.Credentials{connectors.CredBotToken: "x"}), "config.api_base")
	fieldErr(t, strict.ValidateConfig(nil, nil), "credentials.bot_token")
	if err := strict.ValidateConfig(nil, connectors.Credentials{connectors.CredWebhookURL: "https://93.184.215.14/services/T/B/x"}); err != nil {
		t.Error(err)
	}
	if err := connectors.NewSlack(loopback, nil).ValidateConfig(nil, connectors.Credentials{connectors.CredWebhookURL: "http://127.0.0.1:9/services/x"}); err != nil {
		t.Errorf("AllowPrivate: %v", err)
	}
}
