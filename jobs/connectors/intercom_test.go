package connectors_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/jobs/connectors"
	"github.com/fanout-dev/fanout/jobs/connectors/fakes"
)

func newIntercom(t *testing.T) (*fakes.Intercom, *connectors.Intercom) {
	f := fakes.NewIntercom(t, nil)
	f.Tokens.Add("ic-token", 0)
	return f, connectors.NewIntercom(loopback, nil)
}

func intercomRequest(f *fakes.Intercom, payload string) *connectors.Request {
	return &connectors.Request{
		Action: "intercom.upsert_contact", Payload: json.RawMessage(payload),
		Config: raw(map[string]string{"api_base": f.URL, "region": "eu"}), Credentials: connectors.Credentials{connectors.CredAccessToken: "ic-token"},
	}
}

func TestIntercomCreatesThenUpdates(t *testing.T) {
	t.Parallel()
	f, c := newIntercom(t)
	r := send(t, c, intercomRequest(f, `{"email":"jane@example.com","name":"Jane","custom_attributes":{"plan":"pro"},"phone":null}`))
	expectOutcome(t, r, connectors.Succeeded, "")
	reqs := f.Requests()
	if len(reqs) != 2 || reqs[0].Path != "/contacts/search" || reqs[1].Method != http.MethodPost || reqs[1].Path != "/contacts" {
		t.Fatalf("requests = %+v, want search then create", reqs)
	}
	for _, q := range reqs {
		if q.Header.Get("Intercom-Version") != "2.14" || q.Header.Get("Authorization") != "Bearer ic-token" || q.Header.Get("Accept") != "application/json" {
			t.Errorf("headers %v", q.Header)
		}
	}
	jsonEqual(t, reqs[0].Body, `{"query":{"field":"email","operator":"=","value":"jane@example.com"},"pagination":{"per_page":1}}`)
	jsonEqual(t, reqs[1].Body, `{"role":"lead","email":"jane@example.com","name":"Jane","custom_attributes":{"plan":"pro"}}`)

	// Searchable now: the next upsert updates by id.
	r = send(t, c, intercomRequest(f, `{"email":"jane@example.com","name":"Jane Doe"}`))
	expectOutcome(t, r, connectors.Succeeded, "")
	reqs = f.Requests()[2:]
	if len(reqs) != 2 || reqs[1].Method != http.MethodPut || reqs[1].Path[:10] != "/contacts/" {
		t.Fatalf("requests = %+v, want search then PUT", reqs)
	}
	jsonEqual(t, reqs[1].Body, `{"email":"jane@example.com","name":"Jane Doe"}`)
	if cs := f.Contacts(); len(cs) != 1 || cs[0]["name"] != "Jane Doe" {
		t.Errorf("contacts = %v", cs)
	}
}

func TestIntercomSearchLagConflict(t *testing.T) {
	t.Parallel()
	f, c := newIntercom(t)
	f.SetSearchLag(time.Hour)
	expectOutcome(t, send(t, c, intercomRequest(f, `{"external_id":"u_1","email":"a@b.co"}`)), connectors.Succeeded, "")
	if body := f.Requests()[1].Body; !json.Valid(body) || !jsonHas(body, "role", "user") {
		t.Errorf("create body %s: an external_id makes a user", body)
	}
	// Not searchable yet: the create answers 409 naming the contact, which is updated.
	r := send(t, c, intercomRequest(f, `{"external_id":"u_1","name":"Ada"}`))
	expectOutcome(t, r, connectors.Succeeded, "")
	reqs := f.Requests()[2:]
	if len(reqs) != 3 || reqs[1].Path != "/contacts" || reqs[2].Method != http.MethodPut {
		t.Fatalf("requests = %+v, want search, create (409), PUT", reqs)
	}
	if cs := f.Contacts(); len(cs) != 1 || cs[0]["name"] != "Ada" {
		t.Errorf("contacts = %v", cs)
	}
}

func jsonHas(body []byte, key, value string) bool {
	var m map[string]any
	return json.Unmarshal(body, &m) == nil && m[key] == value
}

func TestIntercomFailures(t *testing.T) {
	t.Parallel()
	f, c := newIntercom(t)
	t.Run("no key", func(t *testing.T) {
		expectOutcome(t, send(t, c, intercomRequest(f, `{"name":"x"}`)), connectors.Permanent, connectors.ClassMapping)
	})
	t.Run("bad role", func(t *testing.T) {
		expectOutcome(t, send(t, c, intercomRequest(f, `{"email":"a@b.co","role":"admin"}`)), connectors.Permanent, connectors.ClassMapping)
	})
	t.Run("401", func(t *testing.T) {
		req := intercomRequest(f, `{"email":"a@b.co"}`)
		req.Credentials = connectors.Credentials{connectors.CredAccessToken: "revoked-token"}
		r := send(t, c, req)
		expectOutcome(t, r, connectors.AuthFailed, connectors.ClassAuth)
		noSecrets(t, r, "revoked-token")
	})
	t.Run("429 waits for the window", func(t *testing.T) {
		f.RateLimit(1)
		r := send(t, c, intercomRequest(f, `{"email":"a@b.co"}`))
		expectOutcome(t, r, connectors.RateLimited, connectors.ClassRateLimited)
		if r.RetryAfter < time.Second || r.RetryAfter > 11*time.Second {
			t.Errorf("RetryAfter %s, want the rest of the 10 s window", r.RetryAfter)
		}
	})
	t.Run("Test calls /me", func(t *testing.T) {
		req := intercomRequest(f, `{}`)
		req.HTTP = loopbackClient
		expectOutcome(t, c.Test(t.Context(), req), connectors.Succeeded, "")
		if n := len(f.Calls(http.MethodGet, "/me")); n != 1 {
			t.Errorf("%d /me calls", n)
		}
	})
}

func TestIntercomValidateConfig(t *testing.T) {
	t.Parallel()
	c := connectors.NewIntercom(connectors.ClientOptions{}, nil)
	tok := connectors.Credentials{connectors.CredAccessToken: "t"}
	for _, region := range []string{"", "us", "eu", "au"} {
		if err := c.ValidateConfig(raw(map[string]string{"region": region}), tok); err != nil {
			t.Errorf("region %q: %v", region, err)
		}
	}
	fieldErr(t, c.ValidateConfig(raw(map[string]string{"region": "apac"}), tok), "config.region")
	fieldErr(t, c.ValidateConfig(raw(map[string]string{"api_version": "latest"}), tok), "config.api_version")
	fieldErr(t, c.ValidateConfig(nil, nil), "credentials.access_token")
}
