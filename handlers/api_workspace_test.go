package handlers_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/handlers/apitest"
)

func TestAPIKeysTwin(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{})
	ws := env.Workspace()
	expectError(t, env.Call("POST", "/v1/api-keys", ws.Admin, map[string]any{"name": "x", "scope": "root"}), 422, "invalid", "scope")
	expectError(t, env.Call("POST", "/v1/api-keys", ws.Ingest, map[string]any{"name": "x", "scope": "admin"}), 403, "forbidden", "")

	r := env.Call("POST", "/v1/api-keys", ws.Admin, map[string]any{"name": "ci", "scope": "ingest"})
	expect(t, r, http.StatusCreated)
	created := r.Map(t)
	key, id := created["key"].(string), created["id"].(string)
	if !strings.HasPrefix(key, "fo_") || created["scope"] != "ingest" {
		t.Fatalf("created %s", r.Body)
	}
	expect(t, env.Call("POST", "/v1/events", key, map[string]any{"type": "a", "data": map[string]any{}}), http.StatusAccepted)

	list := env.Call("GET", "/v1/api-keys", ws.Admin, nil)
	expect(t, list, http.StatusOK)
	if strings.Contains(string(list.Body), key) || !strings.Contains(string(list.Body), id) {
		t.Errorf("list shows the key or misses it: %s", list.Body)
	}
	expect(t, env.Call("DELETE", "/v1/api-keys/"+id, ws.Admin, nil), http.StatusNoContent)
	expectError(t, env.Call("POST", "/v1/events", key, map[string]any{"type": "a", "data": map[string]any{}}), 401, "unauthorized", "")
}

func TestMembersAndInvitesTwin(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{})
	ws := env.Workspace()
	ctx := context.Background()
	owner, err := env.Store.CreateUser(ctx, "owner@example.com", "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Store.AddMember(ctx, ws.ID, owner.ID, db.RoleOwner); err != nil {
		t.Fatal(err)
	}
	r := env.Call("GET", "/v1/members", ws.Admin, nil)
	expect(t, r, http.StatusOK)
	if !strings.Contains(string(r.Body), `"email":"owner@example.com"`) || !strings.Contains(string(r.Body), `"role":"owner"`) {
		t.Errorf("members: %s", r.Body)
	}
	// The last owner cannot be demoted or removed.
	if r := env.Call("PATCH", "/v1/members/"+owner.ID, ws.Admin, map[string]any{"role": "viewer"}); r.Status < 400 {
		t.Errorf("demoting the last owner answered %d", r.Status)
	}
	expectError(t, env.Call("PATCH", "/v1/members/"+owner.ID, ws.Admin, map[string]any{"role": "god"}), 422, "invalid", "role")

	r = env.Call("POST", "/v1/invites", ws.Admin, map[string]any{"role": "viewer"})
	expect(t, r, http.StatusCreated)
	path, _ := r.Map(t)["path"].(string)
	if !strings.HasPrefix(path, "/invite/") {
		t.Fatalf("invite: %s", r.Body)
	}
	if _, err := env.Store.InviteByToken(ctx, strings.TrimPrefix(path, "/invite/")); err != nil {
		t.Errorf("the invite link does not resolve: %v", err)
	}
}

func TestDiscardTwin(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{AllowPrivate: true})
	tn := newTenant(t, env)
	expectError(t, env.Call("POST", "/v1/deliveries/"+tn.pending+"/discard", tn.ws.Admin, nil), 409, "not_dead", "")
	r := env.Call("POST", "/v1/deliveries/"+tn.dead+"/discard", tn.ws.Admin, nil)
	expect(t, r, http.StatusOK)
	if r.Map(t)["status"] != "discarded" {
		t.Errorf("discard: %s", r.Body)
	}
	dead := env.Call("GET", "/v1/deliveries?status=dead", tn.ws.Admin, nil)
	if strings.Contains(string(dead.Body), tn.dead) {
		t.Error("a discarded delivery is still listed as dead")
	}
	expect(t, env.Call("GET", "/v1/deliveries?status=discarded", tn.ws.Admin, nil), http.StatusOK)
	// A replay brings it back to work.
	expect(t, env.Call("POST", "/v1/deliveries/"+tn.dead+"/replay", tn.ws.Admin, nil), http.StatusAccepted)
}

func TestRuleErrorsNameTheFieldOnce(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{})
	ws := env.Workspace()
	for field, body := range map[string]map[string]any{
		"event_type": {"name": "r", "event_type": "lead*", "actions": []any{}},
		"expression": {"name": "r", "event_type": "*", "expression": "data.a ==", "actions": []any{}},
	} {
		e := expectError(t, env.Call("POST", "/v1/rules", ws.Admin, body), 422, "invalid", field)
		if strings.HasPrefix(e.Message, field+":") {
			t.Errorf("%s: the message repeats the field: %q", field, e.Message)
		}
	}
}
