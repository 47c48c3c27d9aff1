package connectors

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Webhook credential keys.
const (
	CredSigningSecret         = "signing_secret"
	CredPreviousSigningSecret = "previous_signing_secret"
	CredPreviousExpiresAt     = "previous_expires_at" // RFC 3339
)

// Standard Webhooks limits and names (VENDOR_APIS.md §6).
const (
	signingSecretPrefix = "whsec_"
	minSecretBytes      = 24
	maxSecretBytes      = 64
	userAgent           = "Fanout/1.0"
	maxCustomHeaders    = 32
	maxHeaderValueLen   = 4096
)

// reservedHeaders may not be set through config.headers: hop-by-hop headers belong to one
// connection, and the rest are set by Fanout (webhook-* are checked by prefix).
var reservedHeaders = []string{
	"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
	"proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "http2-settings",
	"host", "content-length", "content-type", "user-agent", "expect",
}

// Webhook delivers events to any HTTPS endpoint as a JSON POST signed per Standard
// Webhooks (webhook-id, webhook-timestamp, webhook-signature).
//
// Config: {"url": "https://…", "headers": {"X-Custom": "v"}}. Credentials: signing_secret
// (whsec_…), and during a rotation previous_signing_secret with previous_expires_at:
// until then every message carries both signatures.
type Webhook struct {
	policy ClientOptions
	now    func() time.Time
}

// NewWebhook returns the webhook connector; opts is the network policy that
// ValidateConfig applies to config.url.
func NewWebhook(opts ClientOptions) *Webhook { return &Webhook{policy: opts, now: time.Now} }

// Kind returns "webhook".
func (*Webhook) Kind() string { return "webhook" }

// Info describes the webhook kind. Its one action takes any mapping; with none the
// payload is the event envelope.
func (*Webhook) Info() Info {
	return Info{
		Kind:             "webhook",
		DisplayName:      "Webhook",
		AuthModes:        []AuthMode{AuthSigningSecret},
		CredentialFields: []string{CredSigningSecret, CredPreviousSigningSecret, CredPreviousExpiresAt},
		Actions: []Action{{
			Name:               "webhook.post",
			DisplayName:        "Send a signed webhook",
			DefaultsToEnvelope: true,
		}},
	}
}

// NewSigningSecret returns a fresh secret: "whsec_" and the base64 of 32 random bytes.
func NewSigningSecret() (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("generate signing secret: %w", err)
	}
	return signingSecretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

// ValidateConfig checks config (url and headers) and credentials. The URL must pass the
// network policy's CheckURL, which resolves the host name with a short timeout.
func (w *Webhook) ValidateConfig(config json.RawMessage, creds Credentials) error {
	cfg, err := parseWebhookConfig(config)
	if err != nil {
		return err
	}
	if err := w.policy.CheckURL(context.Background(), "config.url", cfg.URL); err != nil {
		return err
	}
	_, err = parseWebhookSecrets(creds)
	return err
}

// Send POSTs req.Payload (the envelope when empty), signed with the current secret and,
// until it expires, the previous one. Nothing is retried here; the Result says what next.
func (w *Webhook) Send(ctx context.Context, req *Request) Result {
	cfg, err := parseWebhookConfig(req.Config)
	if err == nil {
		_, err = parseDestination("config.url", cfg.URL)
	}
	if err != nil {
		return Result{Outcome: Permanent, ErrorClass: ClassConfig, Message: err.Error()}
	}
	secrets, err := parseWebhookSecrets(req.Credentials)
	if err != nil {
		return Result{Outcome: Permanent, ErrorClass: ClassConfig, Message: err.Error()}
	}
	// The signed content is id.timestamp.body, so the id must not contain a dot.
	if req.DeliveryID == "" || strings.Contains(req.DeliveryID, ".") {
		return Result{Outcome: Permanent, ErrorClass: ClassConfig, Message: fmt.Sprintf("invalid delivery id %q", req.DeliveryID)}
	}
	body := []byte(req.Payload)
	if len(body) == 0 {
		if body, err = json.Marshal(req.Event); err != nil {
			return Result{Outcome: Permanent, ErrorClass: ClassMapping, Message: "encode event envelope: " + err.Error()}
		}
	}

	now := w.now()
	signature, err := secrets.sign(req.DeliveryID, now, body)
	if err != nil {
		return Result{Outcome: Permanent, ErrorClass: ClassConfig, Message: err.Error()}
	}
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL, bytes.NewReader(body))
	if err != nil {
		return Result{Outcome: Permanent, ErrorClass: ClassConfig, Message: "config.url: is not a valid URL"}
	}
	for name, value := range cfg.Headers {
		httpReq.Header.Set(name, value)
	}
	httpReq.Header.Set("Content-Type", "application/json")
	httpReq.Header.Set("User-Agent", userAgent)
	// Set verbatim: the spec spells these lower-case (header names are case-insensitive).
	httpReq.Header[standardwebhooks.HeaderWebhookID] = []string{req.DeliveryID}
	httpReq.Header[standardwebhooks.HeaderWebhookTimestamp] = []string{strconv.FormatInt(now.Unix(), 10)}
	httpReq.Header[standardwebhooks.HeaderWebhookSignature] = []string{signature}

	hidden := append(secrets.all(), cfg.sensitiveValues()...)
	result, _ := Do(ctx, req.HTTP, httpReq, func(s string) string { return Redact(s, hidden...) })
	return result
}

// Test sends a "fanout.test" event envelope to the endpoint, signed like any delivery,
// so the receiver can check its verification code.
func (w *Webhook) Test(ctx context.Context, req *Request) Result {
	ping := *req
	ping.Event = Event{
		ID:         "evt_test_" + strings.ToLower(rand.Text()),
		Type:       "fanout.test",
		OccurredAt: w.now().UTC().Truncate(time.Second),
		Data:       json.RawMessage(`{"message":"Test event from Fanout"}`),
	}
	payload, err := json.Marshal(ping.Event)
	if err != nil {
		return Result{Outcome: Permanent, ErrorClass: ClassMapping, Message: "encode test event: " + err.Error()}
	}
	ping.Payload = payload
	if ping.DeliveryID == "" {
		ping.DeliveryID = "msg_test_" + strings.ToLower(rand.Text())
	}
	return w.Send(ctx, &ping)
}

type webhookConfig struct {
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
}

func parseWebhookConfig(raw json.RawMessage) (webhookConfig, error) {
	var cfg webhookConfig
	if len(bytes.TrimSpace(raw)) == 0 {
		return cfg, &FieldError{Field: "config.url", Message: "is required"}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, &FieldError{Field: "config", Message: strings.TrimPrefix(err.Error(), "json: ")}
	}
	if len(cfg.Headers) > maxCustomHeaders {
		return cfg, &FieldError{Field: "config.headers", Message: fmt.Sprintf("at most %d headers", maxCustomHeaders)}
	}
	names := make([]string, 0, len(cfg.Headers))
	for name := range cfg.Headers {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if msg := checkCustomHeader(name, cfg.Headers[name]); msg != "" {
			return cfg, &FieldError{Field: "config.headers." + name, Message: msg}
		}
	}
	return cfg, nil
}

func checkCustomHeader(name, value string) string {
	if !isHeaderToken(name) {
		return "is not a valid header name"
	}
	lower := strings.ToLower(name)
	if strings.HasPrefix(lower, "webhook-") || slices.Contains(reservedHeaders, lower) {
		return "is set by Fanout or by the connection and cannot be configured"
	}
	if len(value) > maxHeaderValueLen {
		return "value is too long"
	}
	for i := range len(value) {
		if b := value[i]; (b < ' ' && b != '\t') || b == 0x7f {
			return "value contains control characters"
		}
	}
	return ""
}

// isHeaderToken reports whether s is an RFC 9110 token.
func isHeaderToken(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		b := s[i]
		switch {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0:
		default:
			return false
		}
	}
	return true
}

// sensitiveValues are custom header values that look like credentials (config is not
// encrypted, but people do put tokens there), to be kept out of attempt records.
func (c webhookConfig) sensitiveValues() []string {
	var vs []string
	for name, value := range c.Headers {
		n := strings.ToLower(name)
		for _, hint := range []string{"auth", "token", "key", "secret", "signature", "cookie", "password"} {
			if strings.Contains(n, hint) {
				vs = append(vs, value)
				if _, cred, ok := strings.Cut(value, " "); ok { // "Bearer <token>"
					vs = append(vs, strings.TrimSpace(cred))
				}
				break
			}
		}
	}
	return vs
}

type webhookSecrets struct {
	current       string
	previous      string
	previousUntil time.Time
}

func parseWebhookSecrets(creds Credentials) (webhookSecrets, error) {
	s := webhookSecrets{current: creds[CredSigningSecret], previous: creds[CredPreviousSigningSecret]}
	if s.current == "" {
		return s, &FieldError{Field: "credentials." + CredSigningSecret, Message: "is required"}
	}
	if msg := checkSigningSecret(s.current); msg != "" {
		return s, &FieldError{Field: "credentials." + CredSigningSecret, Message: msg}
	}
	if s.previous == "" {
		return s, nil
	}
	if msg := checkSigningSecret(s.previous); msg != "" {
		return s, &FieldError{Field: "credentials." + CredPreviousSigningSecret, Message: msg}
	}
	until, err := time.Parse(time.RFC3339, creds[CredPreviousExpiresAt])
	if err != nil {
		return s, &FieldError{Field: "credentials." + CredPreviousExpiresAt, Message: "must be an RFC 3339 time when previous_signing_secret is set"}
	}
	s.previousUntil = until
	return s, nil
}

// checkSigningSecret returns why secret is unusable, or "". The message never quotes it.
func checkSigningSecret(secret string) string {
	b64, ok := strings.CutPrefix(secret, signingSecretPrefix)
	if !ok {
		return "must start with " + signingSecretPrefix
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "must be " + signingSecretPrefix + " followed by standard base64"
	}
	if len(key) < minSecretBytes || len(key) > maxSecretBytes {
		return fmt.Sprintf("must encode %d to %d bytes", minSecretBytes, maxSecretBytes)
	}
	return ""
}

// sign returns the webhook-signature value: "v1,<sig>", followed by " v1,<sig>" of the
// previous secret while it has not expired, which verifiers accept during a rotation.
func (s webhookSecrets) sign(id string, ts time.Time, body []byte) (string, error) {
	active := []string{s.current}
	if s.previous != "" && ts.Before(s.previousUntil) {
		active = append(active, s.previous)
	}
	sigs := make([]string, 0, len(active))
	for _, secret := range active {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			return "", fmt.Errorf("load signing secret: %w", err)
		}
		sig, err := wh.Sign(id, ts, body)
		if err != nil {
			return "", fmt.Errorf("sign message: %w", err)
		}
		sigs = append(sigs, sig)
	}
	return strings.Join(sigs, " "), nil
}

// all lists the secrets to redact, also without their whsec_ prefix.
func (s webhookSecrets) all() []string {
	var vs []string
	for _, v := range []string{s.current, s.previous} {
		if v != "" {
			vs = append(vs, v, strings.TrimPrefix(v, signingSecretPrefix))
		}
	}
	return vs
}
