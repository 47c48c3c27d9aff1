package connectors

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
)

// stub is a minimal connector for registry tests.
type stub struct {
	kind    string
	actions []string
}

func (s stub) Kind() string { return s.kind }

func (s stub) Info() Info {
	info := Info{Kind: s.kind, DisplayName: s.kind}
	for _, a := range s.actions {
		info.Actions = append(info.Actions, Action{Name: a})
	}
	return info
}

func (stub) ValidateConfig(json.RawMessage, Credentials) error { return nil }
func (stub) Send(context.Context, *Request) Result             { return Result{Outcome: Succeeded} }

func TestRegistry(t *testing.T) {
	t.Parallel()
	r := NewRegistry(stub{"slack", []string{"slack.post_message"}}, stub{"hubspot", []string{"hubspot.upsert_contact"}}, NewWebhook(ClientOptions{}))

	var kinds []string
	for _, c := range r.All() {
		kinds = append(kinds, c.Kind())
	}
	if !slices.Equal(kinds, []string{"hubspot", "slack", "webhook"}) {
		t.Errorf("All() kinds = %v", kinds)
	}
	if c, ok := r.Get("slack"); !ok || c.Kind() != "slack" {
		t.Error("Get(slack)")
	}
	if _, ok := r.Get("nope"); ok {
		t.Error("Get(nope) found something")
	}
	c, a, ok := r.Action("webhook.post")
	if !ok || c.Kind() != "webhook" || a.Name != "webhook.post" || !a.DefaultsToEnvelope {
		t.Errorf("Action(webhook.post) = %v, %+v, %v", c, a, ok)
	}
	for _, name := range []string{"webhook", "webhook.nope", "slack.upsert_contact", ""} {
		if _, _, ok := r.Action(name); ok {
			t.Errorf("Action(%q) found something", name)
		}
	}
	r.All()[0] = nil
	if r.All()[0] == nil {
		t.Error("All() exposes the registry's slice")
	}
}

func TestNewRegistryPanics(t *testing.T) {
	t.Parallel()
	tests := map[string][]Connector{
		"nil":            {nil},
		"duplicate kind": {stub{kind: "a"}, stub{kind: "a"}},
		"empty kind":     {stub{kind: ""}},
		"unprefixed":     {stub{"a", []string{"post"}}},
		"other kind":     {stub{"a", []string{"b.post"}}},
		"nested verb":    {stub{"a", []string{"a.b.c"}}},
		"duplicate act":  {stub{"a", []string{"a.x", "a.x"}}},
	}
	for name, cs := range tests {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			NewRegistry(cs...)
		}()
	}
}

func TestDefault(t *testing.T) {
	t.Parallel()
	for _, c := range Default().All() {
		if c.Info().Kind != c.Kind() || len(c.Info().Actions) == 0 {
			t.Errorf("%s: inconsistent Info", c.Kind())
		}
	}
	if _, ok := Default().Get("webhook"); !ok {
		t.Error("webhook is not registered")
	}
}
