package static_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fanout-dev/fanout/static"
)

func TestFingerprintedAssets(t *testing.T) {
	h := static.Handler()
	for _, name := range []string{"css/app.css", "js/htmx.min.js", "js/app.js", "img/logo.svg"} {
		u := static.URL(name)
		if u == static.Prefix+name {
			t.Fatalf("%s: URL not fingerprinted", name)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, u, nil))
		if rec.Code != http.StatusOK || !strings.Contains(rec.Header().Get("Cache-Control"), "immutable") {
			t.Fatalf("%s: %d %q", u, rec.Code, rec.Header().Get("Cache-Control"))
		}
		// An old fingerprint still gets the file, but not cached for long.
		dot := strings.LastIndex(name, ".")
		stale := static.Prefix + name[:dot] + ".0123456789" + name[dot:]
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, stale, nil))
		if rec.Code != http.StatusOK || rec.Header().Get("Cache-Control") != "no-cache" {
			t.Fatalf("%s: %d %q", stale, rec.Code, rec.Header().Get("Cache-Control"))
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/static/../static.go", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("non-asset: %d", rec.Code)
	}
	if !strings.Contains(static.HTMXVersion, "2.") {
		t.Fatal("htmx must be pinned to 2.x")
	}
}
