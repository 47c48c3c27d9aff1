package connectors

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// Intercom creates or updates a contact, a user or a lead, found by external_id or email
// (VENDOR_APIS.md §3): search, then PUT /contacts/{id} or POST /contacts; a 409 on create
// (search lags behind writes) names the existing contact, which is then updated.
//
// Config: {"region": "us" | "eu" | "au", "api_version": "2.14", "api_base": …}, all
// optional (US, 2.14), plus account_id and account_name from the OAuth connect.
// Credentials: access_token (a private app's, or OAuth: Intercom tokens do not expire).
type Intercom struct {
	policy ClientOptions
	oauth  *OAuthProvider
	now    func() time.Time
}

// NewIntercom returns the Intercom connector; oauth (may be nil) is its connect flow.
func NewIntercom(opts ClientOptions, oauth *OAuthProvider) *Intercom {
	return &Intercom{policy: opts, oauth: oauth, now: time.Now}
}

var intercomOAuth = oauthSpec{
	kind:        "intercom",
	displayName: "Intercom",
	authURL:     "https://app.intercom.com/oauth",
	tokenURL:    "https://api.intercom.io/auth/eagle/token",
	metadataURL: "https://api.intercom.io/me",
	scopeSep:    " ", // permissions are set in the Developer Hub, not per request
	tokenKey:    CredAccessToken,
	account:     intercomAccount,
}

// intercomHosts are the regional API hosts (§3.1).
var intercomHosts = map[string]string{
	"us": "https://api.intercom.io",
	"eu": "https://api.eu.intercom.io",
	"au": "https://api.au.intercom.io",
}

const intercomDefaultVersion = "2.14"

var (
	intercomVersion  = regexp.MustCompile(`^([0-9]+\.[0-9]+|Preview)$`)
	intercomConflict = regexp.MustCompile(`id=([A-Za-z0-9]+)`)
)

// Kind returns "intercom".
func (*Intercom) Kind() string { return "intercom" }

// Info describes the Intercom kind.
func (*Intercom) Info() Info {
	return Info{
		Kind:             "intercom",
		DisplayName:      "Intercom",
		AuthModes:        []AuthMode{AuthOAuth, AuthAPIKey},
		CredentialFields: []string{CredAccessToken},
		Actions: []Action{{
			Name:        "intercom.upsert_contact",
			DisplayName: "Create or update a contact (user or lead)",
			Fields: []Field{
				{Name: "role", Type: "string", Help: "user or lead; a new contact is a user when external_id is mapped, else a lead."},
				{Name: "email", Type: "string", Help: "Map email or external_id: the contact is found by external_id first."},
				{Name: "external_id", Type: "string", Help: "Your id of the user."},
				{Name: "name", Type: "string"},
				{Name: "phone", Type: "string"},
				{Name: "signed_up_at", Type: "number", Help: "Unix seconds."},
				{Name: "last_seen_at", Type: "number", Help: "Unix seconds."},
				{Name: "owner_id", Type: "number"},
				{Name: "unsubscribed_from_emails", Type: "boolean"},
				{Name: "custom_attributes", Type: "object", Help: "custom_attributes.<name> for each attribute defined in Intercom."},
			},
		}},
	}
}

// OAuthProvider returns the provider of the Intercom app, or nil.
func (i *Intercom) OAuthProvider() *OAuthProvider { return i.oauth }

type intercomConfig struct {
	APIBase    string `json:"api_base,omitempty"`
	Region     string `json:"region,omitempty"`
	APIVersion string `json:"api_version,omitempty"`
	accountInfo
}

func parseIntercomConfig(raw json.RawMessage) (intercomConfig, string, error) {
	var cfg intercomConfig
	if err := decodeConfig(raw, &cfg); err != nil {
		return cfg, "", err
	}
	host, ok := intercomHosts[cmpOr(cfg.Region, "us")]
	if !ok {
		return cfg, "", &FieldError{Field: "config.region", Message: "must be us, eu or au"}
	}
	if cfg.APIVersion == "" {
		cfg.APIVersion = intercomDefaultVersion
	} else if !intercomVersion.MatchString(cfg.APIVersion) {
		return cfg, "", &FieldError{Field: "config.api_version", Message: `must be an Intercom API version like "2.14"`}
	}
	base, err := apiBase(cfg.APIBase, host)
	return cfg, base, err
}

// ValidateConfig checks region, api_version, api_base under the network policy, and that
// an access token is present.
func (i *Intercom) ValidateConfig(config json.RawMessage, creds Credentials) error {
	cfg, _, err := parseIntercomConfig(config)
	if err != nil {
		return err
	}
	if err := checkAPIBase(i.policy, cfg.APIBase); err != nil {
		return err
	}
	if creds[CredAccessToken] == "" {
		return &FieldError{Field: "credentials." + CredAccessToken, Message: "is required (or connect with OAuth)"}
	}
	return nil
}

// Send finds the contact and updates it, or creates it.
func (i *Intercom) Send(ctx context.Context, req *Request) Result {
	cfg, base, err := parseIntercomConfig(req.Config)
	if err != nil {
		return configFailure(err)
	}
	contact, key, value, err := intercomContact(req.Payload)
	if err != nil {
		return mappingFailure(err)
	}
	v := newVendorHTTP(req)
	now := i.now()
	return bearerAuth(ctx, req, v, i.oauth, CredAccessToken, now, func(token string) (Result, bool) {
		h := intercomHeader(token, cfg.APIVersion)
		search := map[string]any{
			"query":      map[string]any{"field": key, "operator": "=", "value": value},
			"pagination": map[string]any{"per_page": 1},
		}
		res, raw, hdr := v.do(ctx, http.MethodPost, base+"/contacts/search", search, h)
		if res, rejected := intercomClassify(v, res, raw, hdr, now); res.Outcome != Succeeded {
			return res, rejected
		}
		var found struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		_ = json.Unmarshal(raw, &found)
		if len(found.Data) == 0 || found.Data[0].ID == "" {
			create := contact
			if _, ok := create["role"]; !ok {
				create = cloneMap(contact)
				create["role"] = "lead"
				if key == "external_id" {
					create["role"] = "user"
				}
			}
			res, raw, hdr = v.do(ctx, http.MethodPost, base+"/contacts", create, h)
			if res.StatusCode != http.StatusConflict {
				return intercomClassify(v, res, raw, hdr, now)
			}
			// Created meanwhile, or not yet searchable: the message names it (§3.6).
			id := intercomConflictID(raw)
			if id == "" {
				return intercomClassify(v, res, raw, hdr, now)
			}
			found.Data = append(found.Data[:0], struct {
				ID string `json:"id"`
			}{id})
		}
		res, raw, hdr = v.do(ctx, http.MethodPut, joinURL(base, "contacts", found.Data[0].ID), contact, h)
		if res.StatusCode == http.StatusNotFound {
			// Merged or deleted since the search: the next attempt searches again.
			res, rejected := intercomClassify(v, res, raw, hdr, now)
			res.Outcome, res.ErrorClass = Retry, ClassHTTP4xx
			return res, rejected
		}
		return intercomClassify(v, res, raw, hdr, now)
	})
}

// Test calls GET /me, which names the app the token belongs to.
func (i *Intercom) Test(ctx context.Context, req *Request) Result {
	cfg, base, err := parseIntercomConfig(req.Config)
	if err != nil {
		return configFailure(err)
	}
	v := newVendorHTTP(req)
	now := i.now()
	return bearerAuth(ctx, req, v, i.oauth, CredAccessToken, now, func(token string) (Result, bool) {
		res, raw, hdr := v.do(ctx, http.MethodGet, base+"/me", nil, intercomHeader(token, cfg.APIVersion))
		return intercomClassify(v, res, raw, hdr, now)
	})
}

func intercomHeader(token, version string) http.Header {
	h := bearer(token)
	h.Set("Intercom-Version", version)
	return h
}

// intercomContact checks the mapped contact and returns the search key: external_id when
// mapped (it is unique to a user), else email.
func intercomContact(payload json.RawMessage) (map[string]any, string, string, error) {
	m, err := decodePayload(payload)
	if err != nil {
		return nil, "", "", err
	}
	for k, val := range m {
		if val == nil {
			delete(m, k) // unmapped data: null would clear the attribute
		}
	}
	email, err := stringField(m, "email")
	if err != nil {
		return nil, "", "", err
	}
	externalID, err := stringField(m, "external_id")
	if err != nil {
		return nil, "", "", err
	}
	role, err := stringField(m, "role")
	if err != nil {
		return nil, "", "", err
	}
	if role != "" && role != "user" && role != "lead" {
		return nil, "", "", fmt.Errorf("role must be user or lead, not %q", role)
	}
	for k, s := range map[string]string{"email": email, "external_id": externalID, "role": role} {
		if s == "" {
			delete(m, k)
		} else {
			m[k] = s
		}
	}
	switch {
	case externalID != "":
		return m, "external_id", externalID, nil
	case email != "":
		return m, "email", email, nil
	}
	return nil, "", "", fmt.Errorf("map email or external_id: Intercom contacts are found by one of them")
}

func cloneMap(m map[string]any) map[string]any {
	c := make(map[string]any, len(m)+1)
	for k, v := range m {
		c[k] = v
	}
	return c
}

type intercomErrorList struct {
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"errors"`
}

func intercomConflictID(raw []byte) string {
	var e intercomErrorList
	_ = json.Unmarshal(raw, &e)
	for _, x := range e.Errors {
		if m := intercomConflict.FindStringSubmatch(x.Message); m != nil {
			return m[1]
		}
	}
	return ""
}

// intercomClassify adjusts Do's classification to Intercom (§3.4, §3.5) and reports
// whether the token was refused.
func intercomClassify(v *vendorHTTP, res Result, raw []byte, hdr http.Header, now time.Time) (Result, bool) {
	if res.StatusCode == 0 || res.Outcome == Succeeded {
		return res, false
	}
	var e intercomErrorList
	_ = json.Unmarshal(raw, &e)
	var details []string
	for _, x := range e.Errors {
		details = append(details, strings.TrimPrefix(x.Code+": "+x.Message, ": "))
	}
	rejected := false
	switch res.StatusCode {
	case http.StatusUnauthorized:
		res.Outcome, res.ErrorClass, rejected = AuthFailed, ClassAuth, true
	case http.StatusTooManyRequests:
		// X-RateLimit-Reset is the Unix time the 10-second window ends.
		if res.RetryAfter = rateLimitWait(hdr, now); res.RetryAfter == 0 {
			res.RetryAfter = 10 * time.Second
		}
	}
	v.setVendorMessage(&res, strings.Join(details, "; "))
	return res, rejected
}

// intercomAccount names the workspace (the app) and its region through GET /me.
func intercomAccount(ctx context.Context, p *OAuthProvider, tok *oauthToken) (OAuthAccount, error) {
	var me struct {
		App struct {
			IDCode string `json:"id_code"`
			Name   string `json:"name"`
			Region string `json:"region"`
		} `json:"app"`
	}
	if err := p.getJSON(ctx, p.app.MetadataURL, intercomHeader(tok.AccessToken, intercomDefaultVersion), &me); err != nil {
		return OAuthAccount{}, err
	}
	cfg := map[string]any{}
	switch r := strings.ToLower(me.App.Region); {
	case r == "eu" || strings.HasPrefix(r, "europe"):
		cfg["region"] = "eu"
	case r == "au" || strings.HasPrefix(r, "australia"):
		cfg["region"] = "au"
	}
	return OAuthAccount{ID: me.App.IDCode, Name: me.App.Name, Config: cfg}, nil
}
