// Package connectors holds one file per destination kind and the registry that lists them.
// A connector turns a mapped payload into the vendor's HTTP request and classifies the
// answer; it never touches the database or the queue.
package connectors

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// Connector is one destination kind (webhook, hubspot, slack, …).
//
// Send never returns a Go error: every failure is described by the Result, whose Outcome
// tells the delivery engine what to do next.
type Connector interface {
	// Kind is the stable slug stored in connections.kind.
	Kind() string
	// Info describes the kind for the API, the dashboard and the rule builder.
	Info() Info
	// ValidateConfig checks a connection's config (and credentials) before it is stored.
	// It returns a *FieldError naming the offending field.
	ValidateConfig(config json.RawMessage, creds Credentials) error
	// Send performs one attempt. It must respect ctx's deadline.
	Send(ctx context.Context, req *Request) Result
}

// Tester is implemented by connectors that have a harmless call to check a connection.
type Tester interface {
	Test(ctx context.Context, req *Request) Result
}

// AuthMode names how a connection authenticates.
type AuthMode string

// Auth modes.
const (
	AuthNone          AuthMode = "none"
	AuthSigningSecret AuthMode = "signing_secret"
	AuthAPIKey        AuthMode = "api_key"
	AuthOAuth         AuthMode = "oauth"
)

// Info describes a connector kind.
type Info struct {
	Kind        string     `json:"kind"`
	DisplayName string     `json:"display_name"`
	AuthModes   []AuthMode `json:"auth_modes"`
	// CredentialFields are the credential keys accepted through the API (api_key, …).
	CredentialFields []string `json:"credential_fields,omitempty"`
	Actions          []Action `json:"actions"`
}

// Action is something a connector can do with a matched event.
type Action struct {
	Name        string  `json:"name"` // "hubspot.upsert_contact"
	DisplayName string  `json:"display_name"`
	Fields      []Field `json:"fields,omitempty"`  // mapping targets
	Options     []Field `json:"options,omitempty"` // per-action options (list_id, channel)
	// DefaultsToEnvelope: with no mapping the payload is the event envelope.
	DefaultsToEnvelope bool `json:"defaults_to_envelope,omitempty"`
}

// Field is a mapping target or option of an action.
type Field struct {
	Name     string `json:"name"` // dotted path for nested fields: "merge_fields.FNAME"
	Type     string `json:"type"` // string | number | boolean | object | array
	Required bool   `json:"required,omitempty"`
	Help     string `json:"help,omitempty"`
}

// Credentials are decrypted secret values of a connection (signing_secret, api_key,
// access_token, refresh_token, expires_at, …). They must never be logged or stored in
// attempt records.
type Credentials map[string]string

// Event is the envelope of the event being delivered.
type Event struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	OccurredAt time.Time       `json:"occurred_at"`
	Data       json.RawMessage `json:"data"`
}

// Request is everything one attempt needs.
type Request struct {
	DeliveryID  string // stable across retries; sent as webhook-id / messageId
	Attempt     int    // 1-based
	Action      string
	Event       Event
	Payload     json.RawMessage // the mapped object, or the envelope when the action has no mapping
	Options     json.RawMessage // the rule action's options (may be empty)
	Config      json.RawMessage // the connection's config
	Credentials Credentials
	HTTP        *http.Client // SSRF-guarded, no redirects; per-attempt timeout comes from ctx
}

// Outcome is what the engine does after an attempt.
type Outcome string

// Outcomes.
const (
	Succeeded   Outcome = "succeeded"
	Retry       Outcome = "retry"        // retryable failure: counts against max attempts
	RateLimited Outcome = "rate_limited" // wait RetryAfter; does not use up an attempt
	Permanent   Outcome = "permanent"    // dead at once
	AuthFailed  Outcome = "auth_failed"  // connection needs reconnect; delivery waits
)

// Error classes recorded on attempts.
const (
	ClassTimeout     = "timeout"
	ClassConnection  = "connection"
	ClassHTTP4xx     = "http_4xx"
	ClassHTTP5xx     = "http_5xx"
	ClassRateLimited = "rate_limited"
	ClassRedirect    = "redirect"
	ClassAuth        = "auth"
	ClassMapping     = "mapping"
	ClassConfig      = "config"
	ClassVendor      = "vendor_error" // e.g. Slack's 200 with ok:false
	ClassBlocked     = "ssrf_blocked"
)

// Result describes one attempt.
type Result struct {
	Outcome    Outcome
	StatusCode int
	// RetryAfter is the destination's requested wait (Retry-After, X-RateLimit-Reset…); 0 if none.
	RetryAfter time.Duration
	ErrorClass string
	Message    string // short human reason, no secrets
	// Request is a one-line summary ("POST https://host/path") with secrets redacted.
	Request  string
	Response string // response body excerpt, at most MaxExcerpt bytes, secrets redacted
	// Credentials, when set, replace the connection's stored credentials (an OAuth token
	// refreshed during the attempt). The engine seals and saves them.
	Credentials Credentials
}

// MaxExcerpt bounds the stored response body excerpt.
const MaxExcerpt = 4096

// FieldError is a validation error that names the offending field.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// OptionLister is implemented by connectors that can offer the values of an action option
// from the destination itself (a Mailchimp account's audiences, a Slack workspace's
// channels), so the rule builder can show a list instead of a text box.
//
// ListOptions returns the choices for option (an Action.Options name, such as "list_id"
// or "channel") for the connection described by req's Config, Credentials and HTTP; the
// event, payload and delivery fields of req are unused. It returns a *FieldError when the
// connector has no list for option, and otherwise an error whose text is safe to show (no
// secrets) when the destination cannot be asked or refuses. It never refreshes or returns
// credentials: a connection whose token has expired must first deliver or reconnect.
type OptionLister interface {
	ListOptions(ctx context.Context, req *Request, option string) ([]Option, error)
}

// Option is one choice of a live option list.
type Option struct {
	Value string `json:"value"`
	Label string `json:"label"`
}
