package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/fanout-dev/fanout/handlers"
	"github.com/fanout-dev/fanout/handlers/apitest"
)

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{})
	r := env.Call("GET", "/healthz", "", nil)
	expect(t, r, http.StatusOK)
	r = env.Call("GET", "/readyz", "", nil)
	expect(t, r, http.StatusOK)
	var ready struct {
		Ready  bool              `json:"ready"`
		Checks map[string]string `json:"checks"`
	}
	r.JSON(t, &ready)
	if !ready.Ready || ready.Checks["database"] != "ok" || ready.Checks["redis"] != "ok" {
		t.Errorf("readyz: %s", r.Body)
	}

	down := func(context.Context) error {
		return errors.New("dial tcp 10.0.0.7:6379: connection refused (password=hunter2)")
	}
	up := func(context.Context) error { return nil }
	for _, failing := range []string{"database", "redis"} {
		t.Run(failing+" down", func(t *testing.T) {
			t.Parallel()
			checks := map[string]func(context.Context) error{"database": up, "redis": up}
			checks[failing] = down
			env := apitest.New(t, apitest.Options{ReadyChecks: checks})
			expect(t, env.Call("GET", "/healthz", "", nil), http.StatusOK)
			r := env.Call("GET", "/readyz", "", nil)
			expect(t, r, http.StatusServiceUnavailable)
			var ready struct {
				Ready  bool              `json:"ready"`
				Checks map[string]string `json:"checks"`
			}
			r.JSON(t, &ready)
			if ready.Ready || ready.Checks[failing] != "unavailable" || len(ready.Checks) != 2 {
				t.Errorf("readyz: %s", r.Body)
			}
			for name, state := range ready.Checks {
				if name != failing && state != "ok" {
					t.Errorf("%s: %s", name, state)
				}
			}
			if strings.Contains(string(r.Body), "hunter2") || strings.Contains(string(r.Body), "10.0.0.7") {
				t.Errorf("readyz leaks the error: %s", r.Body)
			}
		})
	}

	t.Run("slow check", func(t *testing.T) {
		t.Parallel()
		slow := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
		env := apitest.New(t, apitest.Options{ReadyChecks: map[string]func(context.Context) error{"database": up, "redis": slow}})
		r := env.Call("GET", "/readyz", "", nil)
		expect(t, r, http.StatusServiceUnavailable)
		if !strings.Contains(string(r.Body), `"redis":"unavailable"`) {
			t.Errorf("readyz: %s", r.Body)
		}
	})
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{})
	ws := env.Workspace()
	ingest(t, env, ws.Ingest, map[string]any{"type": "a", "data": map[string]any{}})
	ingest(t, env, ws.Ingest, map[string]any{"type": "a", "id": "once", "data": map[string]any{}})
	ingest(t, env, ws.Ingest, map[string]any{"type": "a", "id": "once", "data": map[string]any{}}) // duplicate: not counted
	env.Call("POST", "/v1/events", ws.Ingest, map[string]any{"type": "a"})                         // refused: not counted
	r := env.Call("GET", "/metrics", "", nil)
	expect(t, r, http.StatusOK)
	body := string(r.Body)
	for _, want := range []string{
		"fanout_events_ingested_total 2\n",
		"# TYPE fanout_ssrf_blocked_total counter",
		"# HELP fanout_events_ingested_total",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}

// TestOpenAPIDocumentsEveryRoute walks the Echo route table: every /v1 route is in the
// OpenAPI document, and every documented operation is routed.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, apitest.Options{})
	routed := v1Routes(env.Echo)
	documented := slices.Clone(handlers.DocumentedRoutes())
	slices.Sort(documented)
	for _, r := range routed {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not documented in the OpenAPI document", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(routed, d) {
			t.Errorf("documented operation %s has no route", d)
		}
	}
	if len(slices.Compact(slices.Clone(documented))) != len(documented) {
		t.Errorf("an operation is documented twice: %v", documented)
	}

	r := env.Call("GET", "/v1/openapi.json", "", nil)
	expect(t, r, http.StatusOK)
	var doc struct {
		OpenAPI    string                               `json:"openapi"`
		Info       map[string]any                       `json:"info"`
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas         map[string]any `json:"schemas"`
			SecuritySchemes map[string]any `json:"securitySchemes"`
		} `json:"components"`
	}
	r.JSON(t, &doc)
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Errorf("openapi %q, want 3.1.x", doc.OpenAPI)
	}
	if doc.Info["title"] == nil || doc.Info["version"] == nil || len(doc.Components.SecuritySchemes) == 0 {
		t.Errorf("info or security missing: %s", r.Body[:200])
	}
	var inDoc []string
	for path, ops := range doc.Paths {
		for method, op := range ops {
			inDoc = append(inDoc, strings.ToUpper(method)+" "+regexp.MustCompile(`\{(\w+)\}`).ReplaceAllString(path, ":$1"))
			if _, ok := op["responses"].(map[string]any); !ok {
				t.Errorf("%s %s has no responses", method, path)
			}
			if strings.Contains(path, "{id}") && !strings.Contains(strings.ReplaceAll(string(mustJSON(t, op["parameters"])), " ", ""), `"in":"path"`) {
				t.Errorf("%s %s does not declare its path parameter", method, path)
			}
		}
	}
	slices.Sort(inDoc)
	if strings.Join(inDoc, "\n") != strings.Join(documented, "\n") {
		t.Errorf("document paths %v differ from DocumentedRoutes %v", inDoc, documented)
	}
	// Every $ref resolves.
	for _, ref := range refs(r.Body) {
		name := strings.TrimPrefix(ref, "#/components/schemas/")
		if _, ok := doc.Components.Schemas[name]; !ok {
			t.Errorf("dangling $ref %s", ref)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// refs returns every "$ref" value in a JSON document.
func refs(doc []byte) []string {
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "$ref" {
					out = append(out, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	var v any
	_ = json.Unmarshal(doc, &v)
	walk(v)
	return out
}
