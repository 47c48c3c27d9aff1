package jobs

import (
	"time"

	"github.com/fanout-dev/fanout/jobs/connectors"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the engine's Prometheus collectors.
type Metrics struct {
	EventsIngested  prometheus.Counter
	Deliveries      *prometheus.CounterVec
	Attempts        *prometheus.CounterVec
	AttemptDuration *prometheus.HistogramVec
	SSRFBlocked     prometheus.Counter
	BreakerTrips    prometheus.Counter
}

// NewMetrics creates the collectors and registers them with reg (if not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		EventsIngested: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fanout_events_ingested_total", Help: "Events accepted and stored by the ingest API."}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fanout_deliveries_total", Help: "Delivery state changes after an attempt, by resulting status."}, []string{"status"}),
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fanout_attempts_total", Help: "Delivery attempts by connector kind and outcome."}, []string{"kind", "outcome"}),
		AttemptDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "fanout_attempt_duration_seconds", Help: "Time from sending an attempt to its answer.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"kind"}),
		SSRFBlocked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fanout_ssrf_blocked_total", Help: "Outgoing connections refused by the SSRF guard."}),
		BreakerTrips: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fanout_circuit_breaker_trips_total", Help: "Times a destination's circuit opened after repeated failures."}),
	}
	if reg != nil {
		reg.MustRegister(m.EventsIngested, m.Deliveries, m.Attempts, m.AttemptDuration, m.SSRFBlocked, m.BreakerTrips)
	}
	return m
}

func (m *Metrics) observeAttempt(kind string, res connectors.Result, d time.Duration) {
	m.Attempts.WithLabelValues(kind, string(res.Outcome)).Inc()
	m.AttemptDuration.WithLabelValues(kind).Observe(d.Seconds())
}

func (m *Metrics) deliveryOutcome(status string) {
	m.Deliveries.WithLabelValues(status).Inc()
}
