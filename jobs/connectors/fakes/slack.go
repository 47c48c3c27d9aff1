package fakes

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// SlackMessage is a message the fake accepted.
type SlackMessage struct {
	Channel string
	Text    string
	Blocks  json.RawMessage
	Webhook bool
}

type slackChannel struct {
	id, name string
	archived bool
}

// Slack is a fake of the Slack Web API methods Fanout calls (chat.postMessage, auth.test,
// conversations.list, auth.revoke) and of incoming webhooks (VENDOR_APIS.md §4).
// Logical errors of the Web API are HTTP 200 {"ok":false,"error":…}: not_authed,
// invalid_auth, token_revoked, token_expired, missing_scope (with needed),
// channel_not_found, is_archived, no_text; throttling is HTTP 429 with Retry-After, or on
// demand an HTTP 200 ok:false ratelimited. Webhooks answer plain text: "ok", or
// invalid_payload / no_text (400), no_service (404), channel_is_archived (410).
type Slack struct {
	*httptest.Server
	Recorder
	Tokens *Tokens

	limited    countdown // HTTP 429
	limitedOK  countdown // 200 ok:false ratelimited
	mu         sync.Mutex
	retryAfter int
	failCode   string
	failN      int
	channels   map[string]*slackChannel
	webhooks   map[string]string // path → channel id
	messages   []SlackMessage
}

// NewSlack starts the fake with channels C0GENERAL (#general) and C0ARCHIVE (#old,
// archived); tokens (nil: a new set) decides which bot tokens pass.
func NewSlack(tb testing.TB, tokens *Tokens) *Slack {
	if tokens == nil {
		tokens = NewTokens()
	}
	f := &Slack{Tokens: tokens, channels: map[string]*slackChannel{}, webhooks: map[string]string{}}
	f.AddChannel("C0GENERAL", "general", false)
	f.AddChannel("C0ARCHIVE", "old", true)
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	tb.Cleanup(f.Close)
	return f
}

// AddChannel adds a channel.
func (f *Slack) AddChannel(id, name string, archived bool) {
	f.mu.Lock()
	f.channels[id] = &slackChannel{id: id, name: name, archived: archived}
	f.mu.Unlock()
}

// AddWebhook creates an incoming webhook posting to channel and returns its URL.
func (f *Slack) AddWebhook(channel string) string {
	path := "/services/T0TEAM/B0" + strings.ToUpper(randomID("")[:8]) + "/" + randomID("")[:24]
	f.mu.Lock()
	f.webhooks[path] = channel
	f.mu.Unlock()
	return f.URL + path
}

// RemoveWebhook disables a webhook (it then answers 404 no_service).
func (f *Slack) RemoveWebhook(url string) {
	f.mu.Lock()
	delete(f.webhooks, strings.TrimPrefix(url, f.URL))
	f.mu.Unlock()
}

// RateLimit makes the next n requests answer HTTP 429 with Retry-After seconds.
func (f *Slack) RateLimit(n, retryAfter int) {
	f.mu.Lock()
	f.retryAfter = retryAfter
	f.mu.Unlock()
	f.limited.set(n)
}

// RateLimitOK makes the next n Web API calls answer HTTP 200 ok:false ratelimited.
func (f *Slack) RateLimitOK(n int) { f.limitedOK.set(n) }

// FailNext makes the next n chat.postMessage calls answer ok:false with code.
func (f *Slack) FailNext(n int, code string) {
	f.mu.Lock()
	f.failN, f.failCode = n, code
	f.mu.Unlock()
}

// Messages returns the messages posted so far.
func (f *Slack) Messages() []SlackMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]SlackMessage(nil), f.messages...)
}

func slackFail(w http.ResponseWriter, code string, extra ...string) {
	body := map[string]any{"ok": false, "error": code}
	for i := 0; i+1 < len(extra); i += 2 {
		body[extra[i]] = extra[i+1]
	}
	writeJSON(w, http.StatusOK, "", body)
}

func (f *Slack) serve(w http.ResponseWriter, r *http.Request) {
	req := f.record(r)
	if f.limited.take() {
		f.mu.Lock()
		ra := f.retryAfter
		f.mu.Unlock()
		w.Header().Set("Retry-After", strconv.Itoa(ra))
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/services/") {
		f.webhook(w, req)
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/api/") {
		http.NotFound(w, r)
		return
	}
	token := bearerToken(r)
	var form map[string]any
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		_ = r.ParseForm()
		form = map[string]any{}
		for k := range r.PostForm {
			form[k] = r.PostForm.Get(k)
		}
		if token == "" {
			token = r.PostForm.Get("token")
		}
	}
	switch {
	case token == "":
		slackFail(w, "not_authed")
		return
	case f.Tokens.Check(token) == TokenRevoked:
		slackFail(w, "token_revoked")
		return
	case f.Tokens.Check(token) == TokenExpired:
		slackFail(w, "token_expired")
		return
	case f.Tokens.Check(token) != TokenValid:
		slackFail(w, "invalid_auth")
		return
	}
	if f.limitedOK.take() {
		slackFail(w, "ratelimited")
		return
	}
	switch strings.TrimPrefix(r.URL.Path, "/api/") {
	case "auth.test":
		writeJSON(w, http.StatusOK, "", map[string]any{"ok": true, "url": "https://acme.slack.com/", "team": "Acme", "user": "fanout", "team_id": "T0TEAM", "user_id": "U0BOT", "bot_id": "B0BOT"})
	case "auth.revoke":
		f.Tokens.Revoke(token)
		writeJSON(w, http.StatusOK, "", map[string]any{"ok": true, "revoked": true})
	case "conversations.list":
		f.list(w, r, token)
	case "chat.postMessage":
		f.post(w, req, form, token)
	default:
		slackFail(w, "unknown_method")
	}
}

func (f *Slack) list(w http.ResponseWriter, r *http.Request, token string) {
	if !f.Tokens.HasScope(token, "channels:read") {
		slackFail(w, "missing_scope", "needed", "channels:read")
		return
	}
	f.mu.Lock()
	var all []*slackChannel
	for _, c := range f.channels {
		if !c.archived || r.URL.Query().Get("exclude_archived") != "true" {
			all = append(all, c)
		}
	}
	f.mu.Unlock()
	sort.Slice(all, func(i, j int) bool { return all[i].id < all[j].id })
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 {
		limit = 100
	}
	start, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
	end := min(start+limit, len(all))
	var page []map[string]any
	for _, c := range all[min(start, len(all)):end] {
		page = append(page, map[string]any{"id": c.id, "name": c.name, "is_channel": true, "is_archived": c.archived})
	}
	next := ""
	if end < len(all) {
		next = strconv.Itoa(end)
	}
	writeJSON(w, http.StatusOK, "", map[string]any{"ok": true, "channels": page, "response_metadata": map[string]string{"next_cursor": next}})
}

func (f *Slack) post(w http.ResponseWriter, req Request, form map[string]any, token string) {
	body := form
	if body == nil {
		if err := decodeJSON(req.Body, &body); err != nil {
			slackFail(w, "invalid_json")
			return
		}
	}
	if !f.Tokens.HasScope(token, "chat:write") {
		slackFail(w, "missing_scope", "needed", "chat:write", "provided", "channels:read")
		return
	}
	f.mu.Lock()
	if f.failN > 0 {
		f.failN--
		code := f.failCode
		f.mu.Unlock()
		slackFail(w, code)
		return
	}
	channel, _ := body["channel"].(string)
	var ch *slackChannel
	for _, c := range f.channels {
		if c.id == channel || "#"+c.name == channel || c.name == channel {
			ch = c
		}
	}
	f.mu.Unlock()
	text, _ := body["text"].(string)
	blocks, hasBlocks := body["blocks"]
	switch {
	case channel == "" || ch == nil:
		slackFail(w, "channel_not_found")
		return
	case ch.archived:
		slackFail(w, "is_archived")
		return
	case text == "" && !hasBlocks:
		slackFail(w, "no_text")
		return
	}
	msg := SlackMessage{Channel: ch.id, Text: text}
	if hasBlocks {
		msg.Blocks, _ = json.Marshal(blocks)
	}
	f.mu.Lock()
	f.messages = append(f.messages, msg)
	f.mu.Unlock()
	ts := fmt.Sprintf("%d.%06d", time.Now().Unix(), time.Now().Nanosecond()/1000)
	writeJSON(w, http.StatusOK, "", map[string]any{"ok": true, "channel": ch.id, "ts": ts, "message": map[string]any{"type": "message", "text": text, "ts": ts}})
}

func (f *Slack) webhook(w http.ResponseWriter, req Request) {
	plain := func(status int, body string) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
	f.mu.Lock()
	channel, ok := f.webhooks[req.Path]
	ch := f.channels[channel]
	f.mu.Unlock()
	if !ok {
		plain(http.StatusNotFound, "no_service")
		return
	}
	var body map[string]any
	if err := decodeJSON(req.Body, &body); err != nil {
		plain(http.StatusBadRequest, "invalid_payload")
		return
	}
	text, _ := body["text"].(string)
	_, hasBlocks := body["blocks"]
	switch {
	case text == "" && !hasBlocks:
		plain(http.StatusBadRequest, "no_text")
		return
	case ch == nil:
		plain(http.StatusNotFound, "channel_not_found")
		return
	case ch.archived:
		plain(http.StatusGone, "channel_is_archived")
		return
	}
	f.mu.Lock()
	f.messages = append(f.messages, SlackMessage{Channel: channel, Text: text, Webhook: true})
	f.mu.Unlock()
	plain(http.StatusOK, "ok")
}
