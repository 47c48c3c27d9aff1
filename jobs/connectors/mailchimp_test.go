package connectors_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/jobs/connectors"
	"github.com/fanout-dev/fanout/jobs/connectors/fakes"
)

const mailchimpKey = "0123456789abcdef0123456789abcdef-us6"

func newMailchimp(t *testing.T) *fakes.Mailchimp {
	f := fakes.NewMailchimp(t, "us6", nil)
	f.AddKey(mailchimpKey)
	f.AddList("a1b2c3", "Newsletter")
	return f
}

func mailchimpRequest(f *fakes.Mailchimp, payload string, creds connectors.Credentials) *connectors.Request {
	return &connectors.Request{
		Action: "mailchimp.upsert_member", Payload: json.RawMessage(payload), Options: json.RawMessage(`{"list_id":"a1b2c3"}`),
		Config: raw(map[string]string{"api_base": f.URL}), Credentials: creds,
	}
}

func TestMailchimpUpsertRequest(t *testing.T) {
	t.Parallel()
	f := newMailchimp(t)
	c := connectors.NewMailchimp(loopback, nil)
	r := send(t, c, mailchimpRequest(f, `{"email_address":"Jane@Example.com","status_if_new":"subscribed","merge_fields":{"FNAME":"Jane"},"tags":["vip","trial"]}`,
		connectors.Credentials{connectors.CredAPIKey: mailchimpKey}))
	expectOutcome(t, r, connectors.Succeeded, "")

	hash := "9e26471d35a78862c17e467d87cddedf" // md5("jane@example.com"): the lower-cased email
	puts := f.Calls(http.MethodPut, "/3.0/lists/a1b2c3/members/"+hash)
	if len(puts) != 1 {
		t.Fatalf("%d PUTs to the member's hash, want 1 (all: %+v)", len(puts), f.Requests())
	}
	user, key, ok := basicAuth(puts[0].Header.Get("Authorization"))
	if !ok || user == "" || key != mailchimpKey {
		t.Errorf("Authorization is not Basic anystring:key")
	}
	jsonEqual(t, puts[0].Body, `{"email_address":"Jane@Example.com","status_if_new":"subscribed","merge_fields":{"FNAME":"Jane"}}`)
	tags := f.Calls(http.MethodPost, "/3.0/lists/a1b2c3/members/"+hash+"/tags")
	if len(tags) != 1 {
		t.Fatalf("%d tag calls, want 1", len(tags))
	}
	jsonEqual(t, tags[0].Body, `{"tags":[{"name":"vip","status":"active"},{"name":"trial","status":"active"}]}`)
	m := f.Member("a1b2c3", "jane@example.com")
	if m == nil || m.Status != "subscribed" || m.MergeFields["FNAME"] != "Jane" || strings.Join(m.Tags, ",") != "vip,trial" {
		t.Errorf("member = %+v", m)
	}
	noSecrets(t, r, mailchimpKey)

	// The same call again updates, idempotently.
	expectOutcome(t, send(t, c, mailchimpRequest(f, `{"email_address":"jane@example.com","status_if_new":"subscribed","merge_fields":{"LNAME":"Doe"}}`,
		connectors.Credentials{connectors.CredAPIKey: mailchimpKey})), connectors.Succeeded, "")
	if m := f.Member("a1b2c3", "jane@example.com"); m.MergeFields["LNAME"] != "Doe" || m.MergeFields["FNAME"] != "Jane" {
		t.Errorf("member after update = %+v", m)
	}
}

func basicAuth(h string) (string, string, bool) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(h, "Basic "))
	if err != nil || !strings.HasPrefix(h, "Basic ") {
		return "", "", false
	}
	u, p, ok := strings.Cut(string(b), ":")
	return u, p, ok
}

func TestMailchimpFailures(t *testing.T) {
	t.Parallel()
	f := newMailchimp(t)
	c := connectors.NewMailchimp(loopback, nil)
	key := connectors.Credentials{connectors.CredAPIKey: mailchimpKey}

	t.Run("new member without status_if_new", func(t *testing.T) {
		r := send(t, c, mailchimpRequest(f, `{"email_address":"new@example.com"}`, key))
		expectOutcome(t, r, connectors.Permanent, connectors.ClassHTTP4xx)
		if !strings.Contains(r.Message, "Invalid Resource") || !strings.Contains(r.Message, "status_if_new") {
			t.Errorf("message %q", r.Message)
		}
	})
	t.Run("bad status", func(t *testing.T) {
		expectOutcome(t, send(t, c, mailchimpRequest(f, `{"email_address":"a@b.co","status_if_new":"yes"}`, key)), connectors.Permanent, connectors.ClassMapping)
	})
	t.Run("unknown list", func(t *testing.T) {
		req := mailchimpRequest(f, `{"email_address":"a@b.co","status_if_new":"pending"}`, key)
		req.Options = json.RawMessage(`{"list_id":"nope"}`)
		r := send(t, c, req)
		expectOutcome(t, r, connectors.Permanent, connectors.ClassHTTP4xx)
		if r.StatusCode != 404 {
			t.Errorf("status %d", r.StatusCode)
		}
	})
	t.Run("no list_id", func(t *testing.T) {
		req := mailchimpRequest(f, `{"email_address":"a@b.co","status_if_new":"pending"}`, key)
		req.Options = nil
		expectOutcome(t, send(t, c, req), connectors.Permanent, connectors.ClassConfig)
	})
	t.Run("invalid key", func(t *testing.T) {
		r := send(t, c, mailchimpRequest(f, `{"email_address":"a@b.co","status_if_new":"pending"}`, connectors.Credentials{connectors.CredAPIKey: "ffffffffffffffff-us6"}))
		expectOutcome(t, r, connectors.AuthFailed, connectors.ClassAuth)
		noSecrets(t, r, "ffffffffffffffff-us6")
	})
	t.Run("wrong data centre", func(t *testing.T) {
		f.AddKey("0123456789abcdef-us21")
		r := send(t, c, mailchimpRequest(f, `{"email_address":"a@b.co","status_if_new":"pending"}`, connectors.Credentials{connectors.CredAPIKey: "0123456789abcdef-us21"}))
		expectOutcome(t, r, connectors.Permanent, connectors.ClassConfig)
	})
	t.Run("429", func(t *testing.T) {
		f.RateLimit(1)
		r := send(t, c, mailchimpRequest(f, `{"email_address":"a@b.co","status_if_new":"pending"}`, key))
		expectOutcome(t, r, connectors.RateLimited, connectors.ClassRateLimited)
		if r.RetryAfter != 5*time.Second {
			t.Errorf("RetryAfter %s", r.RetryAfter)
		}
	})
}

func TestMailchimpOAuthTokenTestAndLists(t *testing.T) {
	t.Parallel()
	f := newMailchimp(t)
	f.Tokens.Add("mc-oauth-token", 0)
	c := connectors.NewMailchimp(loopback, nil)
	req := mailchimpRequest(f, `{"email_address":"a@b.co","status":"subscribed"}`, connectors.Credentials{connectors.CredAccessToken: "mc-oauth-token"})
	req.Config = raw(map[string]string{"api_base": f.URL, "dc": "us6"})
	expectOutcome(t, send(t, c, req), connectors.Succeeded, "")
	if h := f.Requests()[0].Header.Get("Authorization"); h != "Bearer mc-oauth-token" {
		t.Errorf("Authorization %q", h)
	}
	expectOutcome(t, c.Test(t.Context(), req), connectors.Succeeded, "")
	if n := len(f.Calls(http.MethodGet, "/3.0/ping")); n != 1 {
		t.Errorf("%d pings", n)
	}
	opts, err := c.ListOptions(t.Context(), req, "list_id")
	if err != nil || len(opts) != 1 || opts[0] != (connectors.Option{Value: "a1b2c3", Label: "Newsletter"}) {
		t.Errorf("ListOptions = %v, %v", opts, err)
	}
	if _, err := c.ListOptions(t.Context(), req, "channel"); err == nil {
		t.Error("ListOptions(channel) succeeded")
	}
}

func TestMailchimpValidateConfig(t *testing.T) {
	t.Parallel()
	c := connectors.NewMailchimp(connectors.ClientOptions{}, nil)
	if err := c.ValidateConfig(nil, connectors.Credentials{connectors.CredAPIKey: mailchimpKey}); err != nil {
		t.Error(err)
	}
	fieldErr(t, c.ValidateConfig(nil, connectors.Credentials{connectors.CredAPIKey: "nodatacentre"}), "credentials.api_key")
	fieldErr(t, c.ValidateConfig(nil, connectors.Credentials{connectors.CredAPIKey: "abc-evil.com/x"}), "credentials.api_key")
	fieldErr(t, c.ValidateConfig(raw(map[string]string{"dc": "us7"}), connectors.Credentials{connectors.CredAPIKey: mailchimpKey}), "config.dc")
	fieldErr(t, c.ValidateConfig(raw(map[string]string{"dc": "evil.example.com#"}), connectors.Credentials{connectors.CredAccessToken: "t"}), "config.dc")
	fieldErr(t, c.ValidateConfig(nil, connectors.Credentials{connectors.CredAccessToken: "t"}), "config.dc")
	fieldErr(t, c.ValidateConfig(nil, nil), "credentials.api_key")
	fieldErr(t, c.ValidateConfig(raw(map[string]string{"api_base": "http://10.0.0.1"}), connectors.Credentials{connectors.CredAPIKey: mailchimpKey}), "config.api_base")
}
