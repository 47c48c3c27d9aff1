// Package web is the HTTP shell: the Echo instance, middleware, the route table and the
// error handler. Handlers live in package handlers.
package web

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/fanout-dev/fanout/handlers"
	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is what the HTTP layer needs beyond the handlers.
type Config struct {
	Log      *slog.Logger
	Registry *prometheus.Registry
	// BaseURL is the public URL of the dashboard (FANOUT_BASE_URL); https makes cookies Secure.
	BaseURL string
	// QueueRedis is the queue's Redis, for the operators' queue monitor at /admin/queues.
	QueueRedis asynq.RedisConnOpt
	// TrustedProxies may set X-Forwarded-For; without any, the client is the peer address
	// (a forged header must not dodge the per-IP login limit).
	TrustedProxies []netip.Prefix
	// IngestRateLimit is the events per second one API key may post (per process); 0 is
	// no limit.
	IngestRateLimit float64
	// OAuth is the destinations' OAuth connect flow; nil leaves it out.
	OAuth *handlers.OAuthFlow
}

// New builds the Echo instance with middleware and every route.
func New(cfg Config, h *handlers.Handlers) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(cfg.Log)
	e.IPExtractor = ipExtractor(cfg.TrustedProxies)
	e.Pre(refuseNUL)
	e.Use(middleware.RequestID())
	e.Use(accessLog(cfg.Log))
	e.Use(middleware.Recover())
	routes(e, cfg, h)
	return e
}

// errorHandler renders every error once: /v1 errors as {"error": {...}}, logged only
// when they are the server's fault.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		apiErr, ok := handlers.AsError(err)
		if !ok {
			apiErr = fromEcho(err)
		}
		if apiErr == nil {
			rid := c.Response().Header().Get(echo.HeaderXRequestID)
			log.Error("request failed", "method", c.Request().Method, "path", c.Path(), "request_id", rid, "err", err)
			apiErr = &handlers.Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error (request " + rid + ")"}
		}
		if apiErr.RetryAfter > 0 {
			c.Response().Header().Set("Retry-After", strconv.Itoa(apiErr.RetryAfter))
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(apiErr.Status)
			return
		}
		if wantsHTML(c) {
			rid := c.Response().Header().Get(echo.HeaderXRequestID)
			if err := handlers.RenderError(c, apiErr, rid); err != nil {
				log.Error("render error page", "request_id", rid, "err", err)
			}
			return
		}
		_ = c.JSON(apiErr.Status, map[string]*handlers.Error{"error": apiErr})
	}
}

// wantsHTML reports whether an error should be answered with an HTML page: every path
// but the JSON API and the operations endpoints.
func wantsHTML(c echo.Context) bool {
	p := c.Request().URL.Path
	switch {
	case p == "/v1" || strings.HasPrefix(p, "/v1/"), p == "/healthz", p == "/readyz", p == "/metrics":
		return false
	case strings.HasPrefix(p, QueuesPath+"/api/"):
		return false
	}
	return true
}

// fromEcho maps Echo's own errors (unknown route, wrong method, body too large).
func fromEcho(err error) *handlers.Error {
	var he *echo.HTTPError
	if !errors.As(err, &he) {
		return nil
	}
	code := map[int]string{
		http.StatusNotFound: "not_found", http.StatusMethodNotAllowed: "method_not_allowed",
		http.StatusRequestEntityTooLarge: "too_large", http.StatusUnauthorized: "unauthorized",
		http.StatusForbidden: "forbidden", http.StatusBadRequest: "bad_request",
		http.StatusUnsupportedMediaType: "unsupported_media_type", http.StatusTooManyRequests: "rate_limited",
	}[he.Code]
	if code == "" {
		if he.Code >= 500 {
			return nil
		}
		code = "error"
	}
	msg := http.StatusText(he.Code)
	if s, ok := he.Message.(string); ok && he.Code < 500 {
		msg = s
	}
	return &handlers.Error{Status: he.Code, Code: code, Message: strings.ToLower(msg)}
}

func accessLog(log *slog.Logger) echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogStatus: true, LogURIPath: true, LogMethod: true, LogLatency: true, LogRequestID: true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			level := slog.LevelDebug
			if v.Status >= 500 {
				level = slog.LevelWarn
			}
			log.Log(c.Request().Context(), level, "http request", "method", v.Method, "path", v.URIPath,
				"status", v.Status, "latency_ms", v.Latency.Milliseconds(), "request_id", v.RequestID)
			return nil
		},
	})
}

// ReadHeaderTimeout and friends bound slow clients (slow-loris) on the listening server.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = 60 * time.Second
	IdleTimeout       = 120 * time.Second
)

// refuseNUL answers 400 for a NUL byte in the path or query: no id or filter holds one,
// and neither database would store it.
func refuseNUL(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		u := c.Request().URL
		if strings.IndexByte(u.Path, 0) >= 0 || strings.Contains(strings.ToLower(u.RawQuery), "%00") {
			return &handlers.Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "the URL must not contain NUL (%00)"}
		}
		return next(c)
	}
}

func ipExtractor(trusted []netip.Prefix) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		opts = append(opts, echo.TrustIPRange(&net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}
