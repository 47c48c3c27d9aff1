package connectors

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Spec test vector, VENDOR_APIS.md §6.4.
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorPayload   = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// received is one request as a webhook receiver saw it.
type received struct {
	header http.Header
	body   []byte
}

// newReceiver starts a loopback receiver that records requests and answers status.
func newReceiver(t *testing.T, status int) (*httptest.Server, func() []received) {
	t.Helper()
	var mu sync.Mutex
	var got []received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, received{header: r.Header.Clone(), body: body})
		mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []received {
		mu.Lock()
		defer mu.Unlock()
		return append([]received(nil), got...)
	}
}

func webhookRequest(t *testing.T, url string, creds Credentials) *Request {
	t.Helper()
	cfg, err := json.Marshal(map[string]any{"url": url, "headers": map[string]string{"X-Tenant": "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	return &Request{
		DeliveryID:  "dlv_01jd0000000000000000000000",
		Attempt:     1,
		Action:      "webhook.post",
		Event:       Event{ID: "evt_1", Type: "lead.created", OccurredAt: time.Unix(1700000000, 0).UTC(), Data: json.RawMessage(`{"email":"a@example.com"}`)},
		Payload:     json.RawMessage(`{"email": "a@example.com",  "score":7}`),
		Config:      cfg,
		Credentials: creds,
		HTTP:        NewHTTPClient(ClientOptions{AllowPrivate: true}),
	}
}

func mustSecret(t *testing.T) string {
	t.Helper()
	s, err := NewSigningSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func verifier(t *testing.T, secret string) *standardwebhooks.Webhook {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	return wh
}

func TestWebhookSendIsVerifiable(t *testing.T) {
	t.Parallel()
	srv, got := newReceiver(t, http.StatusNoContent)
	secret := mustSecret(t)
	req := webhookRequest(t, srv.URL+"/hooks/in", Credentials{CredSigningSecret: secret})

	r := NewWebhook(ClientOptions{}).Send(t.Context(), req)
	if r.Outcome != Succeeded || r.StatusCode != http.StatusNoContent {
		t.Fatalf("result %+v", r)
	}
	if want := "POST " + srv.URL + "/hooks/in"; r.Request != want {
		t.Errorf("Request = %q, want %q", r.Request, want)
	}
	reqs := got()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	h, body := reqs[0].header, reqs[0].body
	if err := verifier(t, secret).Verify(body, h); err != nil {
		t.Errorf("receiver verification: %v", err)
	}
	if string(body) != string(req.Payload) {
		t.Errorf("body %q, want the payload bytes unchanged", body)
	}
	for name, want := range map[string]string{
		"Content-Type": "application/json",
		"User-Agent":   "Fanout/1.0",
		"Webhook-Id":   req.DeliveryID,
		"X-Tenant":     "acme",
	} {
		if h.Get(name) != want {
			t.Errorf("%s = %q, want %q", name, h.Get(name), want)
		}
	}
	ts, err := strconv.ParseInt(h.Get("Webhook-Timestamp"), 10, 64)
	if err != nil || time.Since(time.Unix(ts, 0)).Abs() > 5*time.Second {
		t.Errorf("webhook-timestamp %q is not now", h.Get("Webhook-Timestamp"))
	}
	if sigs := strings.Fields(h.Get("Webhook-Signature")); len(sigs) != 1 || !strings.HasPrefix(sigs[0], "v1,") {
		t.Errorf("webhook-signature %q", h.Get("Webhook-Signature"))
	}
	if err := verifier(t, mustSecret(t)).Verify(body, h); err == nil {
		t.Error("another secret verified the message")
	}
}

func TestWebhookSpecVector(t *testing.T) {
	t.Parallel()
	sig, err := webhookSecrets{current: vectorSecret}.sign(vectorID, time.Unix(vectorTimestamp, 0), []byte(vectorPayload))
	if err != nil || sig != vectorSignature {
		t.Fatalf("sign = %q, %v; want %q", sig, err, vectorSignature)
	}

	// End to end: the same inputs through Send produce exactly the vector's header.
	srv, got := newReceiver(t, http.StatusOK)
	w := NewWebhook(ClientOptions{})
	w.now = func() time.Time { return time.Unix(vectorTimestamp, 0) }
	req := webhookRequest(t, srv.URL, Credentials{CredSigningSecret: vectorSecret})
	req.DeliveryID, req.Payload = vectorID, json.RawMessage(vectorPayload)
	if r := w.Send(t.Context(), req); r.Outcome != Succeeded {
		t.Fatalf("result %+v", r)
	}
	h := got()[0].header
	if h.Get("Webhook-Signature") != vectorSignature || h.Get("Webhook-Timestamp") != strconv.Itoa(vectorTimestamp) || h.Get("Webhook-Id") != vectorID {
		t.Errorf("headers %v", h)
	}
	wh := verifier(t, vectorSecret)
	if err := wh.VerifyIgnoringTimestamp(got()[0].body, h); err != nil {
		t.Errorf("vector does not verify: %v", err)
	}
	if err := wh.Verify(got()[0].body, h); !errors.Is(err, standardwebhooks.ErrMessageTooOld) {
		t.Errorf("2021 timestamp: err = %v, want too old", err)
	}
	for _, bad := range []string{"v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=", "v1,"} {
		h2 := h.Clone()
		h2.Set("Webhook-Signature", bad)
		if wh.VerifyIgnoringTimestamp([]byte(vectorPayload), h2) == nil {
			t.Errorf("negative vector %q verified", bad)
		}
	}
}

func TestWebhookRotation(t *testing.T) {
	t.Parallel()
	oldSecret, newSecret := mustSecret(t), mustSecret(t)
	now := time.Now()
	creds := Credentials{
		CredSigningSecret:         newSecret,
		CredPreviousSigningSecret: oldSecret,
		CredPreviousExpiresAt:     now.Add(24 * time.Hour).Format(time.RFC3339),
	}
	srv, got := newReceiver(t, http.StatusOK)
	w := NewWebhook(ClientOptions{})
	w.now = func() time.Time { return now }

	if r := w.Send(t.Context(), webhookRequest(t, srv.URL, creds)); r.Outcome != Succeeded {
		t.Fatalf("result %+v", r)
	}
	during := got()[0]
	if n := len(strings.Split(during.header.Get("Webhook-Signature"), " ")); n != 2 {
		t.Fatalf("%d signatures during rotation, want 2", n)
	}
	for _, s := range []string{oldSecret, newSecret} {
		if err := verifier(t, s).Verify(during.body, during.header); err != nil {
			t.Errorf("during rotation: %v", err)
		}
	}

	w.now = func() time.Time { return now.Add(25 * time.Hour) } // past previous_expires_at
	if r := w.Send(t.Context(), webhookRequest(t, srv.URL, creds)); r.Outcome != Succeeded {
		t.Fatalf("result %+v", r)
	}
	after := got()[1]
	if n := len(strings.Split(after.header.Get("Webhook-Signature"), " ")); n != 1 {
		t.Fatalf("%d signatures after rotation, want 1", n)
	}
	if err := verifier(t, newSecret).VerifyIgnoringTimestamp(after.body, after.header); err != nil {
		t.Errorf("new secret after rotation: %v", err)
	}
	if verifier(t, oldSecret).VerifyIgnoringTimestamp(after.body, after.header) == nil {
		t.Error("old secret still verifies after it expired")
	}
}

// TestWebhookRetryKeepsID: a retry has the same webhook-id, a new timestamp and a valid
// signature (F1, F16).
func TestWebhookRetryKeepsID(t *testing.T) {
	t.Parallel()
	srv, got := newReceiver(t, http.StatusOK)
	secret := mustSecret(t)
	w := NewWebhook(ClientOptions{})
	start := time.Now()
	for i := range 2 {
		w.now = func() time.Time { return start.Add(time.Duration(i) * time.Minute) }
		req := webhookRequest(t, srv.URL, Credentials{CredSigningSecret: secret})
		req.Attempt = i + 1
		w.Send(t.Context(), req)
	}
	reqs := got()
	if reqs[0].header.Get("Webhook-Id") != reqs[1].header.Get("Webhook-Id") {
		t.Error("webhook-id changed between attempts")
	}
	if reqs[0].header.Get("Webhook-Timestamp") == reqs[1].header.Get("Webhook-Timestamp") {
		t.Error("webhook-timestamp did not change between attempts")
	}
	for _, r := range reqs {
		if err := verifier(t, secret).Verify(r.body, r.header); err != nil {
			t.Error(err)
		}
	}
}

func TestWebhookEnvelopeWhenNoPayload(t *testing.T) {
	t.Parallel()
	srv, got := newReceiver(t, http.StatusOK)
	req := webhookRequest(t, srv.URL, Credentials{CredSigningSecret: mustSecret(t)})
	req.Payload = nil
	NewWebhook(ClientOptions{}).Send(t.Context(), req)
	var ev Event
	if err := json.Unmarshal(got()[0].body, &ev); err != nil || ev.ID != "evt_1" || ev.Type != "lead.created" {
		t.Errorf("body %s: %v", got()[0].body, err)
	}
}

func TestWebhookTest(t *testing.T) {
	t.Parallel()
	srv, got := newReceiver(t, http.StatusOK)
	secret := mustSecret(t)
	req := webhookRequest(t, srv.URL, Credentials{CredSigningSecret: secret})
	req.DeliveryID, req.Payload = "", nil

	var tester Tester = NewWebhook(ClientOptions{})
	if r := tester.Test(t.Context(), req); r.Outcome != Succeeded {
		t.Fatalf("result %+v", r)
	}
	rec := got()[0]
	var ev Event
	if err := json.Unmarshal(rec.body, &ev); err != nil || ev.Type != "fanout.test" || ev.ID == "" {
		t.Errorf("ping body %s: %v", rec.body, err)
	}
	if !strings.HasPrefix(rec.header.Get("Webhook-Id"), "msg_test_") {
		t.Errorf("webhook-id %q", rec.header.Get("Webhook-Id"))
	}
	if err := verifier(t, secret).Verify(rec.body, rec.header); err != nil {
		t.Error(err)
	}
}

// TestWebhookSendRefusals: bad stored config or credentials are permanent and send
// nothing; a nil client falls back to the strict one, which refuses loopback.
func TestWebhookSendRefusals(t *testing.T) {
	t.Parallel()
	srv, got := newReceiver(t, http.StatusOK)
	secret := mustSecret(t)
	tests := []struct {
		name  string
		edit  func(*Request)
		class string
	}{
		{"no secret", func(r *Request) { r.Credentials = nil }, ClassConfig},
		{"bad secret", func(r *Request) { r.Credentials = Credentials{CredSigningSecret: "whsec_short"} }, ClassConfig},
		{"no config", func(r *Request) { r.Config = nil }, ClassConfig},
		{"bad scheme", func(r *Request) { r.Config = json.RawMessage(`{"url":"ftp://x.test/"}`) }, ClassConfig},
		{"dotted id", func(r *Request) { r.DeliveryID = "a.b" }, ClassConfig},
		{"nil client is strict", func(r *Request) { r.HTTP = nil }, ClassBlocked},
	}
	for _, tc := range tests {
		req := webhookRequest(t, srv.URL, Credentials{CredSigningSecret: secret})
		tc.edit(req)
		r := NewWebhook(ClientOptions{}).Send(t.Context(), req)
		if r.Outcome != Permanent || r.ErrorClass != tc.class {
			t.Errorf("%s: got %s/%s (%s), want permanent/%s", tc.name, r.Outcome, r.ErrorClass, r.Message, tc.class)
		}
		if strings.Contains(r.Message, secret) {
			t.Errorf("%s: message leaks the secret", tc.name)
		}
	}
	if n := len(got()); n != 0 {
		t.Errorf("receiver got %d requests", n)
	}
}

func TestWebhookValidateConfig(t *testing.T) {
	t.Parallel()
	secret := mustSecret(t)
	good := Credentials{CredSigningSecret: secret}
	tests := []struct {
		name   string
		config string
		creds  Credentials
		field  string // "" means valid
	}{
		{"ok", `{"url":"http://127.0.0.1:8080/in"}`, good, ""},
		{"ok with headers", `{"url":"http://127.0.0.1/in","headers":{"X-Custom":"v","Authorization":"Bearer t"}}`, good, ""},
		{"rotation", `{"url":"http://127.0.0.1/"}`, Credentials{CredSigningSecret: secret, CredPreviousSigningSecret: mustSecret(t), CredPreviousExpiresAt: "2030-01-01T00:00:00Z"}, ""},
		{"empty", ``, good, "config.url"},
		{"not object", `[]`, good, "config"},
		{"unknown field", `{"url":"http://127.0.0.1/","method":"PUT"}`, good, "config"},
		{"no url", `{}`, good, "config.url"},
		{"bad url", `{"url":"gopher://127.0.0.1/"}`, good, "config.url"},
		{"host header", `{"url":"http://127.0.0.1/","headers":{"Host":"x"}}`, good, "config.headers.Host"},
		{"content-length", `{"url":"http://127.0.0.1/","headers":{"content-length":"1"}}`, good, "config.headers.content-length"},
		{"hop-by-hop", `{"url":"http://127.0.0.1/","headers":{"Connection":"close"}}`, good, "config.headers.Connection"},
		{"transfer-encoding", `{"url":"http://127.0.0.1/","headers":{"Transfer-Encoding":"chunked"}}`, good, "config.headers.Transfer-Encoding"},
		{"webhook-*", `{"url":"http://127.0.0.1/","headers":{"Webhook-Signature":"v1,x"}}`, good, "config.headers.Webhook-Signature"},
		{"bad name", `{"url":"http://127.0.0.1/","headers":{"X Bad":"v"}}`, good, "config.headers.X Bad"},
		{"CRLF value", `{"url":"http://127.0.0.1/","headers":{"X-A":"v\r\nX-Injected: 1"}}`, good, "config.headers.X-A"},
		{"no secret", `{"url":"http://127.0.0.1/"}`, nil, "credentials.signing_secret"},
		{"no prefix", `{"url":"http://127.0.0.1/"}`, Credentials{CredSigningSecret: strings.TrimPrefix(secret, "whsec_")}, "credentials.signing_secret"},
		{"not base64", `{"url":"http://127.0.0.1/"}`, Credentials{CredSigningSecret: "whsec_!!!"}, "credentials.signing_secret"},
		{"too short", `{"url":"http://127.0.0.1/"}`, Credentials{CredSigningSecret: "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 16))}, "credentials.signing_secret"},
		{"bad previous", `{"url":"http://127.0.0.1/"}`, Credentials{CredSigningSecret: secret, CredPreviousSigningSecret: "nope", CredPreviousExpiresAt: "2030-01-01T00:00:00Z"}, "credentials.previous_signing_secret"},
		{"previous without expiry", `{"url":"http://127.0.0.1/"}`, Credentials{CredSigningSecret: secret, CredPreviousSigningSecret: mustSecret(t)}, "credentials.previous_expires_at"},
	}
	w := NewWebhook(ClientOptions{AllowPrivate: true})
	for _, tc := range tests {
		err := w.ValidateConfig(json.RawMessage(tc.config), tc.creds)
		var fe *FieldError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
			t.Errorf("%s: err = %v, want a FieldError for %s", tc.name, err, tc.field)
		}
		if err != nil && strings.Contains(err.Error(), strings.TrimPrefix(secret, "whsec_")) {
			t.Errorf("%s: error quotes the secret", tc.name)
		}
	}
	// The strict policy refuses the same loopback URL.
	if err := NewWebhook(ClientOptions{}).ValidateConfig(json.RawMessage(`{"url":"http://127.0.0.1/"}`), good); err == nil {
		t.Error("strict policy accepted a loopback URL")
	}
}

func TestNewSigningSecret(t *testing.T) {
	t.Parallel()
	a, b := mustSecret(t), mustSecret(t)
	if a == b {
		t.Fatal("two secrets are equal")
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, "whsec_"))
	if !strings.HasPrefix(a, "whsec_") || err != nil || len(key) != 32 {
		t.Errorf("secret %q: %v, %d bytes", a, err, len(key))
	}
	if msg := checkSigningSecret(a); msg != "" {
		t.Error(msg)
	}
}
