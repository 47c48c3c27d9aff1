package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/jobs"
	"github.com/fanout-dev/fanout/jobs/connectors"
	"github.com/fanout-dev/fanout/views"
	"github.com/labstack/echo/v4"
)

// healthWindow is the window of the dashboard's delivery counts.
const healthWindow = 24 * time.Hour

// ConnectionsPage answers GET /w/:workspace/connections, where the OAuth connect flow
// ends: ?connected=<id> confirms a connection, ?oauth_error=<code> explains a failure.
func (d *Dashboard) ConnectionsPage(c echo.Context) error {
	rows, err := d.connectionRows(c)
	if err != nil {
		return err
	}
	s, err := d.shell(c, "Connections", "connections")
	if err != nil {
		return err
	}
	data := views.ConnectionsData{Rows: rows}
	for _, k := range d.kindOptions(c) {
		if k.OAuth {
			data.Connect = append(data.Connect, k)
		}
	}
	if id := c.QueryParam("connected"); id != "" {
		// Only a connection of this workspace, as listed: the id is not trusted further.
		for i := range rows {
			if rows[i].ID == id {
				data.Connected = &rows[i]
			}
		}
	}
	if code := c.QueryParam("oauth_error"); code != "" {
		data.OAuthError = views.OAuthErrorCode(code)
	}
	return render(c, http.StatusOK, views.ConnectionsPage(s, data))
}

// connectionRows lists the workspace's connections with their health: two queries.
func (d *Dashboard) connectionRows(c echo.Context) ([]views.ConnectionRow, error) {
	ctx := c.Request().Context()
	cs, err := d.Store.ListConnections(ctx, workspaceID(c))
	if err != nil {
		return nil, err
	}
	health, err := d.Store.ConnectionHealth(ctx, workspaceID(c), d.Store.Now().Add(-healthWindow))
	if err != nil {
		return nil, err
	}
	oauth := d.oauthKinds()
	rows := make([]views.ConnectionRow, len(cs))
	for i, cn := range cs {
		_, account := oauthAccount(cn)
		rows[i] = views.ConnectionRow{Connection: cn, KindName: d.kindName(cn.Kind), Health: health[cn.ID], Account: account, OAuth: oauth[cn.Kind]}
	}
	return rows, nil
}

func (d *Dashboard) kindName(kind string) string {
	if cn, ok := d.Connectors.Get(kind); ok {
		return cn.Info().DisplayName
	}
	return kind
}

// oauthKinds is the set of kinds whose OAuth app is configured (OAuthKinds).
func (d *Dashboard) oauthKinds() map[string]bool {
	set := map[string]bool{}
	for _, k := range d.OAuthKinds() {
		set[k] = true
	}
	return set
}

// oauthAccount is the vendor account an OAuth connect stored in the connection's config
// (connectors.OAuthProvider.Connection): its id and name, empty for other connections.
func oauthAccount(conn *db.Connection) (id, name string) {
	var cfg struct {
		ID   any    `json:"account_id"`
		Name string `json:"account_name"`
	}
	if json.Unmarshal(conn.Config, &cfg) != nil {
		return "", ""
	}
	switch v := cfg.ID.(type) {
	case string:
		id = v
	case float64:
		id = strconv.FormatFloat(v, 'f', -1, 64)
	}
	return id, strings.TrimSpace(cfg.Name)
}

// kindOptions describes every registered connector kind for the create form. The form
// is generic over Info(): kinds whose OAuth app is configured (OAuthKinds, not merely
// AuthModes) get a connect button, other OAuth-capable kinds a hint naming the variables
// that configure one, signing-secret kinds a generated secret, and declared credential
// fields become password inputs.
func (d *Dashboard) kindOptions(c echo.Context) []views.KindOption {
	oauth := d.oauthKinds()
	var out []views.KindOption
	for _, cn := range d.Connectors.All() {
		out = append(out, d.kindOption(c, cn, oauth[cn.Kind()]))
	}
	return out
}

func (d *Dashboard) kindOption(c echo.Context, cn connectors.Connector, oauth bool) views.KindOption {
	info := cn.Info()
	k := views.KindOption{Kind: info.Kind, DisplayName: info.DisplayName, OAuth: oauth}
	for _, m := range info.AuthModes {
		switch m {
		case connectors.AuthOAuth:
			k.OAuthCapable = true
			k.RedirectURL = d.baseURL(c) + connectors.OAuthCallbackPath(info.Kind)
		case connectors.AuthSigningSecret:
			k.SigningSecret, k.URLField = true, true
		}
	}
	for _, f := range info.CredentialFields {
		// Secrets Fanout makes or refreshes itself are not typed in.
		if strings.Contains(f, "signing_secret") || f == connectors.CredPreviousExpiresAt ||
			f == connectors.CredRefreshToken || f == connectors.CredExpiresAt {
			continue
		}
		k.CredentialFields = append(k.CredentialFields, f)
	}
	return k
}

// NewConnectionPage answers GET /w/:workspace/connections/new.
func (d *Dashboard) NewConnectionPage(c echo.Context) error {
	s, err := d.shell(c, "New connection", "connections")
	if err != nil {
		return err
	}
	f := views.ConnectionForm{Kinds: d.kindOptions(c), Kind: c.QueryParam("kind")}
	return render(c, http.StatusOK, views.NewConnectionPage(s, f))
}

// CreateConnectionPage answers POST /w/:workspace/connections (the twin of POST
// /v1/connections, through the same NewConnection). The response shows the signing
// secret once.
func (d *Dashboard) CreateConnectionPage(c echo.Context) error {
	f := views.ConnectionForm{
		Kinds: d.kindOptions(c), Kind: c.FormValue("kind"), Name: c.FormValue("name"), URL: strings.TrimSpace(c.FormValue("url")),
		APIBase: strings.TrimSpace(c.FormValue("api_base")), Headers: c.FormValue("headers"), Config: strings.TrimSpace(c.FormValue("config")),
		Errors: map[string]string{},
	}
	s, err := d.shell(c, "New connection", "connections")
	if err != nil {
		return err
	}
	if f.Selected() == nil {
		f.Kind = ""
		return render(c, http.StatusUnprocessableEntity, views.NewConnectionPage(s, f))
	}
	config, creds, ferr := connectionFormConfig(&f, c)
	var conn *db.Connection
	var secret string
	if ferr == nil {
		conn, secret, ferr = d.NewConnection(c.Request().Context(), workspaceID(c), f.Kind, f.Name, config, creds)
	}
	if ferr != nil {
		errs, msg, err := fieldErrors(ferr)
		if err != nil {
			return err
		}
		f.Errors, f.Error = errs, msg
		if len(errs) > 0 && !formHasField(errs) {
			for k, v := range errs {
				f.Error = orDefault(f.Error, k+": "+v)
			}
		}
		return render(c, http.StatusUnprocessableEntity, views.NewConnectionPage(s, f))
	}
	detail, err := d.connectionDetail(c, conn)
	if err != nil {
		return err
	}
	detail.Secret = secret
	c.Response().Header().Set("HX-Push-Url", wsPath(c, "/connections/"+conn.ID))
	return renderSecret(c, http.StatusCreated, views.ConnectionPage(s, detail))
}

// formHasField reports whether the form shows an error next to one of the fields.
func formHasField(errs map[string]string) bool {
	for k := range errs {
		switch {
		case k == "name", k == "config", k == "config.url", k == "config.api_base", k == "config.headers", strings.HasPrefix(k, "credentials."):
			return true
		}
	}
	return false
}

// connectionFormConfig builds the config and credentials of a connection from the form:
// the advanced JSON, then url, api_base and headers on top.
func connectionFormConfig(f *views.ConnectionForm, c echo.Context) (json.RawMessage, connectors.Credentials, error) {
	cfg := map[string]any{}
	if f.Config != "" {
		if err := json.Unmarshal([]byte(f.Config), &cfg); err != nil || cfg == nil {
			return nil, nil, invalid("config", "must be a JSON object, like {\"key\": \"value\"}")
		}
	}
	if f.URL != "" {
		cfg["url"] = f.URL
	}
	if f.APIBase != "" {
		cfg["api_base"] = f.APIBase
	}
	if hs := strings.TrimSpace(f.Headers); hs != "" {
		headers := map[string]string{}
		for _, line := range strings.Split(hs, "\n") {
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok || strings.TrimSpace(k) == "" {
				return nil, nil, invalid("config.headers", "write one \"Name: value\" per line")
			}
			headers[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		cfg["headers"] = headers
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, nil, invalid("config", "must be a JSON object")
	}
	creds := connectors.Credentials{}
	form, _ := c.FormParams()
	for k, vs := range form {
		if name, ok := strings.CutPrefix(k, "cred_"); ok && len(vs) > 0 && vs[0] != "" {
			creds[name] = vs[0]
		}
	}
	return raw, creds, nil
}

// ConnectionPage answers GET /w/:workspace/connections/:id.
func (d *Dashboard) ConnectionPage(c echo.Context) error {
	s, detail, err := d.connectionPage(c)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.ConnectionPage(s, detail))
}

// connectionPage loads the connection named in the path and what its page shows.
func (d *Dashboard) connectionPage(c echo.Context) (views.Shell, views.ConnectionDetail, error) {
	conn, err := d.Store.ConnectionByID(c.Request().Context(), workspaceID(c), c.Param("id"))
	if err != nil {
		return views.Shell{}, views.ConnectionDetail{}, err
	}
	s, err := d.shell(c, conn.Name, "connections")
	if err != nil {
		return views.Shell{}, views.ConnectionDetail{}, err
	}
	detail, err := d.connectionDetail(c, conn)
	return s, detail, err
}

func (d *Dashboard) connectionDetail(c echo.Context, conn *db.Connection) (views.ConnectionDetail, error) {
	ctx := c.Request().Context()
	det := views.ConnectionDetail{Conn: conn, KindName: d.kindName(conn.Kind)}
	if cn, ok := d.Connectors.Get(conn.Kind); ok {
		_, oauth := d.Connectors.OAuthProvider(conn.Kind)
		det.Kind = d.kindOption(c, cn, oauth)
	}
	det.AccountID, det.Account = oauthAccount(conn)
	health, err := d.Store.ConnectionHealth(ctx, conn.WorkspaceID, d.Store.Now().Add(-healthWindow))
	if err != nil {
		return det, err
	}
	det.Health = health[conn.ID]
	rs, err := d.Store.ListRules(ctx, conn.WorkspaceID, db.RuleFilter{})
	if err != nil {
		return det, err
	}
	for _, r := range rs {
		if slices.ContainsFunc(r.Actions, func(a *db.RuleAction) bool { return a.ConnectionID == conn.ID }) {
			det.Rules = append(det.Rules, r)
		}
	}
	creds, err := jobs.OpenCredentials(d.Keyring, conn)
	if err != nil {
		det.Error = "This connection's credentials cannot be decrypted with the current secret key."
		return det, nil
	}
	det.HasSecret = creds[connectors.CredSigningSecret] != ""
	det.Refreshes = creds[connectors.CredRefreshToken] != ""
	if t, err := time.Parse(time.RFC3339, creds[connectors.CredPreviousExpiresAt]); err == nil && creds[connectors.CredPreviousSigningSecret] != "" {
		det.PreviousUntil = &t
	}
	return det, nil
}

// TestConnectionPage answers POST /w/:workspace/connections/:id/test (the twin of POST
// /v1/connections/:id/test): a harmless call, and what the destination answered.
func (d *Dashboard) TestConnectionPage(c echo.Context) error {
	res, err := d.TestSend(c.Request().Context(), workspaceID(c), c.Param("id"))
	if err != nil {
		return err
	}
	v := &views.TestResult{OK: res.OK, Outcome: res.Outcome, StatusCode: res.StatusCode, ErrorClass: res.ErrorClass,
		Message: res.Message, Response: res.Response, DurationMS: res.DurationMS}
	if isPartial(c) {
		return render(c, http.StatusOK, views.TestResultView(v))
	}
	s, detail, err := d.connectionPage(c)
	if err != nil {
		return err
	}
	detail.Test = v
	return render(c, http.StatusOK, views.ConnectionPage(s, detail))
}

// RotateSecretPage answers POST /w/:workspace/connections/:id/rotate-secret (the twin of
// POST /v1/connections/:id/rotate-secret). The new secret is shown once.
func (d *Dashboard) RotateSecretPage(c echo.Context) error {
	ctx := c.Request().Context()
	secret, err := d.RotateSecret(ctx, workspaceID(c), c.Param("id"))
	if err != nil {
		return err
	}
	s, detail, err := d.connectionPage(c)
	if err != nil {
		return err
	}
	detail.Secret, detail.SecretRotated = secret, true
	return renderSecret(c, http.StatusOK, views.ConnectionPage(s, detail))
}

// SetConnectionEnabled answers POST …/connections/:id/enable and …/disable (the twin of
// PATCH /v1/connections/:id {"status"}). Enabling resumes the deliveries that waited.
func (d *Dashboard) SetConnectionEnabled(enable bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		conn, err := d.Store.ConnectionByID(ctx, workspaceID(c), c.Param("id"))
		if err != nil {
			return err
		}
		status, msg := db.ConnectionDisabled, "Connection disabled. Its deliveries wait until you enable it again."
		if enable {
			status, msg = db.ConnectionActive, "Connection enabled."
		}
		wasActive := conn.Status == db.ConnectionActive
		if err := d.Store.SetConnectionStatus(ctx, conn.WorkspaceID, conn.ID, status, ""); err != nil {
			return err
		}
		if enable && !wasActive {
			if err := d.ResumeConnection(ctx, conn); err != nil {
				return err
			}
		}
		setFlash(c, "success", msg)
		return redirect(c, wsPath(c, "/connections/"+conn.ID))
	}
}

// UpdateCredentialsPage answers POST /w/:workspace/connections/:id/credentials: the
// credentials form that reconnects a connection which lost access (the twin of PATCH
// /v1/connections/:id {"credentials"}). The typed credentials replace the stored ones as
// a whole (an old refresh token must not outlive a new access token), except a webhook's
// signing secrets; a connection waiting for a reconnect becomes active and its parked
// deliveries resume.
func (d *Dashboard) UpdateCredentialsPage(c echo.Context) error {
	ctx := c.Request().Context()
	conn, err := d.Store.ConnectionByID(ctx, workspaceID(c), c.Param("id"))
	if err != nil {
		return err
	}
	connector, ok := d.Connectors.Get(conn.Kind)
	if !ok {
		return invalid("kind", "unknown connector kind %q", conn.Kind)
	}
	_, oauth := d.Connectors.OAuthProvider(conn.Kind)
	kind := d.kindOption(c, connector, oauth)
	creds := connectors.Credentials{}
	for _, f := range kind.CredentialFields {
		if v := strings.TrimSpace(c.FormValue("cred_" + f)); v != "" {
			creds[f] = v
		}
	}
	var ferr error
	if len(creds) == 0 {
		ferr = badRequest("enter the new credentials")
	} else {
		// Credentials that no longer decrypt are replaced all the same.
		stored, _ := jobs.OpenCredentials(d.Keyring, conn)
		ferr = d.reconnectWith(ctx, connector, conn, replaceCredentials(stored, creds))
	}
	if ferr != nil {
		return d.credentialsFormError(c, ferr)
	}
	setFlash(c, "success", "Credentials saved. Deliveries that were waiting are resuming.")
	return redirect(c, wsPath(c, "/connections/"+conn.ID))
}

// credentialsFormError re-renders the connection page with the credentials form's
// errors (422), or returns err when it is not the user's to fix.
func (d *Dashboard) credentialsFormError(c echo.Context, ferr error) error {
	errs, msg, err := fieldErrors(ferr)
	if err != nil {
		return err
	}
	s, detail, err := d.connectionPage(c)
	if err != nil {
		return err
	}
	detail.CredErrors, detail.CredError = errs, msg
	for k, v := range errs {
		if !strings.HasPrefix(k, "credentials.") {
			detail.CredError = orDefault(detail.CredError, k+": "+v)
		}
	}
	return render(c, http.StatusUnprocessableEntity, views.ConnectionPage(s, detail))
}

// reconnectWith stores creds on conn and, when it was waiting for a reconnect, makes it
// active and resumes its parked deliveries.
func (d *Dashboard) reconnectWith(ctx context.Context, connector connectors.Connector, conn *db.Connection, creds connectors.Credentials) error {
	wasActive := conn.Status == db.ConnectionActive
	if conn.Status == db.ConnectionNeedsReconnect {
		conn.Status, conn.StatusNote = db.ConnectionActive, ""
	}
	if err := d.checkConnection(connector, conn, creds); err != nil {
		return err
	}
	if err := jobs.SealCredentials(d.Keyring, conn, creds); err != nil {
		return err
	}
	if err := d.Store.UpdateConnection(ctx, conn); err != nil {
		return err
	}
	if !wasActive && conn.Status == db.ConnectionActive {
		return d.ResumeConnection(ctx, conn)
	}
	return nil
}

// DeleteConnectionPage answers POST /w/:workspace/connections/:id/delete (the twin of
// DELETE /v1/connections/:id).
func (d *Dashboard) DeleteConnectionPage(c echo.Context) error {
	err := d.Store.DeleteConnection(c.Request().Context(), workspaceID(c), c.Param("id"))
	if errors.Is(err, db.ErrConflict) {
		setFlash(c, "error", "A rule still sends to this connection; delete or change the rule first.")
		return redirect(c, wsPath(c, "/connections/"+c.Param("id")))
	}
	if err != nil {
		return err
	}
	setFlash(c, "success", "Connection deleted.")
	return redirect(c, wsPath(c, "/connections"))
}
