package db

import (
	"encoding/json"
	"time"

	"github.com/uptrace/bun"
)

// Workspace is a tenant: every other row belongs to exactly one workspace.
type Workspace struct {
	bun.BaseModel `bun:"table:workspaces"`

	ID        string    `bun:"id,pk" json:"id"`
	Name      string    `bun:"name,notnull" json:"name"`
	CreatedAt time.Time `bun:"created_at,notnull" json:"created_at"`
}

// User is a dashboard account. Users reach workspaces through memberships.
type User struct {
	bun.BaseModel `bun:"table:users"`

	ID           string    `bun:"id,pk" json:"id"`
	Email        string    `bun:"email,notnull" json:"email"`
	PasswordHash string    `bun:"password_hash,notnull" json:"-"`
	IsAdmin      bool      `bun:"is_admin,notnull" json:"is_admin"`
	CreatedAt    time.Time `bun:"created_at,notnull" json:"created_at"`
}

// Roles a member can hold in a workspace.
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleViewer = "viewer"
)

// Membership gives a user a role in a workspace.
type Membership struct {
	bun.BaseModel `bun:"table:memberships"`

	WorkspaceID string    `bun:"workspace_id,pk" json:"workspace_id"`
	UserID      string    `bun:"user_id,pk" json:"user_id"`
	Role        string    `bun:"role,notnull" json:"role"`
	CreatedAt   time.Time `bun:"created_at,notnull" json:"created_at"`
}

// API key scopes.
const (
	ScopeIngest = "ingest"
	ScopeAdmin  = "admin"
)

// APIKey authenticates machine clients. Only a SHA-256 hash of the secret is stored;
// Prefix is the public part used to find the row and to show the key in lists.
type APIKey struct {
	bun.BaseModel `bun:"table:api_keys"`

	ID          string     `bun:"id,pk" json:"id"`
	WorkspaceID string     `bun:"workspace_id,notnull" json:"workspace_id"`
	Name        string     `bun:"name,notnull" json:"name"`
	Prefix      string     `bun:"prefix,notnull" json:"prefix"`
	Hash        []byte     `bun:"hash,notnull" json:"-"`
	Scope       string     `bun:"scope,notnull" json:"scope"`
	CreatedAt   time.Time  `bun:"created_at,notnull" json:"created_at"`
	LastUsedAt  *time.Time `bun:"last_used_at" json:"last_used_at"`
	RevokedAt   *time.Time `bun:"revoked_at" json:"revoked_at"`
}

// Connection statuses.
const (
	ConnectionActive         = "active"
	ConnectionDisabled       = "disabled"
	ConnectionNeedsReconnect = "needs_reconnect"
)

// Connection is a configured destination of one connector kind. Credentials hold the
// sealed (encrypted) secret material; they are never serialised to JSON.
type Connection struct {
	bun.BaseModel `bun:"table:connections,alias:connection"`

	ID          string          `bun:"id,pk" json:"id"`
	WorkspaceID string          `bun:"workspace_id,notnull" json:"workspace_id"`
	Kind        string          `bun:"kind,notnull" json:"kind"`
	Name        string          `bun:"name,notnull" json:"name"`
	Config      json.RawMessage `bun:"config,type:text,notnull" json:"config"`
	Credentials []byte          `bun:"credentials" json:"-"`
	Status      string          `bun:"status,notnull" json:"status"`
	StatusNote  string          `bun:"status_note,notnull" json:"status_note,omitempty"`
	CreatedAt   time.Time       `bun:"created_at,notnull" json:"created_at"`
	UpdatedAt   time.Time       `bun:"updated_at,notnull" json:"updated_at"`
}

// Rule routes events of a type (exact or pattern) that satisfy a condition to its actions.
// Condition is the builder's JSON tree; Expression is the expr-lang source it compiles to
// (or that an advanced user wrote); an empty Expression matches every event of the type.
type Rule struct {
	bun.BaseModel `bun:"table:rules,alias:rule"`

	ID          string          `bun:"id,pk" json:"id"`
	WorkspaceID string          `bun:"workspace_id,notnull" json:"workspace_id"`
	Name        string          `bun:"name,notnull" json:"name"`
	EventType   string          `bun:"event_type,notnull" json:"event_type"`
	Condition   json.RawMessage `bun:"condition,type:text" json:"condition,omitempty"`
	Expression  string          `bun:"expression,notnull" json:"expression,omitempty"`
	Enabled     bool            `bun:"enabled,notnull" json:"enabled"`
	Position    int             `bun:"position,notnull" json:"position"`
	CreatedAt   time.Time       `bun:"created_at,notnull" json:"created_at"`
	UpdatedAt   time.Time       `bun:"updated_at,notnull" json:"updated_at"`

	Actions []*RuleAction `bun:"rel:has-many,join:id=rule_id" json:"actions"`
}

// RuleAction sends a matched event to one connection with one of its connector's actions.
// Mapping is target field → expr expression (or a "{{ expr }}" template); Retry is the
// action's own policy (RetryPolicy JSON) or empty for the default.
type RuleAction struct {
	bun.BaseModel `bun:"table:rule_actions,alias:rule_action"`

	ID           string          `bun:"id,pk" json:"id"`
	WorkspaceID  string          `bun:"workspace_id,notnull" json:"-"`
	RuleID       string          `bun:"rule_id,notnull" json:"-"`
	ConnectionID string          `bun:"connection_id,notnull" json:"connection_id"`
	Action       string          `bun:"action,notnull" json:"action"`
	Options      json.RawMessage `bun:"options,type:text" json:"options,omitempty"`
	Mapping      json.RawMessage `bun:"mapping,type:text" json:"mapping,omitempty"`
	Retry        json.RawMessage `bun:"retry,type:text" json:"retry,omitempty"`
	TimeoutMS    int             `bun:"timeout_ms,notnull" json:"timeout_ms"`
	Position     int             `bun:"position,notnull" json:"-"`
	// ArchivedAt is set when the rule is edited or deleted: the action stops matching but
	// deliveries routed through it keep their mapping, retry policy and history.
	ArchivedAt *time.Time `bun:"archived_at" json:"-"`
}

// Event is one accepted event. RoutedAt stays nil until the router has created its
// deliveries; the reconciler uses that to find events whose routing job was lost.
type Event struct {
	bun.BaseModel `bun:"table:events,alias:event"`

	ID             string          `bun:"id,pk" json:"id"`
	WorkspaceID    string          `bun:"workspace_id,notnull" json:"-"`
	Type           string          `bun:"type,notnull" json:"type"`
	Data           json.RawMessage `bun:"data,type:text,notnull" json:"data"`
	Source         string          `bun:"source,notnull" json:"source,omitempty"`
	ExternalID     string          `bun:"external_id,notnull" json:"external_id,omitempty"`
	IdempotencyKey *string         `bun:"idempotency_key" json:"-"`
	RequestHash    string          `bun:"request_hash,notnull" json:"-"`
	OccurredAt     time.Time       `bun:"occurred_at,notnull" json:"occurred_at"`
	ReceivedAt     time.Time       `bun:"received_at,notnull" json:"received_at"`
	RoutedAt       *time.Time      `bun:"routed_at" json:"routed_at"`
}

// Delivery statuses. Pending and retrying are in flight; succeeded and dead are final.
const (
	DeliveryPending   = "pending"
	DeliveryRetrying  = "retrying"
	DeliverySucceeded = "succeeded"
	DeliveryDead      = "dead"
)

// Delivery is the unit of at-least-once work: one (event, rule action). Its ID is sent to
// the destination (webhook-id, messageId, …) so receivers can drop duplicates. LeaseUntil
// is set while a worker holds the delivery, so two workers never attempt it at once.
type Delivery struct {
	bun.BaseModel `bun:"table:deliveries,alias:delivery"`

	ID             string     `bun:"id,pk" json:"id"`
	WorkspaceID    string     `bun:"workspace_id,notnull" json:"-"`
	EventID        string     `bun:"event_id,notnull" json:"event_id"`
	RuleID         string     `bun:"rule_id,notnull" json:"rule_id"`
	RuleActionID   string     `bun:"rule_action_id,notnull" json:"rule_action_id"`
	ConnectionID   string     `bun:"connection_id,notnull" json:"connection_id"`
	Status         string     `bun:"status,notnull" json:"status"`
	AttemptCount   int        `bun:"attempt_count,notnull" json:"attempt_count"`
	FailureCount   int        `bun:"failure_count,notnull" json:"failure_count"`
	ReplayCount    int        `bun:"replay_count,notnull" json:"replay_count"`
	NextAttemptAt  *time.Time `bun:"next_attempt_at" json:"next_attempt_at"`
	LeaseUntil     *time.Time `bun:"lease_until" json:"-"`
	LastError      string     `bun:"last_error,notnull" json:"last_error,omitempty"`
	LastErrorClass string     `bun:"last_error_class,notnull" json:"last_error_class,omitempty"`
	LastStatusCode int        `bun:"last_status_code,notnull" json:"last_status_code,omitempty"`
	CreatedAt      time.Time  `bun:"created_at,notnull" json:"created_at"`
	UpdatedAt      time.Time  `bun:"updated_at,notnull" json:"updated_at"`

	Attempts []*Attempt `bun:"rel:has-many,join:id=delivery_id" json:"attempts,omitempty"`

	// Loaded together by DeliveryForAttempt, so an attempt starts with one query.
	Event      *Event      `bun:"rel:belongs-to,join:event_id=id" json:"-"`
	RuleAction *RuleAction `bun:"rel:belongs-to,join:rule_action_id=id" json:"-"`
	Connection *Connection `bun:"rel:belongs-to,join:connection_id=id" json:"-"`
}

// IsFinal reports whether the delivery will not be attempted again without a replay.
func (d *Delivery) IsFinal() bool {
	return d.Status == DeliverySucceeded || d.Status == DeliveryDead
}

// Attempt is one append-only record of a try at a delivery.
type Attempt struct {
	bun.BaseModel `bun:"table:attempts,alias:attempt"`

	ID              string    `bun:"id,pk" json:"id"`
	WorkspaceID     string    `bun:"workspace_id,notnull" json:"-"`
	DeliveryID      string    `bun:"delivery_id,notnull" json:"delivery_id"`
	Number          int       `bun:"number,notnull" json:"number"`
	StartedAt       time.Time `bun:"started_at,notnull" json:"started_at"`
	DurationMS      int64     `bun:"duration_ms,notnull" json:"duration_ms"`
	Request         string    `bun:"request,notnull" json:"request,omitempty"`
	StatusCode      int       `bun:"status_code,notnull" json:"status_code"`
	ResponseExcerpt string    `bun:"response_excerpt,notnull" json:"response_excerpt"`
	ErrorClass      string    `bun:"error_class,notnull" json:"error_class,omitempty"`
	ErrorMessage    string    `bun:"error_message,notnull" json:"error_message,omitempty"`
	Retryable       bool      `bun:"retryable,notnull" json:"retryable"`
	Outcome         string    `bun:"outcome,notnull" json:"outcome"`
}
