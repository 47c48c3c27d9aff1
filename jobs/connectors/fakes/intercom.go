package fakes

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Intercom rate limit of the fake: 10,000 calls a minute spread over 10-second windows
// (§3.5).
const intercomWindowLimit = 1667

// Intercom is a fake of Intercom's contacts API (VENDOR_APIS.md §3): search by email or
// external_id with the "=" operator and a configurable index lag, create (409 conflict
// naming the existing id on a duplicate email or external_id), update by id (404 when
// unknown), GET /me; 401 unauthorized; X-RateLimit-Limit/Remaining/Reset (a Unix time)
// on authenticated answers and 429 rate_limit_exceeded on demand. It records the
// Intercom-Version header with every request.
type Intercom struct {
	*httptest.Server
	Recorder
	Tokens    *Tokens
	limited   countdown
	mu        sync.Mutex
	searchLag time.Duration
	byID      map[string]map[string]any
	created   map[string]time.Time
	nextID    int
}

// NewIntercom starts the fake; tokens (nil: a new set) decides which tokens pass.
func NewIntercom(tb testing.TB, tokens *Tokens) *Intercom {
	if tokens == nil {
		tokens = NewTokens()
	}
	f := &Intercom{Tokens: tokens, byID: map[string]map[string]any{}, created: map[string]time.Time{}, nextID: 1}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	tb.Cleanup(f.Close)
	return f
}

// SetSearchLag hides contacts newer than d from search (§3.3: minutes at Intercom).
func (f *Intercom) SetSearchLag(d time.Duration) {
	f.mu.Lock()
	f.searchLag = d
	f.mu.Unlock()
}

// RateLimit makes the next n requests answer 429.
func (f *Intercom) RateLimit(n int) { f.limited.set(n) }

// AddContact stores a contact as if created earlier (searchable at once); it returns its id.
func (f *Intercom) AddContact(c map[string]any) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.newID()
	c["type"], c["id"] = "contact", id
	f.byID[id] = c
	f.created[id] = time.Time{}
	return id
}

// Contacts returns copies of the stored contacts.
func (f *Intercom) Contacts() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []map[string]any
	for _, c := range f.byID {
		cp := map[string]any{}
		for k, v := range c {
			cp[k] = v
		}
		out = append(out, cp)
	}
	return out
}

func (f *Intercom) newID() string {
	id := "6643703ffae7834d1792" + strconv.Itoa(1000+f.nextID)
	f.nextID++
	return id
}

func intercomErrorBody(code, msg string) map[string]any {
	return map[string]any{"type": "error.list", "request_id": randomID("req-"), "errors": []map[string]string{{"code": code, "message": msg}}}
}

func (f *Intercom) serve(w http.ResponseWriter, r *http.Request) {
	req := f.record(r)
	if f.Tokens.Check(bearerToken(r)) != TokenValid {
		writeJSON(w, http.StatusUnauthorized, "", intercomErrorBody("unauthorized", "Access Token Invalid"))
		return
	}
	reset := time.Now().Truncate(10 * time.Second).Add(10 * time.Second)
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(intercomWindowLimit))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	if f.limited.take() {
		h.Set("X-RateLimit-Remaining", "0")
		writeJSON(w, http.StatusTooManyRequests, "", intercomErrorBody("rate_limit_exceeded", "Exceeded rate limit of "+strconv.Itoa(intercomWindowLimit)+" in 10_seconds"))
		return
	}
	h.Set("X-RateLimit-Remaining", strconv.Itoa(intercomWindowLimit-1))
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/me":
		writeJSON(w, http.StatusOK, "", map[string]any{"type": "admin", "id": "991267", "name": "Owner", "email": "owner@example.com",
			"app": map[string]any{"type": "app", "id_code": "abc123", "name": "Acme", "region": "US"}})
	case r.Method == http.MethodPost && r.URL.Path == "/contacts/search":
		f.search(w, req)
	case r.Method == http.MethodPost && r.URL.Path == "/contacts":
		f.create(w, req)
	case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/contacts/"):
		f.update(w, req, strings.TrimPrefix(r.URL.Path, "/contacts/"))
	default:
		writeJSON(w, http.StatusNotFound, "", intercomErrorBody("not_found", "Resource Not Found"))
	}
}

func (f *Intercom) search(w http.ResponseWriter, req Request) {
	var body struct {
		Query struct {
			Field    string `json:"field"`
			Operator string `json:"operator"`
			Value    any    `json:"value"`
		} `json:"query"`
		Pagination struct {
			PerPage int `json:"per_page"`
		} `json:"pagination"`
	}
	if err := decodeJSON(req.Body, &body); err != nil || body.Query.Field == "" {
		writeJSON(w, http.StatusBadRequest, "", intercomErrorBody("parameter_invalid", "query is invalid"))
		return
	}
	if body.Query.Operator != "=" || (body.Query.Field != "email" && body.Query.Field != "external_id") {
		writeJSON(w, http.StatusBadRequest, "", intercomErrorBody("parameter_invalid", "the fake searches email and external_id with = only"))
		return
	}
	f.mu.Lock()
	data := []map[string]any{}
	for id, c := range f.byID {
		if time.Since(f.created[id]) < f.searchLag {
			continue
		}
		if c[body.Query.Field] == body.Query.Value {
			data = append(data, c)
		}
	}
	f.mu.Unlock()
	perPage := body.Pagination.PerPage
	if perPage <= 0 {
		perPage = 50
	}
	total := len(data)
	if len(data) > perPage {
		data = data[:perPage]
	}
	writeJSON(w, http.StatusOK, "", map[string]any{"type": "list", "data": data, "total_count": total,
		"pages": map[string]any{"type": "pages", "page": 1, "per_page": perPage, "total_pages": 1}})
}

// conflict returns the id of a contact with the same email or external_id.
func (f *Intercom) conflict(body map[string]any, except string) string {
	for id, c := range f.byID {
		if id == except {
			continue
		}
		for _, k := range []string{"email", "external_id"} {
			if v, ok := body[k]; ok && v != nil && v != "" && c[k] == v {
				return id
			}
		}
	}
	return ""
}

func (f *Intercom) create(w http.ResponseWriter, req Request) {
	var body map[string]any
	if err := decodeJSON(req.Body, &body); err != nil {
		writeJSON(w, http.StatusBadRequest, "", intercomErrorBody("parameter_invalid", "invalid JSON"))
		return
	}
	role, _ := body["role"].(string)
	if role != "" && role != "user" && role != "lead" {
		writeJSON(w, http.StatusBadRequest, "", intercomErrorBody("parameter_invalid", "role must be user or lead"))
		return
	}
	if role != "lead" && body["email"] == nil && body["external_id"] == nil {
		writeJSON(w, http.StatusBadRequest, "", intercomErrorBody("parameter_not_found", "email or external_id is required for a user"))
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if id := f.conflict(body, ""); id != "" {
		writeJSON(w, http.StatusConflict, "", intercomErrorBody("conflict", "A contact matching those details already exists with id="+id))
		return
	}
	id := f.newID()
	if role == "" {
		body["role"] = "user"
	}
	body["type"], body["id"], body["workspace_id"] = "contact", id, "abc123"
	body["created_at"] = time.Now().Unix()
	f.byID[id] = body
	f.created[id] = time.Now()
	writeJSON(w, http.StatusOK, "", body)
}

func (f *Intercom) update(w http.ResponseWriter, req Request, id string) {
	var body map[string]any
	if err := decodeJSON(req.Body, &body); err != nil {
		writeJSON(w, http.StatusBadRequest, "", intercomErrorBody("parameter_invalid", "invalid JSON"))
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.byID[id]
	if !ok {
		writeJSON(w, http.StatusNotFound, "", intercomErrorBody("not_found", "User Not Found"))
		return
	}
	if other := f.conflict(body, id); other != "" {
		writeJSON(w, http.StatusConflict, "", intercomErrorBody("conflict", "A contact matching those details already exists with id="+other))
		return
	}
	for k, v := range body {
		if k == "custom_attributes" {
			attrs, _ := c[k].(map[string]any)
			if attrs == nil {
				attrs = map[string]any{}
			}
			if upd, ok := v.(map[string]any); ok {
				for ak, av := range upd {
					attrs[ak] = av
				}
			}
			c[k] = attrs
			continue
		}
		c[k] = v
	}
	writeJSON(w, http.StatusOK, "", c)
}
