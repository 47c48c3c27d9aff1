package web

import (
	"github.com/fanout-dev/fanout/handlers"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routes is the single route table.
func routes(e *echo.Echo, cfg Config, h *handlers.Handlers) {
	e.GET("/healthz", h.Healthz)
	e.GET("/readyz", h.Readyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{})))
	e.GET("/v1/openapi.json", h.OpenAPI)

	ingest := e.Group("/v1", apiKeyAuth(h.Store, true), newIngestLimiter(cfg.IngestRateLimit).middleware)
	ingest.POST("/events", h.IngestEvent)
	ingest.POST("/events/batch", h.IngestBatch)

	v1 := e.Group("/v1", apiKeyAuth(h.Store, false))
	v1.GET("/events", h.ListEvents)
	v1.GET("/events/:id", h.GetEvent)

	v1.GET("/connections", h.ListConnections)
	v1.POST("/connections", h.CreateConnection)
	v1.GET("/connections/:id", h.GetConnection)
	v1.PATCH("/connections/:id", h.UpdateConnection)
	v1.DELETE("/connections/:id", h.DeleteConnection)
	v1.POST("/connections/:id/test", h.TestConnection)
	v1.POST("/connections/:id/rotate-secret", h.RotateSigningSecret)
	v1.GET("/connections/:id/options/:option", h.ListOptions)

	v1.GET("/rules", h.ListRules)
	v1.POST("/rules", h.CreateRule)
	v1.POST("/rules/test", h.TestRules)
	v1.GET("/rules/:id", h.GetRule)
	v1.PATCH("/rules/:id", h.UpdateRule)
	v1.DELETE("/rules/:id", h.DeleteRule)

	v1.GET("/deliveries", h.ListDeliveries)
	v1.POST("/deliveries/replay", h.ReplayDeliveries)
	v1.POST("/deliveries/:id/replay", h.ReplayDelivery)
	v1.POST("/deliveries/:id/discard", h.DiscardDelivery)

	v1.GET("/api-keys", h.ListAPIKeys)
	v1.POST("/api-keys", h.CreateAPIKey)
	v1.DELETE("/api-keys/:id", h.RevokeAPIKey)
	v1.GET("/members", h.ListMembers)
	v1.PATCH("/members/:id", h.UpdateMember)
	v1.DELETE("/members/:id", h.RemoveMember)
	v1.POST("/invites", h.CreateInvite)

	dashboardRoutes(e, cfg, h)
}
