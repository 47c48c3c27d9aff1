package connectors

import (
	"fmt"
	"slices"
	"strings"
)

// Registry is the fixed set of connector kinds the process knows. It is built once at
// start-up and is safe for concurrent use because it never changes afterwards.
type Registry struct {
	byKind  map[string]Connector
	sorted  []Connector
	actions map[string]registeredAction
}

type registeredAction struct {
	connector Connector
	action    Action
}

// Default returns every shipped connector under the strict network policy (no private
// destinations). Use DefaultWith when the operator relaxes that policy.
func Default() *Registry { return DefaultWith(ClientOptions{}) }

// DefaultWith returns every shipped connector, with no OAuth app configured. opts is the
// same network policy that the outgoing HTTP client enforces at dial time; connectors use
// it to check destination URLs when a connection is saved, so both checks agree.
func DefaultWith(opts ClientOptions) *Registry { return DefaultWithOAuth(opts, OAuthConfig{}) }

// DefaultWithOAuth returns every shipped connector, one line each, under the network
// policy opts and the operator's OAuth apps: connectors refresh tokens with them, and
// the connect flow finds them through Registry.OAuthProvider.
func DefaultWithOAuth(opts ClientOptions, oauth OAuthConfig) *Registry {
	p := NewOAuthProviders(oauth)
	return NewRegistry(
		NewWebhook(opts),
		NewHubSpot(opts, p["hubspot"]),
		NewMailchimp(opts, p["mailchimp"]),
		NewIntercom(opts, p["intercom"]),
		NewSlack(opts, p["slack"]),
		NewSegment(opts),
	)
}

// NewRegistry indexes cs by kind and by action name. It panics on a programming error:
// a nil connector, a kind registered twice, an Info whose Kind differs from Kind(), or an
// action not named "<kind>.<verb>".
func NewRegistry(cs ...Connector) *Registry {
	r := &Registry{
		byKind:  make(map[string]Connector, len(cs)),
		actions: make(map[string]registeredAction),
	}
	for _, c := range cs {
		if c == nil {
			panic("connectors: nil connector")
		}
		kind := c.Kind()
		if kind == "" || strings.Contains(kind, ".") {
			panic(fmt.Sprintf("connectors: invalid kind %q", kind))
		}
		if _, dup := r.byKind[kind]; dup {
			panic(fmt.Sprintf("connectors: kind %q registered twice", kind))
		}
		info := c.Info()
		if info.Kind != kind {
			panic(fmt.Sprintf("connectors: %q reports Info().Kind %q", kind, info.Kind))
		}
		for _, a := range info.Actions {
			verb, ok := strings.CutPrefix(a.Name, kind+".")
			if !ok || verb == "" || strings.Contains(verb, ".") {
				panic(fmt.Sprintf("connectors: action %q of %q is not named %s.<verb>", a.Name, kind, kind))
			}
			if _, dup := r.actions[a.Name]; dup {
				panic(fmt.Sprintf("connectors: action %q registered twice", a.Name))
			}
			r.actions[a.Name] = registeredAction{connector: c, action: a}
		}
		r.byKind[kind] = c
		r.sorted = append(r.sorted, c)
	}
	slices.SortFunc(r.sorted, func(a, b Connector) int { return strings.Compare(a.Kind(), b.Kind()) })
	return r
}

// Get returns the connector of a kind.
func (r *Registry) Get(kind string) (Connector, bool) {
	c, ok := r.byKind[kind]
	return c, ok
}

// All returns every connector sorted by kind. The slice is a copy.
func (r *Registry) All() []Connector { return slices.Clone(r.sorted) }

// Action finds an action by its full name ("hubspot.upsert_contact") and returns it with
// the connector that performs it.
func (r *Registry) Action(name string) (Connector, Action, bool) {
	ra, ok := r.actions[name]
	return ra.connector, ra.action, ok
}
