package mcpauth

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
)

// metrics are the plugin's Prometheus metrics, in Caddy's metrics registry
// (served by Caddy's metrics endpoint). They are created once per process
// so that they survive config reloads, and registered with each config.
var metrics struct {
	once          sync.Once
	registrations prometheus.Counter
	logins        *prometheus.CounterVec
	tokens        *prometheus.CounterVec
	refreshReuse  prometheus.Counter
	gate          *prometheus.CounterVec
	// gateAllowed is gate's series for allowed requests, looked up once:
	// it counts every gated request that passes.
	gateAllowed prometheus.Counter
	// gateRefused are gate's series for refusals, by gateOutcome.
	gateRefused map[string]prometheus.Counter
	duration    *prometheus.HistogramVec
}

func initMetrics() {
	metrics.once.Do(func() {
		const ns, sub = "caddy", "mcp_auth"
		metrics.registrations = prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "client_registrations_total",
			Help: "Clients registered dynamically (RFC 7591).",
		})
		metrics.logins = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "logins_total",
			Help: "Finished user logins, by upstream provider and outcome (success, denied, failed).",
		}, []string{"upstream", "outcome"})
		metrics.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "tokens_issued_total",
			Help: "Token responses, by grant type.",
		}, []string{"grant_type"})
		metrics.refreshReuse = prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "refresh_token_reuse_total",
			Help: "Reuses of rotated refresh tokens detected (each revoked a grant).",
		})
		metrics.gate = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "gate_decisions_total",
			Help: "Requests to protected resources, by outcome.",
		}, []string{"outcome"})
		metrics.gateAllowed = metrics.gate.WithLabelValues("allowed")
		metrics.gateRefused = make(map[string]prometheus.Counter)
		for _, outcome := range []string{"no_token", "invalid_token", "insufficient_scope", "origin_denied", "unavailable", "bad_request", "foreign_session"} {
			metrics.gateRefused[outcome] = metrics.gate.WithLabelValues(outcome)
		}
		metrics.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "endpoint_duration_seconds",
			Help:    "Time to answer the authorization server's endpoints, by endpoint name.",
			Buckets: prometheus.DefBuckets,
		}, []string{"endpoint"})
	})
}

// registerMetrics adds the metrics to a config's registry; several sites
// register the same collectors, which is fine.
func registerMetrics(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{metrics.registrations, metrics.logins, metrics.tokens,
		metrics.refreshReuse, metrics.gate, metrics.duration} {
		var already prometheus.AlreadyRegisteredError
		if err := reg.Register(c); err != nil && !errors.As(err, &already) {
			return err
		}
	}
	return nil
}

// observer feeds the authorization server's events into the metrics.
type observer struct{}

func (observer) ClientRegistered()     { metrics.registrations.Inc() }
func (observer) RefreshTokenReused()   { metrics.refreshReuse.Inc() }
func (observer) TokensIssued(g string) { metrics.tokens.WithLabelValues(g).Inc() }
func (observer) Login(upstream, outcome string) {
	metrics.logins.WithLabelValues(upstream, outcome).Inc()
}

// gateOutcome names a refusal of the gate, by its status and error code,
// for the metrics.
func gateOutcome(status int, code oauth.ErrorCode) string {
	switch {
	case status == 401 && code == "":
		return "no_token"
	case status == 401:
		return "invalid_token"
	case status == 403 && code == oauth.InsufficientScope:
		return "insufficient_scope"
	case status == 403:
		return "origin_denied"
	case status >= 500:
		return "unavailable"
	}
	return "bad_request"
}

func observeDuration(endpoint string, start time.Time) {
	metrics.duration.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
}
