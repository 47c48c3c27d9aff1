package handlers_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/fanout-dev/fanout/handlers/apitest"
	"github.com/fanout-dev/fanout/jobs"
	"github.com/fanout-dev/fanout/jobs/connectors/fakes"
)

// mailchimpConnection creates a Mailchimp connection to a fake with one audience.
func mailchimpConnection(t *testing.T, env *apitest.Env, key string) (string, *fakes.Mailchimp) {
	t.Helper()
	fake := fakes.NewMailchimp(t, "us6", nil)
	fake.AddKey("0123456789abcdef0123456789abcdef-us6")
	fake.AddList("a1b2c3", "Newsletter")
	r := env.Call("POST", "/v1/connections", key, map[string]any{
		"kind": "mailchimp", "name": "news", "config": map[string]any{"api_base": fake.URL},
		"credentials": map[string]any{"api_key": "0123456789abcdef0123456789abcdef-us6"}})
	expect(t, r, http.StatusCreated)
	return r.Map(t)["id"].(string), fake
}

func TestActionOptionsAreChecked(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{AllowPrivate: true})
	ws := env.Workspace()
	conn, _ := mailchimpConnection(t, env, ws.Admin)
	rule := func(options map[string]any) *apitest.Response {
		return env.Call("POST", "/v1/rules", ws.Admin, map[string]any{"name": "r", "event_type": "*", "actions": []any{
			map[string]any{"connection_id": conn, "action": "mailchimp.upsert_member", "options": options,
				"mapping": map[string]any{"email_address": "data.email", "status_if_new": `"subscribed"`}}}})
	}
	expectError(t, rule(nil), 422, "invalid", "actions[0].options.list_id")
	expectError(t, rule(map[string]any{"list_id": "a1b2c3", "colour": "blue"}), 422, "invalid", "actions[0].options.colour")
	expect(t, rule(map[string]any{"list_id": "a1b2c3"}), http.StatusCreated)
}

func TestLiveOptions(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{AllowPrivate: true})
	ws := env.Workspace()
	conn, _ := mailchimpConnection(t, env, ws.Admin)
	r := env.Call("GET", "/v1/connections/"+conn+"/options/list_id", ws.Admin, nil)
	expect(t, r, http.StatusOK)
	if !strings.Contains(string(r.Body), `"value":"a1b2c3"`) || !strings.Contains(string(r.Body), "Newsletter") {
		t.Errorf("options: %s", r.Body)
	}
	hook, _ := createWebhook(t, env, ws.Admin, "http://127.0.0.1:9/hook")
	expectError(t, env.Call("GET", "/v1/connections/"+hook+"/options/list_id", ws.Admin, nil), 422, "invalid", "option")
}

func TestPatchCredentialsReplacesTokens(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{AllowPrivate: true})
	ws := env.Workspace()
	fake := fakes.NewHubSpot(t, nil)
	r := env.Call("POST", "/v1/connections", ws.Admin, map[string]any{
		"kind": "hubspot", "name": "crm", "config": map[string]any{"api_base": fake.URL},
		"credentials": map[string]any{"access_token": "old-access", "refresh_token": "old-refresh"}})
	expect(t, r, http.StatusCreated)
	id := r.Map(t)["id"].(string)
	r = env.Call("PATCH", "/v1/connections/"+id, ws.Admin, map[string]any{"credentials": map[string]any{"access_token": "new-access"}})
	expect(t, r, http.StatusOK)
	if strings.Contains(string(r.Body), "new-access") {
		t.Errorf("PATCH echoes the credential: %s", r.Body)
	}
	conn, err := env.Store.ConnectionByID(t.Context(), ws.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := jobs.OpenCredentials(env.Keyring, conn)
	if err != nil {
		t.Fatal(err)
	}
	if creds["access_token"] != "new-access" || creds["refresh_token"] != "" {
		t.Errorf("credentials after PATCH: the old refresh token must not outlive a new access token (have %d keys)", len(creds))
	}
}
