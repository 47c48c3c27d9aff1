package fakes

import (
	"crypto/md5"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// MailchimpMember is an audience member as the fake stores it.
type MailchimpMember struct {
	Email       string
	Status      string
	MergeFields map[string]any
	Tags        []string
}

// Mailchimp is a fake of the Marketing API v3 (VENDOR_APIS.md §2) for one data centre:
// PUT members by subscriber hash (400 when the hash does not match the email, or when
// status_if_new is missing for a new member), the member tags endpoint (204), lists, ping;
// HTTP Basic with any user name and an API key (403 Wrong Datacenter when the key's suffix
// is not DC) or a Bearer OAuth token from Tokens; problem+json errors; 429 on demand.
type Mailchimp struct {
	*httptest.Server
	Recorder
	DC     string // "us6"
	Tokens *Tokens

	limited   countdown
	mu        sync.Mutex
	tagsInPut bool
	keys      map[string]bool
	lists     map[string]string // id → name
	members   map[string]map[string]*MailchimpMember
}

var mailchimpMemberPath = regexp.MustCompile(`^/3\.0/lists/([^/]+)/members/([^/]+)(/tags)?$`)

// NewMailchimp starts the fake for data centre dc (default us6) with the audience
// listID ("Newsletter"); tokens (nil: a new set) holds the OAuth tokens it accepts.
func NewMailchimp(tb testing.TB, dc string, tokens *Tokens) *Mailchimp {
	if dc == "" {
		dc = "us6"
	}
	if tokens == nil {
		tokens = NewTokens()
	}
	f := &Mailchimp{DC: dc, Tokens: tokens, keys: map[string]bool{}, lists: map[string]string{}, members: map[string]map[string]*MailchimpMember{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	tb.Cleanup(f.Close)
	return f
}

// AddKey accepts an API key ("…-us6").
func (f *Mailchimp) AddKey(key string) {
	f.mu.Lock()
	f.keys[key] = true
	f.mu.Unlock()
}

// AddList creates an audience.
func (f *Mailchimp) AddList(id, name string) {
	f.mu.Lock()
	f.lists[id] = name
	f.members[id] = map[string]*MailchimpMember{}
	f.mu.Unlock()
}

// AcceptTagsInPut lets the member PUT carry tags. Whether Mailchimp accepts them there
// is unverified (§2.3); by default the fake refuses them, so the connector's separate
// tags call is what tests exercise.
func (f *Mailchimp) AcceptTagsInPut(accept bool) {
	f.mu.Lock()
	f.tagsInPut = accept
	f.mu.Unlock()
}

// RateLimit makes the next n requests answer 429 (too many concurrent connections).
func (f *Mailchimp) RateLimit(n int) { f.limited.set(n) }

// Member returns the stored member of list with email, or nil.
func (f *Mailchimp) Member(list, email string) *MailchimpMember {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m, ok := f.members[list][SubscriberHash(email)]; ok {
		c := *m
		return &c
	}
	return nil
}

// SubscriberHash is the lowercase hex MD5 of the lower-cased email (§2.3).
func SubscriberHash(email string) string {
	sum := md5.Sum([]byte(strings.ToLower(email)))
	return hex.EncodeToString(sum[:])
}

func mailchimpProblem(w http.ResponseWriter, status int, title, detail string, errs ...map[string]string) {
	w.Header().Set("X-Request-Id", randomID("req-"))
	w.Header().Set("Link", `<https://us6.api.mailchimp.com/schema/3.0/ProblemDetailDocument.json>; rel="describedBy"`)
	body := map[string]any{"type": "https://mailchimp.com/developer/marketing/docs/errors/", "title": title, "status": status, "detail": detail, "instance": randomID("")}
	if len(errs) > 0 {
		body["errors"] = errs
	}
	writeJSON(w, status, "application/problem+json; charset=utf-8", body)
}

// authorize checks the credentials; it answers and returns false when they fail.
func (f *Mailchimp) authorize(w http.ResponseWriter, r *http.Request) bool {
	if _, key, ok := r.BasicAuth(); ok {
		dc := key[strings.LastIndexByte(key, '-')+1:]
		f.mu.Lock()
		known := f.keys[key]
		f.mu.Unlock()
		switch {
		case !known:
			mailchimpProblem(w, http.StatusUnauthorized, "API Key Invalid", "Your API key may be invalid, or you've attempted to access the wrong datacenter.")
		case dc != f.DC:
			mailchimpProblem(w, http.StatusForbidden, "Wrong Datacenter", "The API key provided is linked to datacenter '"+dc+"'")
		default:
			return true
		}
		return false
	}
	token := bearerToken(r)
	if token == "" {
		mailchimpProblem(w, http.StatusUnauthorized, "API Key Missing", "Your request did not include an API key.")
		return false
	}
	if f.Tokens.Check(token) != TokenValid {
		mailchimpProblem(w, http.StatusUnauthorized, "API Key Invalid", "Your API key may be invalid, or you've attempted to access the wrong datacenter.")
		return false
	}
	return true
}

func (f *Mailchimp) serve(w http.ResponseWriter, r *http.Request) {
	req := f.record(r)
	if !f.authorize(w, r) {
		return
	}
	if f.limited.take() {
		mailchimpProblem(w, http.StatusTooManyRequests, "Too Many Requests", "You have exceeded the limit of 10 simultaneous connections.")
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/3.0/ping":
		writeJSON(w, http.StatusOK, "", map[string]string{"health_status": "Everything's Chimpy!"})
		return
	case r.Method == http.MethodGet && r.URL.Path == "/3.0/lists":
		f.mu.Lock()
		var lists []map[string]string
		for id, name := range f.lists {
			lists = append(lists, map[string]string{"id": id, "name": name})
		}
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, "", map[string]any{"lists": lists, "total_items": len(lists)})
		return
	}
	m := mailchimpMemberPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		mailchimpProblem(w, http.StatusNotFound, "Resource Not Found", "The requested resource could not be found.")
		return
	}
	list, hash, tags := m[1], m[2], m[3] != ""
	f.mu.Lock()
	members, ok := f.members[list]
	f.mu.Unlock()
	if !ok {
		mailchimpProblem(w, http.StatusNotFound, "Resource Not Found", "The requested resource could not be found.")
		return
	}
	switch {
	case tags && r.Method == http.MethodPost:
		f.tags(w, req, members, hash)
	case !tags && r.Method == http.MethodPut:
		f.put(w, req, members, hash, list)
	default:
		mailchimpProblem(w, http.StatusMethodNotAllowed, "Method Not Allowed", "The requested method and resource are not compatible.")
	}
}

var mailchimpStatuses = map[string]bool{"subscribed": true, "unsubscribed": true, "cleaned": true, "pending": true, "transactional": true}

func (f *Mailchimp) put(w http.ResponseWriter, req Request, members map[string]*MailchimpMember, hash, list string) {
	var body map[string]any
	if err := decodeJSON(req.Body, &body); err != nil {
		mailchimpProblem(w, http.StatusBadRequest, "JSON Parse Error", "We encountered an unspecified JSON parsing error.")
		return
	}
	email, _ := body["email_address"].(string)
	if email == "" {
		mailchimpProblem(w, http.StatusBadRequest, "Invalid Resource", "The resource submitted could not be validated.",
			map[string]string{"field": "email_address", "message": "This value should not be blank."})
		return
	}
	if hash != SubscriberHash(email) && !strings.EqualFold(hash, email) {
		mailchimpProblem(w, http.StatusBadRequest, "Invalid Resource", "The subscriber hash does not match the email address.")
		return
	}
	f.mu.Lock()
	tagsInPut := f.tagsInPut
	f.mu.Unlock()
	if _, isTags := body["tags"]; isTags && !tagsInPut {
		mailchimpProblem(w, http.StatusBadRequest, "Invalid Resource", "tags cannot be set here; use the member tags endpoint.",
			map[string]string{"field": "tags", "message": "Schema describes object, array found instead"})
		return
	}
	for _, k := range []string{"status", "status_if_new"} {
		if s, ok := body[k].(string); ok && !mailchimpStatuses[s] {
			mailchimpProblem(w, http.StatusBadRequest, "Invalid Resource", "The resource submitted could not be validated.",
				map[string]string{"field": k, "message": "Value is not one of the enum values."})
			return
		}
	}
	var merge map[string]any
	if mf, ok := body["merge_fields"]; ok {
		if merge, ok = mf.(map[string]any); !ok {
			mailchimpProblem(w, http.StatusBadRequest, "Invalid Resource", "merge_fields must be an object.")
			return
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	key := SubscriberHash(email)
	mem, exists := members[key]
	if !exists {
		status, _ := body["status_if_new"].(string)
		if s, ok := body["status"].(string); ok {
			status = s
		}
		if status == "" {
			mailchimpProblem(w, http.StatusBadRequest, "Invalid Resource", "The resource submitted could not be validated.",
				map[string]string{"field": "status_if_new", "message": "This value should not be blank for a new member."})
			return
		}
		mem = &MailchimpMember{Email: email, Status: status, MergeFields: map[string]any{}}
		members[key] = mem
	} else if s, ok := body["status"].(string); ok {
		mem.Status = s
	}
	for k, v := range merge {
		mem.MergeFields[k] = v
	}
	writeJSON(w, http.StatusOK, "", map[string]any{
		"id": key, "email_address": mem.Email, "unique_email_id": key[:10], "status": mem.Status,
		"merge_fields": mem.MergeFields, "list_id": list, "tags_count": len(mem.Tags),
	})
}

func (f *Mailchimp) tags(w http.ResponseWriter, req Request, members map[string]*MailchimpMember, hash string) {
	var body struct {
		Tags []struct {
			Name   string `json:"name"`
			Status string `json:"status"`
		} `json:"tags"`
	}
	if err := decodeJSON(req.Body, &body); err != nil {
		mailchimpProblem(w, http.StatusBadRequest, "JSON Parse Error", "We encountered an unspecified JSON parsing error.")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	mem, ok := members[hash]
	if !ok {
		mailchimpProblem(w, http.StatusNotFound, "Resource Not Found", "The requested resource could not be found.")
		return
	}
	for _, t := range body.Tags {
		if t.Name == "" || (t.Status != "active" && t.Status != "inactive") {
			mailchimpProblem(w, http.StatusBadRequest, "Invalid Resource", "The resource submitted could not be validated.",
				map[string]string{"field": "tags", "message": "each tag needs a name and status active or inactive"})
			return
		}
		present := -1
		for i, x := range mem.Tags {
			if x == t.Name {
				present = i
			}
		}
		switch {
		case t.Status == "active" && present < 0:
			mem.Tags = append(mem.Tags, t.Name)
		case t.Status == "inactive" && present >= 0:
			mem.Tags = append(mem.Tags[:present], mem.Tags[present+1:]...)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}
