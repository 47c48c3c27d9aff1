package web

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/handlers"
	"github.com/labstack/echo/v4"
)

func TestIngestRateLimitPerKey(t *testing.T) {
	e := echo.New()
	e.HTTPErrorHandler = errorHandler(nil)
	lim := newIngestLimiter(5) // 5/s, burst 10
	asKey := func(id string) echo.MiddlewareFunc {
		return func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error {
				handlers.SetIdentity(c, &handlers.Identity{WorkspaceID: "ws", Key: &db.APIKey{ID: id}})
				return next(c)
			}
		}
	}
	ok := func(c echo.Context) error { return c.NoContent(http.StatusAccepted) }
	e.POST("/a", ok, asKey("key_a"), lim.middleware)
	e.POST("/b", ok, asKey("key_b"), lim.middleware)
	post := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, nil))
		return rec
	}
	for i := 0; i < 10; i++ {
		if rec := post("/a"); rec.Code != http.StatusAccepted {
			t.Fatalf("request %d within the burst: %d", i+1, rec.Code)
		}
	}
	rec := post("/a")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("over the limit: %d, Retry-After %q, want 429 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	if rec := post("/b"); rec.Code != http.StatusAccepted {
		t.Errorf("another key is limited too: %d", rec.Code)
	}
}
