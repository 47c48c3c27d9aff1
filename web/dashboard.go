package web

import (
	"github.com/fanout-dev/fanout/handlers"
	"github.com/labstack/echo/v4"
)

// dashboardRoutes mounts the server-rendered dashboard.
func dashboardRoutes(e *echo.Echo, cfg Config, h *handlers.Handlers) {}
