package handlers

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/jobs"
	"github.com/fanout-dev/fanout/jobs/connectors"
	"github.com/labstack/echo/v4"
)

// connectionInput is the body of POST and PATCH /v1/connections.
type connectionInput struct {
	Kind        string                 `json:"kind"`
	Name        *string                `json:"name"`
	Config      json.RawMessage        `json:"config"`
	Credentials connectors.Credentials `json:"credentials"`
	Status      string                 `json:"status"`
}

// connectionView is a connection as the API shows it: never its credentials, except a
// webhook's signing secret right after it was made.
type connectionView struct {
	*db.Connection
	SigningSecret string `json:"signing_secret,omitempty"`
}

// ListConnections answers GET /v1/connections.
func (h *Handlers) ListConnections(c echo.Context) error {
	cs, err := h.Store.ListConnections(c.Request().Context(), workspaceID(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, list(cs, ""))
}

// GetConnection answers GET /v1/connections/:id.
func (h *Handlers) GetConnection(c echo.Context) error {
	conn, err := h.Store.ConnectionByID(c.Request().Context(), workspaceID(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, conn)
}

// CreateConnection answers POST /v1/connections. A webhook connection gets a new signing
// secret, returned once in this response.
func (h *Handlers) CreateConnection(c echo.Context) error {
	var in connectionInput
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	conn, secret, err := h.NewConnection(c.Request().Context(), workspaceID(c), in.Kind, deref(in.Name), in.Config, in.Credentials)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, connectionView{conn, secret})
}

// NewConnection validates and stores a connection; the dashboard's form uses it too.
func (h *Handlers) NewConnection(ctx context.Context, workspaceID, kind, name string, config json.RawMessage, creds connectors.Credentials) (*db.Connection, string, error) {
	connector, ok := h.Connectors.Get(kind)
	if !ok {
		return nil, "", invalid("kind", "unknown connector kind %q", kind)
	}
	if creds == nil {
		creds = connectors.Credentials{}
	}
	var secret string
	if kind == "webhook" && creds["signing_secret"] == "" {
		var err error
		if secret, err = connectors.NewSigningSecret(); err != nil {
			return nil, "", err
		}
		creds["signing_secret"] = secret
	}
	conn := &db.Connection{ID: db.NewID(db.PrefixConnection), WorkspaceID: workspaceID, Kind: kind, Name: name, Config: config}
	if err := h.checkConnection(connector, conn, creds); err != nil {
		return nil, "", err
	}
	if err := jobs.SealCredentials(h.Keyring, conn, creds); err != nil {
		return nil, "", err
	}
	if err := h.Store.CreateConnection(ctx, conn); err != nil {
		return nil, "", err
	}
	return conn, secret, nil
}

// checkConnection validates name, config and credentials.
func (h *Handlers) checkConnection(connector connectors.Connector, conn *db.Connection, creds connectors.Credentials) error {
	conn.Name = strings.TrimSpace(conn.Name)
	switch {
	case conn.Name == "":
		return invalid("name", "is required")
	case len(conn.Name) > 100:
		return invalid("name", "must be at most 100 characters")
	}
	if len(conn.Config) == 0 || string(conn.Config) == "null" {
		conn.Config = json.RawMessage(`{}`)
	}
	if !isJSONObject(conn.Config) {
		return invalid("config", "must be a JSON object")
	}
	allowed := map[string]bool{"signing_secret": true, "previous_signing_secret": true, "previous_expires_at": true}
	for _, f := range connector.Info().CredentialFields {
		allowed[f] = true
	}
	for k := range creds {
		if !allowed[k] {
			return invalid("credentials."+k, "is not a credential of %s connections", conn.Kind)
		}
	}
	// The connector checks its URLs (url, api_base, webhook_url) against the network
	// policy it was built with, so the SSRF rules live in one place.
	return connector.ValidateConfig(conn.Config, creds)
}

// UpdateConnection answers PATCH /v1/connections/:id: name, config, credentials (they
// replace the stored ones) and status (active | disabled). Re-activating a connection
// resumes the deliveries that waited for it.
func (h *Handlers) UpdateConnection(c echo.Context) error {
	ctx := c.Request().Context()
	var in connectionInput
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	conn, err := h.Store.ConnectionByID(ctx, workspaceID(c), c.Param("id"))
	if err != nil {
		return err
	}
	if in.Kind != "" && in.Kind != conn.Kind {
		return invalid("kind", "cannot be changed; create a new connection")
	}
	connector, ok := h.Connectors.Get(conn.Kind)
	if !ok {
		return invalid("kind", "unknown connector kind %q", conn.Kind)
	}
	creds, err := jobs.OpenCredentials(h.Keyring, conn)
	if err != nil {
		return err
	}
	if in.Credentials != nil {
		creds = replaceCredentials(creds, in.Credentials)
	}
	if in.Name != nil {
		conn.Name = *in.Name
	}
	if in.Config != nil {
		conn.Config = in.Config
	}
	wasActive := conn.Status == db.ConnectionActive
	switch in.Status {
	case "":
		if len(in.Credentials) > 0 && conn.Status == db.ConnectionNeedsReconnect {
			conn.Status, conn.StatusNote = db.ConnectionActive, ""
		}
	case db.ConnectionActive, db.ConnectionDisabled:
		conn.Status, conn.StatusNote = in.Status, ""
	default:
		return invalid("status", "must be active or disabled")
	}
	if err := h.checkConnection(connector, conn, creds); err != nil {
		return err
	}
	if err := jobs.SealCredentials(h.Keyring, conn, creds); err != nil {
		return err
	}
	if err := h.Store.UpdateConnection(ctx, conn); err != nil {
		return err
	}
	if !wasActive && conn.Status == db.ConnectionActive {
		if err := h.ResumeConnection(ctx, conn); err != nil {
			return err
		}
	}
	return c.JSON(http.StatusOK, conn)
}

// replaceCredentials returns the new credentials of a PATCH: given credentials replace
// the stored ones as a whole (an old refresh token must not outlive a new access token),
// except a webhook's signing secrets, which only rotate-secret changes.
func replaceCredentials(stored, given connectors.Credentials) connectors.Credentials {
	out := connectors.Credentials{}
	for _, k := range []string{connectors.CredSigningSecret, connectors.CredPreviousSigningSecret, connectors.CredPreviousExpiresAt} {
		if v, ok := stored[k]; ok {
			out[k] = v
		}
	}
	for k, v := range given {
		out[k] = v
	}
	return out
}

// ResumeConnection queues every delivery that waited for the connection.
func (h *Handlers) ResumeConnection(ctx context.Context, conn *db.Connection) error {
	ds, err := h.Store.ResumeConnectionDeliveries(ctx, conn.WorkspaceID, conn.ID)
	if err != nil {
		return err
	}
	for _, d := range ds {
		if err := h.Queue.EnqueueDelivery(ctx, d, h.Store.Now(), jobs.QueueDefault); err != nil {
			h.Log.Warn("enqueue resumed delivery; the reconciler will retry", "delivery_id", d.ID, "err", err)
		}
	}
	return nil
}

// DeleteConnection answers DELETE /v1/connections/:id; 409 while a rule uses it.
func (h *Handlers) DeleteConnection(c echo.Context) error {
	err := h.Store.DeleteConnection(c.Request().Context(), workspaceID(c), c.Param("id"))
	if err != nil {
		if e, ok := AsError(err); ok && e.Status == http.StatusConflict {
			return newError(http.StatusConflict, "in_use", "a rule still sends to this connection; remove it from the rule first")
		}
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// TestConnection answers POST /v1/connections/:id/test: a harmless call to the
// destination, and what it answered.
func (h *Handlers) TestConnection(c echo.Context) error {
	res, err := h.TestSend(c.Request().Context(), workspaceID(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

// TestResult is the answer of a connection test.
type TestResult struct {
	OK         bool   `json:"ok"`
	Outcome    string `json:"outcome"`
	StatusCode int    `json:"status_code,omitempty"`
	ErrorClass string `json:"error_class,omitempty"`
	Message    string `json:"message,omitempty"`
	Response   string `json:"response,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// TestSend runs a connection's test call.
func (h *Handlers) TestSend(ctx context.Context, workspaceID, id string) (*TestResult, error) {
	conn, err := h.Store.ConnectionByID(ctx, workspaceID, id)
	if err != nil {
		return nil, err
	}
	connector, ok := h.Connectors.Get(conn.Kind)
	if !ok {
		return nil, invalid("kind", "unknown connector kind %q", conn.Kind)
	}
	creds, err := jobs.OpenCredentials(h.Keyring, conn)
	if err != nil {
		return nil, err
	}
	now := h.Store.Now()
	ev := connectors.Event{ID: db.NewID(db.PrefixEvent), Type: "fanout.test", OccurredAt: now, Data: json.RawMessage(`{"test":true}`)}
	envelope, _ := json.Marshal(ev)
	req := &connectors.Request{
		DeliveryID: db.NewID(db.PrefixDelivery), Attempt: 1, Event: ev, Payload: envelope,
		Config: conn.Config, Credentials: creds, HTTP: h.Engine.HTTP,
	}
	ctx, cancel := context.WithTimeout(ctx, jobs.DefaultAttemptTimeout)
	defer cancel()
	start := time.Now()
	var res connectors.Result
	if t, ok := connector.(connectors.Tester); ok {
		res = t.Test(ctx, req)
	} else {
		res = connectors.Result{Outcome: connectors.Permanent, Message: "this connector has no test call"}
	}
	if res.Credentials != nil {
		// A token refreshed during the test replaces the stored one (some vendors
		// accept each refresh token only once).
		if err := jobs.SealCredentials(h.Keyring, conn, res.Credentials); err != nil {
			return nil, err
		}
		if err := h.Store.UpdateConnection(ctx, conn); err != nil {
			return nil, err
		}
	}
	return &TestResult{
		OK: res.Outcome == connectors.Succeeded, Outcome: string(res.Outcome), StatusCode: res.StatusCode,
		ErrorClass: res.ErrorClass, Message: res.Message, Response: res.Response,
		DurationMS: time.Since(start).Milliseconds(),
	}, nil
}

// signingSecretOverlap is how long the previous secret keeps signing after a rotation.
const signingSecretOverlap = 24 * time.Hour

// RotateSigningSecret answers POST /v1/connections/:id/rotate-secret for webhooks: a new
// secret, returned once; for 24 hours deliveries carry signatures under both.
func (h *Handlers) RotateSigningSecret(c echo.Context) error {
	secret, err := h.RotateSecret(c.Request().Context(), workspaceID(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"signing_secret": secret})
}

// RotateSecret replaces a webhook connection's signing secret, keeping the old one for
// the overlap window.
func (h *Handlers) RotateSecret(ctx context.Context, workspaceID, id string) (string, error) {
	conn, err := h.Store.ConnectionByID(ctx, workspaceID, id)
	if err != nil {
		return "", err
	}
	if conn.Kind != "webhook" {
		return "", invalid("kind", "only webhook connections have a signing secret")
	}
	creds, err := jobs.OpenCredentials(h.Keyring, conn)
	if err != nil {
		return "", err
	}
	secret, err := connectors.NewSigningSecret()
	if err != nil {
		return "", err
	}
	creds["previous_signing_secret"] = creds["signing_secret"]
	creds["previous_expires_at"] = h.Store.Now().Add(signingSecretOverlap).Format(time.RFC3339)
	creds["signing_secret"] = secret
	if err := jobs.SealCredentials(h.Keyring, conn, creds); err != nil {
		return "", err
	}
	return secret, h.Store.UpdateConnection(ctx, conn)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// ListOptions answers GET /v1/connections/:id/options/:option: the live choices of an
// action option (a Mailchimp account's audiences, a Slack workspace's channels).
func (h *Handlers) ListOptions(c echo.Context) error {
	ctx := c.Request().Context()
	conn, err := h.Store.ConnectionByID(ctx, workspaceID(c), c.Param("id"))
	if err != nil {
		return err
	}
	connector, _ := h.Connectors.Get(conn.Kind)
	lister, ok := connector.(connectors.OptionLister)
	if !ok {
		return invalid("option", "%s connections have no live options", conn.Kind)
	}
	creds, err := jobs.OpenCredentials(h.Keyring, conn)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, jobs.DefaultAttemptTimeout)
	defer cancel()
	opts, err := lister.ListOptions(ctx, &connectors.Request{Config: conn.Config, Credentials: creds, HTTP: h.Engine.HTTP}, c.Param("option"))
	if err != nil {
		if _, ok := AsError(err); ok {
			return err
		}
		return newError(http.StatusBadGateway, "destination_error", "%s", err.Error())
	}
	if opts == nil {
		opts = []connectors.Option{}
	}
	return c.JSON(http.StatusOK, list(opts, ""))
}
