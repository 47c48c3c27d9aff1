package fakes

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// HubSpotProperties are the contact properties the fake knows (§1.3); others are a
// VALIDATION_ERROR, as HubSpot answers for unknown properties.
var HubSpotProperties = []string{
	"email", "firstname", "lastname", "phone", "company", "website", "jobtitle",
	"lifecyclestage", "city", "state", "country", "zip", "plan",
}

// HubSpotLifecycleStages are the default stages' internal values (§1.3, unverified).
var HubSpotLifecycleStages = []string{
	"subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer", "evangelist", "other",
}

// HubSpot rate-limit headers sent on every authenticated answer (§1.7).
const (
	hubspotRateMax      = 190
	hubspotRateInterval = 10000
)

// HubSpotContact is a contact as the fake stores it.
type HubSpotContact struct {
	ID         string
	Properties map[string]string
	CreatedAt  time.Time
}

// HubSpot is a fake of HubSpot's CRM contacts API (VENDOR_APIS.md §1): batch upsert by
// email (200, or 207 when an input fails), search with a configurable index lag, create
// (201, or 409 "Contact already exists. Existing ID: …"), update by id or by
// ?idProperty=email (200, 404), list; 401 INVALID_AUTHENTICATION or EXPIRED_AUTHENTICATION
// for tokens Tokens refuses; 429 with policyName and the X-HubSpot-RateLimit-* headers.
// Both the v3 paths and the dated /crm/objects/{version}/contacts paths are served.
type HubSpot struct {
	*httptest.Server
	Recorder
	Tokens    *Tokens
	limited   countdown
	mu        sync.Mutex
	searchLag time.Duration
	policy    string
	byID      map[string]*HubSpotContact
	byEmail   map[string]string
	nextID    int
}

var hubspotPath = regexp.MustCompile(`^/crm/(?:v3/objects|objects/[0-9]{4}-[0-9]{2})/contacts(/.*)?$`)

// NewHubSpot starts the fake; tokens (nil: a new set) decides which bearer tokens pass.
func NewHubSpot(tb testing.TB, tokens *Tokens) *HubSpot {
	if tokens == nil {
		tokens = NewTokens()
	}
	f := &HubSpot{Tokens: tokens, byID: map[string]*HubSpotContact{}, byEmail: map[string]string{}, nextID: 101}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	tb.Cleanup(f.Close)
	return f
}

// SetSearchLag hides contacts newer than d from search (§1.5).
func (f *HubSpot) SetSearchLag(d time.Duration) {
	f.mu.Lock()
	f.searchLag = d
	f.mu.Unlock()
}

// RateLimit makes the next n API requests answer 429 under policyName
// (TEN_SECONDLY_ROLLING, SECONDLY, DAILY).
func (f *HubSpot) RateLimit(n int, policyName string) {
	f.mu.Lock()
	f.policy = policyName
	f.mu.Unlock()
	f.limited.set(n)
}

// Contact returns the stored contact with email, or nil.
func (f *HubSpot) Contact(email string) *HubSpotContact {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := f.byEmail[email]; ok {
		c := *f.byID[id]
		return &c
	}
	return nil
}

func hubspotError(w http.ResponseWriter, status int, category, msg string, extra map[string]any) {
	body := map[string]any{"status": "error", "message": msg, "correlationId": randomID("corr-"), "category": category}
	for k, v := range extra {
		body[k] = v
	}
	writeJSON(w, status, "", body)
}

func (f *HubSpot) serve(w http.ResponseWriter, r *http.Request) {
	req := f.record(r)
	m := hubspotPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		hubspotError(w, http.StatusNotFound, "OBJECT_NOT_FOUND", "no such endpoint", nil)
		return
	}
	token := bearerToken(r)
	switch f.Tokens.Check(token) {
	case TokenValid:
	case TokenExpired:
		hubspotError(w, http.StatusUnauthorized, "EXPIRED_AUTHENTICATION",
			fmt.Sprintf("The OAuth token used to make this call expired %d second(s) ago.", int(f.Tokens.expiredFor(token)/time.Second)), nil)
		return
	default:
		hubspotError(w, http.StatusUnauthorized, "INVALID_AUTHENTICATION",
			"Authentication credentials not found. This API supports OAuth 2.0 authentication.", nil)
		return
	}
	h := w.Header()
	h.Set("X-HubSpot-RateLimit-Max", strconv.Itoa(hubspotRateMax))
	h.Set("X-HubSpot-RateLimit-Interval-Milliseconds", strconv.Itoa(hubspotRateInterval))
	if f.limited.take() {
		f.mu.Lock()
		policy := f.policy
		f.mu.Unlock()
		if policy == "" {
			policy = "TEN_SECONDLY_ROLLING"
		}
		h.Set("X-HubSpot-RateLimit-Remaining", "0")
		hubspotError(w, http.StatusTooManyRequests, "RATE_LIMITS",
			"You have reached your "+strings.ToLower(policy)+" limit.", map[string]any{"errorType": "RATE_LIMIT", "policyName": policy})
		return
	}
	h.Set("X-HubSpot-RateLimit-Remaining", strconv.Itoa(hubspotRateMax-1))
	if !f.Tokens.HasScope(token, "crm.objects.contacts.write") && r.Method != http.MethodGet {
		hubspotError(w, http.StatusForbidden, "MISSING_SCOPES", "This app hasn't been granted all required scopes to make this call.",
			map[string]any{"context": map[string]any{"missingScopes": []string{"crm.objects.contacts.write"}}})
		return
	}
	switch rest := m[1]; {
	case rest == "/batch/upsert" && r.Method == http.MethodPost:
		f.batchUpsert(w, req)
	case rest == "/search" && r.Method == http.MethodPost:
		f.search(w, req)
	case rest == "" && r.Method == http.MethodPost:
		f.create(w, req)
	case rest == "" && r.Method == http.MethodGet:
		f.list(w)
	case strings.HasPrefix(rest, "/") && r.Method == http.MethodPatch:
		f.update(w, req, strings.TrimPrefix(rest, "/"), r.URL.Query().Get("idProperty"))
	default:
		hubspotError(w, http.StatusMethodNotAllowed, "VALIDATION_ERROR", "method not allowed", nil)
	}
}

// properties checks a properties object: known names, string values, a valid stage.
func (f *HubSpot) properties(raw map[string]any) (map[string]string, string) {
	props := map[string]string{}
	for k, v := range raw {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Sprintf("Property values were not valid: %s must be a string", k)
		}
		known := false
		for _, p := range HubSpotProperties {
			known = known || p == k
		}
		if !known {
			return nil, fmt.Sprintf("Property values were not valid: Property %q does not exist", k)
		}
		props[k] = s
	}
	if st, ok := props["lifecyclestage"]; ok && st != "" {
		valid := false
		for _, x := range HubSpotLifecycleStages {
			valid = valid || x == st
		}
		if !valid {
			return nil, fmt.Sprintf("Property values were not valid: %s was not one of the allowed options", st)
		}
	}
	return props, ""
}

func (f *HubSpot) contactJSON(c *HubSpotContact, isNew bool, trace string) map[string]any {
	props := map[string]any{"hs_object_id": c.ID}
	for k, v := range c.Properties {
		props[k] = v
	}
	out := map[string]any{"id": c.ID, "properties": props, "createdAt": c.CreatedAt.Format(time.RFC3339Nano),
		"updatedAt": time.Now().UTC().Format(time.RFC3339Nano), "archived": false, "new": isNew}
	if trace != "" {
		out["objectWriteTraceId"] = trace
	}
	return out
}

func (f *HubSpot) batchUpsert(w http.ResponseWriter, req Request) {
	var body struct {
		Inputs []struct {
			IDProperty         string         `json:"idProperty"`
			ID                 string         `json:"id"`
			Properties         map[string]any `json:"properties"`
			ObjectWriteTraceID string         `json:"objectWriteTraceId"`
		} `json:"inputs"`
	}
	if err := decodeJSON(req.Body, &body); err != nil || len(body.Inputs) == 0 {
		hubspotError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Invalid input JSON: inputs is required", nil)
		return
	}
	if len(body.Inputs) > 100 {
		hubspotError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Batch input must contain at most 100 inputs", nil)
		return
	}
	started := time.Now().UTC()
	var results, errs []map[string]any
	f.mu.Lock()
	for _, in := range body.Inputs {
		if in.IDProperty != "email" || in.ID == "" {
			f.mu.Unlock()
			hubspotError(w, http.StatusBadRequest, "VALIDATION_ERROR", "idProperty must be a unique property (email) and id its value", nil)
			return
		}
		props, bad := f.properties(in.Properties)
		if bad != "" {
			errs = append(errs, map[string]any{"status": "error", "category": "VALIDATION_ERROR", "message": bad,
				"context": map[string]any{"id": []string{in.ID}}, "errors": []any{}, "objectWriteTraceId": in.ObjectWriteTraceID})
			continue
		}
		id, exists := f.byEmail[in.ID] // exact match (§1.4)
		if !exists {
			id = strconv.Itoa(f.nextID)
			f.nextID++
			f.byID[id] = &HubSpotContact{ID: id, Properties: map[string]string{"email": in.ID}, CreatedAt: time.Now().UTC()}
			f.byEmail[in.ID] = id
		}
		c := f.byID[id]
		for k, v := range props {
			c.Properties[k] = v
		}
		results = append(results, f.contactJSON(c, !exists, in.ObjectWriteTraceID))
	}
	f.mu.Unlock()
	out := map[string]any{"status": "COMPLETE", "results": results, "startedAt": started.Format(time.RFC3339Nano), "completedAt": time.Now().UTC().Format(time.RFC3339Nano)}
	if results == nil {
		out["results"] = []any{}
	}
	if len(errs) > 0 {
		out["errors"], out["numErrors"] = errs, len(errs)
		writeJSON(w, http.StatusMultiStatus, "", out)
		return
	}
	writeJSON(w, http.StatusOK, "", out)
}

func (f *HubSpot) search(w http.ResponseWriter, req Request) {
	var body struct {
		FilterGroups []struct {
			Filters []struct {
				PropertyName, Operator, Value string
			} `json:"filters"`
		} `json:"filterGroups"`
	}
	if err := json.Unmarshal(req.Body, &body); err != nil {
		hubspotError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Invalid input JSON", nil)
		return
	}
	var results []map[string]any
	f.mu.Lock()
	for _, g := range body.FilterGroups {
		for _, flt := range g.Filters {
			if flt.PropertyName != "email" || flt.Operator != "EQ" {
				continue
			}
			if id, ok := f.byEmail[flt.Value]; ok && time.Since(f.byID[id].CreatedAt) >= f.searchLag {
				results = append(results, f.contactJSON(f.byID[id], false, ""))
			}
		}
	}
	f.mu.Unlock()
	if results == nil {
		results = []map[string]any{}
	}
	writeJSON(w, http.StatusOK, "", map[string]any{"total": len(results), "results": results})
}

func (f *HubSpot) create(w http.ResponseWriter, req Request) {
	var body struct {
		Properties map[string]any `json:"properties"`
	}
	if err := decodeJSON(req.Body, &body); err != nil {
		hubspotError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Invalid input JSON", nil)
		return
	}
	props, bad := f.properties(body.Properties)
	if bad != "" {
		hubspotError(w, http.StatusBadRequest, "VALIDATION_ERROR", bad, nil)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := f.byEmail[props["email"]]; ok && props["email"] != "" {
		hubspotError(w, http.StatusConflict, "CONFLICT", "Contact already exists. Existing ID: "+id, nil)
		return
	}
	id := strconv.Itoa(f.nextID)
	f.nextID++
	c := &HubSpotContact{ID: id, Properties: props, CreatedAt: time.Now().UTC()}
	f.byID[id] = c
	if props["email"] != "" {
		f.byEmail[props["email"]] = id
	}
	writeJSON(w, http.StatusCreated, "", f.contactJSON(c, true, ""))
}

func (f *HubSpot) update(w http.ResponseWriter, req Request, key, idProperty string) {
	var body struct {
		Properties map[string]any `json:"properties"`
	}
	if err := decodeJSON(req.Body, &body); err != nil {
		hubspotError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Invalid input JSON", nil)
		return
	}
	props, bad := f.properties(body.Properties)
	if bad != "" {
		hubspotError(w, http.StatusBadRequest, "VALIDATION_ERROR", bad, nil)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id := key
	if idProperty == "email" {
		id = f.byEmail[key]
	}
	c, ok := f.byID[id]
	if !ok {
		hubspotError(w, http.StatusNotFound, "OBJECT_NOT_FOUND", "resource not found", nil)
		return
	}
	for k, v := range props {
		c.Properties[k] = v
	}
	writeJSON(w, http.StatusOK, "", f.contactJSON(c, false, ""))
}

func (f *HubSpot) list(w http.ResponseWriter) {
	f.mu.Lock()
	var results []map[string]any
	for _, c := range f.byID {
		results = append(results, f.contactJSON(c, false, ""))
		break // limit=1 is all the connector asks for
	}
	f.mu.Unlock()
	if results == nil {
		results = []map[string]any{}
	}
	writeJSON(w, http.StatusOK, "", map[string]any{"results": results})
}

// jsonNumber renders s as a JSON number when it is one, else as a string.
func jsonNumber(s string) any {
	if _, err := strconv.ParseInt(s, 10, 64); err == nil {
		return json.Number(s)
	}
	return s
}
