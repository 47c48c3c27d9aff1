package connectors

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// HubSpot creates or updates contacts by email with the CRM batch upsert
// (VENDOR_APIS.md §1.4): idempotent, one request, no search-index lag.
//
// Config: {"api_base": "https://api-eu1.hubapi.com", "api_version": "v3" | "2026-03"},
// both optional (api_version picks /crm/v3/… or the dated /crm/objects/2026-03/… paths),
// plus account_id and account_name, set by the OAuth connect.
//
// Credentials: access_token, a private app token; or an OAuth token with refresh_token
// and expires_at, refreshed two minutes before it expires (access tokens live 30 minutes)
// and after a 401.
type HubSpot struct {
	policy ClientOptions
	oauth  *OAuthProvider
	now    func() time.Time
}

// NewHubSpot returns the HubSpot connector. opts is the network policy that
// ValidateConfig applies to config.api_base; oauth, when not nil, refreshes OAuth tokens.
func NewHubSpot(opts ClientOptions, oauth *OAuthProvider) *HubSpot {
	return &HubSpot{policy: opts, oauth: oauth, now: time.Now}
}

var hubspotOAuth = oauthSpec{
	kind:        "hubspot",
	displayName: "HubSpot",
	authURL:     "https://app.hubspot.com/oauth/authorize",
	// The v1 endpoint answers in RFC 6749 snake_case and works until 16 Feb 2027; set
	// FANOUT_HUBSPOT_TOKEN_URL to https://api.hubapi.com/oauth/2026-03/token to move on
	// (either spelling of the answer is understood).
	tokenURL:    "https://api.hubapi.com/oauth/v1/token",
	metadataURL: "https://api.hubapi.com/oauth/v1/access-tokens/",
	scopes:      []string{"crm.objects.contacts.write", "crm.objects.contacts.read", "oauth"},
	scopeSep:    " ",
	refreshable: true,
	tokenKey:    CredAccessToken,
	account:     hubspotAccount,
}

const hubspotDefaultBase = "https://api.hubapi.com"

var hubspotDatedVersion = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}$`)

// Kind returns "hubspot".
func (*HubSpot) Kind() string { return "hubspot" }

// Info describes the HubSpot kind.
func (*HubSpot) Info() Info {
	return Info{
		Kind:             "hubspot",
		DisplayName:      "HubSpot",
		AuthModes:        []AuthMode{AuthOAuth, AuthAPIKey},
		CredentialFields: []string{CredAccessToken, CredRefreshToken, CredExpiresAt},
		Actions: []Action{{
			Name:        "hubspot.upsert_contact",
			DisplayName: "Create or update a contact (by email)",
			Fields: []Field{
				{Name: "email", Type: "string", Required: true, Help: "Upsert key; trimmed and lower-cased."},
				{Name: "firstname", Type: "string"},
				{Name: "lastname", Type: "string"},
				{Name: "phone", Type: "string"},
				{Name: "company", Type: "string"},
				{Name: "website", Type: "string"},
				{Name: "jobtitle", Type: "string"},
				{Name: "lifecyclestage", Type: "string", Help: "Internal value: subscriber, lead, marketingqualifiedlead, salesqualifiedlead, opportunity, customer, evangelist, other."},
				{Name: "city", Type: "string"},
				{Name: "country", Type: "string"},
			},
		}},
	}
}

// OAuthProvider returns the provider of the HubSpot app, or nil.
func (h *HubSpot) OAuthProvider() *OAuthProvider { return h.oauth }

type hubspotConfig struct {
	APIBase    string `json:"api_base,omitempty"`
	APIVersion string `json:"api_version,omitempty"`
	accountInfo
}

func parseHubSpotConfig(raw json.RawMessage) (hubspotConfig, string, error) {
	var cfg hubspotConfig
	if err := decodeConfig(raw, &cfg); err != nil {
		return cfg, "", err
	}
	if v := cfg.APIVersion; v != "" && v != "v3" && !hubspotDatedVersion.MatchString(v) {
		return cfg, "", &FieldError{Field: "config.api_version", Message: `must be "v3" or a dated version like "2026-03"`}
	}
	base, err := apiBase(cfg.APIBase, hubspotDefaultBase)
	return cfg, base, err
}

// contactsPath is the contacts object path of the configured API version.
func (c hubspotConfig) contactsPath() string {
	if c.APIVersion == "" || c.APIVersion == "v3" {
		return "/crm/v3/objects/contacts"
	}
	return "/crm/objects/" + c.APIVersion + "/contacts"
}

// ValidateConfig checks config (api_base under the network policy, api_version) and that
// an access token is present.
func (h *HubSpot) ValidateConfig(config json.RawMessage, creds Credentials) error {
	cfg, _, err := parseHubSpotConfig(config)
	if err != nil {
		return err
	}
	if err := checkAPIBase(h.policy, cfg.APIBase); err != nil {
		return err
	}
	if creds[CredAccessToken] == "" {
		return &FieldError{Field: "credentials." + CredAccessToken, Message: "is required (a private app token, or connect with OAuth)"}
	}
	return checkExpiresAt(creds)
}

// Send upserts the mapped contact: every mapped target is a contact property, sent as a
// string (lists are joined with ";", as multi-select values are).
func (h *HubSpot) Send(ctx context.Context, req *Request) Result {
	cfg, base, err := parseHubSpotConfig(req.Config)
	if err != nil {
		return configFailure(err)
	}
	props, err := hubspotProperties(req.Payload)
	if err != nil {
		return mappingFailure(err)
	}
	input := map[string]any{"idProperty": "email", "id": props["email"], "properties": props}
	if req.DeliveryID != "" {
		input["objectWriteTraceId"] = req.DeliveryID
	}
	body := map[string]any{"inputs": []any{input}}
	endpoint := base + cfg.contactsPath() + "/batch/upsert"
	v := newVendorHTTP(req)
	now := h.now()
	return bearerAuth(ctx, req, v, h.oauth, CredAccessToken, now, func(token string) (Result, bool) {
		res, raw, hdr := v.do(ctx, http.MethodPost, endpoint, body, bearer(token))
		return hubspotClassify(v, res, raw, hdr, now)
	})
}

// Test reads one contact: harmless, and it proves the token and its read scope.
func (h *HubSpot) Test(ctx context.Context, req *Request) Result {
	cfg, base, err := parseHubSpotConfig(req.Config)
	if err != nil {
		return configFailure(err)
	}
	endpoint := base + cfg.contactsPath() + "?limit=1"
	v := newVendorHTTP(req)
	now := h.now()
	return bearerAuth(ctx, req, v, h.oauth, CredAccessToken, now, func(token string) (Result, bool) {
		res, raw, hdr := v.do(ctx, http.MethodGet, endpoint, nil, bearer(token))
		return hubspotClassify(v, res, raw, hdr, now)
	})
}

func hubspotProperties(payload json.RawMessage) (map[string]string, error) {
	m, err := decodePayload(payload)
	if err != nil {
		return nil, err
	}
	props := make(map[string]string, len(m))
	for k, v := range m {
		switch x := v.(type) {
		case nil:
			continue // an unmapped value; "" would clear the property
		case map[string]any:
			return nil, fmt.Errorf("property %q must be a value, not an object: HubSpot properties are flat", k)
		case []any:
			parts := make([]string, 0, len(x))
			for _, e := range x {
				s, ok := scalarString(e)
				if !ok {
					return nil, fmt.Errorf("property %q must be a list of values", k)
				}
				parts = append(parts, s)
			}
			props[k] = strings.Join(parts, ";")
		default:
			s, _ := scalarString(x)
			props[k] = s
		}
	}
	email := strings.ToLower(strings.TrimSpace(props["email"]))
	if email == "" {
		return nil, fmt.Errorf("email is empty: HubSpot upserts contacts by email")
	}
	props["email"] = email
	return props, nil
}

// hubspotError is HubSpot's error body (every field optional, §1.6), also the envelope
// of a 207 partial failure.
type hubspotError struct {
	Message    string `json:"message"`
	Category   string `json:"category"`
	PolicyName string `json:"policyName"`
	Context    struct {
		MissingScopes []string `json:"missingScopes"`
	} `json:"context"`
	Errors []struct {
		Message  string `json:"message"`
		Category string `json:"category"`
	} `json:"errors"`
}

// hubspotClassify adjusts Do's classification to HubSpot and reports whether the token
// itself was refused (401: INVALID_AUTHENTICATION, EXPIRED_AUTHENTICATION).
func hubspotClassify(v *vendorHTTP, res Result, raw []byte, hdr http.Header, now time.Time) (Result, bool) {
	if res.StatusCode == 0 {
		return res, false
	}
	var e hubspotError
	_ = json.Unmarshal(raw, &e)
	detail := strings.TrimPrefix(e.Category+": "+e.Message, ": ")
	rejected := false
	switch {
	case res.StatusCode == http.StatusMultiStatus || (res.Outcome == Succeeded && len(e.Errors) > 0):
		res.Outcome, res.ErrorClass, res.Message = Permanent, ClassVendor, "HubSpot rejected the contact"
		if len(e.Errors) > 0 {
			detail = strings.TrimPrefix(e.Errors[0].Category+": "+e.Errors[0].Message, ": ")
		}
	case res.StatusCode == http.StatusUnauthorized:
		res.Outcome, res.ErrorClass, rejected = AuthFailed, ClassAuth, true
	case res.StatusCode == http.StatusForbidden && (e.Category == "MISSING_SCOPES" || len(e.Context.MissingScopes) > 0):
		// Only a new token with the scopes helps: park the deliveries until reconnected.
		res.Outcome, res.ErrorClass = AuthFailed, ClassAuth
		if len(e.Context.MissingScopes) > 0 {
			detail = "missing scopes " + strings.Join(e.Context.MissingScopes, ", ")
		}
	case res.StatusCode == http.StatusTooManyRequests:
		res.RetryAfter = hubspotWait(hdr, e, now)
	case res.StatusCode == http.StatusLocked:
		// The record is locked by another write; HubSpot's SDKs wait about 2 s.
		res.Outcome, res.ErrorClass, res.RetryAfter = Retry, ClassHTTP4xx, 2*time.Second
	}
	v.setVendorMessage(&res, detail)
	return res, rejected
}

// hubspotWait is the wait a 429 asks for: Retry-After if sent; otherwise the window of
// the policy hit (§1.6: TEN_SECONDLY_ROLLING 10 s, SECONDLY 1 s, DAILY an hour, which the
// engine repeats without using attempts), then the rate-limit headers' interval.
func hubspotWait(hdr http.Header, e hubspotError, now time.Time) time.Duration {
	if d := ParseRetryAfter(hdr.Get("Retry-After"), now); d > 0 {
		return d
	}
	switch {
	case e.PolicyName == "SECONDLY" || strings.Contains(e.Message, "secondly limit"):
		return time.Second
	case e.PolicyName == "TEN_SECONDLY_ROLLING":
		return 10 * time.Second
	case e.PolicyName == "DAILY":
		return time.Hour
	}
	if ms, err := strconv.Atoi(hdr.Get("X-HubSpot-RateLimit-Interval-Milliseconds")); err == nil && ms > 0 && ms <= 60_000 {
		return time.Duration(ms) * time.Millisecond
	}
	return 10 * time.Second
}

// hubspotAccount names the portal through the token's metadata (§1.2).
func hubspotAccount(ctx context.Context, p *OAuthProvider, tok *oauthToken) (OAuthAccount, error) {
	var info map[string]any
	if err := p.getJSON(ctx, p.app.MetadataURL+url.PathEscape(tok.AccessToken), nil, &info); err != nil {
		return OAuthAccount{}, err
	}
	id, _ := scalarString(info["hub_id"])
	if id == "" {
		id, _ = scalarString(tok.Raw["hubId"])
	}
	name, _ := info["hub_domain"].(string)
	if name == "" {
		name = id
	}
	return OAuthAccount{ID: id, Name: name, Config: map[string]any{}}, nil
}
