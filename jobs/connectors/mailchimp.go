package connectors

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Mailchimp adds or updates audience members (VENDOR_APIS.md §2): PUT
// /3.0/lists/{list_id}/members/{md5(lower(email))}, idempotent; tags go through the
// member's tags endpoint afterwards, since the PUT body takes none.
//
// Config: {"dc": "us6", "api_base": "https://us6.api.mailchimp.com"}, both optional with
// an API key (its suffix after the last "-" is the data centre); an OAuth connection gets
// dc from Mailchimp's metadata endpoint. Credentials: api_key (HTTP Basic) or
// access_token (OAuth; Mailchimp tokens do not expire).
type Mailchimp struct {
	policy ClientOptions
	oauth  *OAuthProvider
}

// NewMailchimp returns the Mailchimp connector; oauth (may be nil) is its connect flow.
func NewMailchimp(opts ClientOptions, oauth *OAuthProvider) *Mailchimp {
	return &Mailchimp{policy: opts, oauth: oauth}
}

var mailchimpOAuth = oauthSpec{
	kind:        "mailchimp",
	displayName: "Mailchimp",
	authURL:     "https://login.mailchimp.com/oauth2/authorize",
	tokenURL:    "https://login.mailchimp.com/oauth2/token",
	metadataURL: "https://login.mailchimp.com/oauth2/metadata",
	scopeSep:    " ",
	tokenKey:    CredAccessToken,
	account:     mailchimpAccount,
}

// mailchimpDC is a data centre: it becomes part of a host name, so nothing else passes.
var mailchimpDC = regexp.MustCompile(`^[a-z]{2,8}[0-9]{1,4}$`)

var mailchimpListID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// mailchimpStatuses are the values of status and status_if_new.
var mailchimpStatuses = []string{"subscribed", "unsubscribed", "cleaned", "pending", "transactional"}

// Kind returns "mailchimp".
func (*Mailchimp) Kind() string { return "mailchimp" }

// Info describes the Mailchimp kind.
func (*Mailchimp) Info() Info {
	return Info{
		Kind:             "mailchimp",
		DisplayName:      "Mailchimp",
		AuthModes:        []AuthMode{AuthOAuth, AuthAPIKey},
		CredentialFields: []string{CredAPIKey, CredAccessToken},
		Actions: []Action{{
			Name:        "mailchimp.upsert_member",
			DisplayName: "Add or update an audience member",
			Fields: []Field{
				{Name: "email_address", Type: "string", Required: true},
				{Name: "status_if_new", Type: "string", Required: true, Help: "For a new member: subscribed, unsubscribed, cleaned, pending (double opt-in) or transactional."},
				{Name: "status", Type: "string", Help: "Also changes an existing member's status."},
				{Name: "merge_fields", Type: "object", Help: "merge_fields.FNAME, merge_fields.LNAME, … (the audience's merge tags)."},
				{Name: "tags", Type: "array", Help: "Tag names to add (a list, or one name)."},
				{Name: "interests", Type: "object", Help: "interests.<interest id>: true or false."},
				{Name: "language", Type: "string"},
				{Name: "vip", Type: "boolean"},
				{Name: "email_type", Type: "string", Help: "html or text."},
			},
			Options: []Field{
				{Name: "list_id", Type: "string", Required: true, Help: "The audience (list) id."},
				{Name: "skip_merge_validation", Type: "boolean", Help: "Accept the member even if required merge fields are missing."},
			},
		}},
	}
}

// OAuthProvider returns the provider of the Mailchimp app, or nil.
func (m *Mailchimp) OAuthProvider() *OAuthProvider { return m.oauth }

type mailchimpConfig struct {
	APIBase string `json:"api_base,omitempty"`
	DC      string `json:"dc,omitempty"`
	accountInfo
}

type mailchimpAuth struct {
	base   string
	header http.Header
}

// mailchimpConnection resolves the API base and the Authorization header.
func mailchimpConnection(raw json.RawMessage, creds Credentials) (mailchimpConfig, mailchimpAuth, error) {
	var cfg mailchimpConfig
	if err := decodeConfig(raw, &cfg); err != nil {
		return cfg, mailchimpAuth{}, err
	}
	if cfg.DC != "" && !mailchimpDC.MatchString(cfg.DC) {
		return cfg, mailchimpAuth{}, &FieldError{Field: "config.dc", Message: `must be a data centre like "us6"`}
	}
	var auth mailchimpAuth
	dc := cfg.DC
	switch key, token := creds[CredAPIKey], creds[CredAccessToken]; {
	case key != "":
		i := strings.LastIndexByte(key, '-')
		if i < 0 || !mailchimpDC.MatchString(key[i+1:]) {
			return cfg, auth, &FieldError{Field: "credentials." + CredAPIKey, Message: `must end in its data centre, like "…-us6"`}
		}
		if dc != "" && dc != key[i+1:] {
			return cfg, auth, &FieldError{Field: "config.dc", Message: "differs from the API key's data centre"}
		}
		dc = key[i+1:]
		auth.header = http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("fanout:"+key))}}
	case token != "":
		if dc == "" && cfg.APIBase == "" {
			return cfg, auth, &FieldError{Field: "config.dc", Message: "is required with an OAuth access token (connect through OAuth to fill it in)"}
		}
		auth.header = bearer(token)
	default:
		return cfg, auth, &FieldError{Field: "credentials." + CredAPIKey, Message: "is required (or connect with OAuth)"}
	}
	base, err := apiBase(cfg.APIBase, "https://"+dc+".api.mailchimp.com")
	auth.base = base
	return cfg, auth, err
}

// ValidateConfig checks the data centre, api_base under the network policy, and the
// credentials.
func (m *Mailchimp) ValidateConfig(config json.RawMessage, creds Credentials) error {
	cfg, _, err := mailchimpConnection(config, creds)
	if err != nil {
		return err
	}
	return checkAPIBase(m.policy, cfg.APIBase)
}

type mailchimpOptions struct {
	ListID              string `json:"list_id"`
	SkipMergeValidation bool   `json:"skip_merge_validation"`
}

// Send upserts the member, then adds its tags.
func (m *Mailchimp) Send(ctx context.Context, req *Request) Result {
	_, auth, err := mailchimpConnection(req.Config, req.Credentials)
	if err != nil {
		return configFailure(err)
	}
	var opts mailchimpOptions
	if err := decodeOptions(req.Options, &opts); err != nil {
		return configFailure(err)
	}
	if !mailchimpListID.MatchString(opts.ListID) {
		return configFailure(&FieldError{Field: "options.list_id", Message: "is required: the audience id"})
	}
	member, tags, hash, err := mailchimpMember(req.Payload)
	if err != nil {
		return mappingFailure(err)
	}
	v := newVendorHTTP(req)
	endpoint := joinURL(auth.base+"/3.0", "lists", opts.ListID, "members", hash)
	put := endpoint
	if opts.SkipMergeValidation {
		put += "?skip_merge_validation=true"
	}
	res, raw, hdr := v.do(ctx, http.MethodPut, put, member, auth.header)
	if res = mailchimpClassify(v, res, raw, hdr); res.Outcome != Succeeded || len(tags) == 0 {
		return res
	}
	body := map[string]any{"tags": tags}
	res, raw, hdr = v.do(ctx, http.MethodPost, endpoint+"/tags", body, auth.header)
	return mailchimpClassify(v, res, raw, hdr)
}

// Test calls /3.0/ping, Mailchimp's health check, which proves the key and data centre.
func (m *Mailchimp) Test(ctx context.Context, req *Request) Result {
	_, auth, err := mailchimpConnection(req.Config, req.Credentials)
	if err != nil {
		return configFailure(err)
	}
	v := newVendorHTTP(req)
	res, raw, hdr := v.do(ctx, http.MethodGet, auth.base+"/3.0/ping", nil, auth.header)
	return mailchimpClassify(v, res, raw, hdr)
}

// ListOptions lists the account's audiences for list_id.
func (m *Mailchimp) ListOptions(ctx context.Context, req *Request, option string) ([]Option, error) {
	if option != "list_id" {
		return nil, &FieldError{Field: "option", Message: fmt.Sprintf("mailchimp has no list for %q", option)}
	}
	_, auth, err := mailchimpConnection(req.Config, req.Credentials)
	if err != nil {
		return nil, err
	}
	v := newVendorHTTP(req)
	res, raw, hdr := v.do(ctx, http.MethodGet, auth.base+"/3.0/lists?fields=lists.id,lists.name&count=1000", nil, auth.header)
	if res = mailchimpClassify(v, res, raw, hdr); res.Outcome != Succeeded {
		return nil, fmt.Errorf("list audiences: %s", res.Message)
	}
	var body struct {
		Lists []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"lists"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, fmt.Errorf("list audiences: unreadable answer")
	}
	out := make([]Option, 0, len(body.Lists))
	for _, l := range body.Lists {
		out = append(out, Option{Value: l.ID, Label: l.Name})
	}
	return out, nil
}

// mailchimpMember builds the PUT body from the mapped payload (every target but tags is a
// member field) and returns the tags to add and the subscriber hash.
func mailchimpMember(payload json.RawMessage) (map[string]any, []map[string]string, string, error) {
	m, err := decodePayload(payload)
	if err != nil {
		return nil, nil, "", err
	}
	email, err := stringField(m, "email_address")
	if err != nil {
		return nil, nil, "", err
	}
	if email == "" {
		return nil, nil, "", fmt.Errorf("email_address is empty")
	}
	m["email_address"] = email
	for _, k := range []string{"status", "status_if_new"} {
		s, err := stringField(m, k)
		if err != nil {
			return nil, nil, "", err
		}
		if s == "" {
			delete(m, k)
			continue
		}
		if !slices.Contains(mailchimpStatuses, s) {
			return nil, nil, "", fmt.Errorf("%s must be one of %s, not %q", k, strings.Join(mailchimpStatuses, ", "), s)
		}
		m[k] = s
	}
	var tags []map[string]string
	switch t := m["tags"].(type) {
	case nil:
	case string:
		if t = strings.TrimSpace(t); t != "" {
			tags = append(tags, map[string]string{"name": t, "status": "active"})
		}
	case []any:
		for _, e := range t {
			s, ok := scalarString(e)
			if !ok {
				return nil, nil, "", fmt.Errorf("tags must be a list of names")
			}
			if s = strings.TrimSpace(s); s != "" {
				tags = append(tags, map[string]string{"name": s, "status": "active"})
			}
		}
	default:
		return nil, nil, "", fmt.Errorf("tags must be a list of names")
	}
	delete(m, "tags")
	sum := md5.Sum([]byte(strings.ToLower(email)))
	return m, tags, hex.EncodeToString(sum[:]), nil
}

// mailchimpProblem is Mailchimp's RFC 7807 error body (§2.5).
type mailchimpProblem struct {
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Errors []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

// mailchimpClassify adjusts Do's classification: a refused key or token (401, or 403
// User Disabled) needs a reconnect, a wrong data centre is a configuration error.
func mailchimpClassify(v *vendorHTTP, res Result, raw []byte, hdr http.Header) Result {
	if res.StatusCode == 0 || res.Outcome == Succeeded {
		return res
	}
	var p mailchimpProblem
	_ = json.Unmarshal(raw, &p)
	detail := strings.TrimPrefix(p.Title+": "+p.Detail, ": ")
	for _, e := range p.Errors {
		detail += fmt.Sprintf(" [%s: %s]", e.Field, e.Message)
	}
	switch {
	case res.StatusCode == http.StatusUnauthorized, res.StatusCode == http.StatusForbidden && p.Title == "User Disabled":
		res.Outcome, res.ErrorClass = AuthFailed, ClassAuth
	case res.StatusCode == http.StatusForbidden && p.Title == "Wrong Datacenter":
		res.Outcome, res.ErrorClass = Permanent, ClassConfig
	case res.StatusCode == http.StatusTooManyRequests:
		// Mailchimp limits concurrent connections and documents no wait: a short one.
		if res.RetryAfter = rateLimitWait(hdr, time.Now()); res.RetryAfter == 0 {
			res.RetryAfter = 5 * time.Second
		}
	}
	v.setVendorMessage(&res, detail)
	return res
}

// mailchimpAccount reads the data centre and account name from the metadata endpoint
// (§2.2). api_base is kept only when the API endpoint is not the data centre's usual host
// (a fake, a proxy).
func mailchimpAccount(ctx context.Context, p *OAuthProvider, tok *oauthToken) (OAuthAccount, error) {
	var meta struct {
		DC          string         `json:"dc"`
		APIEndpoint string         `json:"api_endpoint"`
		AccountName string         `json:"accountname"`
		UserID      any            `json:"user_id"`
		Login       map[string]any `json:"login"`
	}
	if err := p.getJSON(ctx, p.app.MetadataURL, http.Header{"Authorization": {"OAuth " + tok.AccessToken}}, &meta); err != nil {
		return OAuthAccount{}, err
	}
	if !mailchimpDC.MatchString(meta.DC) {
		return OAuthAccount{}, fmt.Errorf("the metadata has no valid data centre")
	}
	cfg := map[string]any{"dc": meta.DC}
	if ep := strings.TrimRight(meta.APIEndpoint, "/"); ep != "" && ep != "https://"+meta.DC+".api.mailchimp.com" {
		if _, err := apiBase(ep, ""); err != nil {
			return OAuthAccount{}, fmt.Errorf("the metadata's api_endpoint is not a base URL")
		}
		cfg["api_base"] = ep
	}
	id, _ := scalarString(meta.UserID)
	if id == "" {
		id, _ = scalarString(meta.Login["login_id"])
	}
	name := meta.AccountName
	if name == "" {
		name, _ = meta.Login["login_name"].(string)
	}
	return OAuthAccount{ID: id, Name: name, Config: cfg}, nil
}
