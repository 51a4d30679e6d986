// Package metrics defines switchboard's Prometheus metrics: requests and
// hang-ups by route, side, phase, kind and action; request durations;
// prevented writes; requests in flight; the delivery queue's depth and
// outcomes.
//
// Metrics live in their own registry, never the global one, so tests and
// several servers in one process do not collide. The admin listener serves
// the registry at /metrics.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/switchboard-proxy/switchboard/hangup"
)

// Metrics is a set of switchboard's metrics. Its methods are safe for
// concurrent use. A nil *Metrics records nothing.
type Metrics struct {
	Registry *prometheus.Registry

	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	prevented *prometheus.CounterVec
	inFlight  *prometheus.GaugeVec
	abortLat  prometheus.Histogram
	reloads   *prometheus.CounterVec
	retries   *prometheus.CounterVec
	noRetries *prometheus.CounterVec

	qDelivered *prometheus.CounterVec
	qFailed    *prometheus.CounterVec
	qDead      *prometheus.CounterVec
}

// New creates the metrics in a new registry, with the Go runtime and process
// collectors.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_requests_total",
			Help: "Requests by route and outcome (side, phase, kind of hang-up, action taken). side=none is a normal end.",
		}, []string{"route", "code", "side", "phase", "kind", "action"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchboard_request_duration_seconds",
			Help:    "Time from the request's arrival to its end, by route and side that ended it.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route", "side"}),
		prevented: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_prevented_writes_total",
			Help: "Writes not attempted because the socket had already ended (rule R2), by where they were stopped.",
		}, []string{"where"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchboard_requests_in_flight",
			Help: "Requests being handled now, by route (tunnels included).",
		}, []string{"route"}),
		abortLat: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchboard_caller_abort_propagation_seconds",
			Help:    "Time from the caller's hang-up until the upstream request was aborted.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5},
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_config_reloads_total",
			Help: "Configuration reloads by result (ok, rejected).",
		}, []string{"result"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_retries_total",
			Help: "Attempts made again, by route and reason (connect_failure, reset_before_response, timeout, status_NNN).",
		}, []string{"route", "reason"}),
		noRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_retries_refused_total",
			Help: "Failed attempts not retried although another could have helped, by route and reason (not_idempotent, body_not_replayable, attempts_exhausted, budget_exhausted, deadline, retry_after_too_long).",
		}, []string{"route", "reason"}),
	}
	m.qDelivered, m.qFailed, m.qDead = newQueueCounters()
	m.Registry.MustRegister(m.qDelivered, m.qFailed, m.qDead)
	m.Registry.MustRegister(m.requests, m.duration, m.prevented, m.inFlight, m.abortLat, m.reloads, m.retries, m.noRetries,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Request records the end of one request.
func (m *Metrics) Request(route string, status int, o hangup.Outcome, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(route, statusLabel(status), o.Side.String(), o.Phase.String(),
		o.Kind.String(), o.Action.String()).Inc()
	m.duration.WithLabelValues(route, o.Side.String()).Observe(d.Seconds())
}

// AbortPropagated records how long a caller's hang-up took to reach the
// upstream.
func (m *Metrics) AbortPropagated(d time.Duration) {
	if m == nil {
		return
	}
	m.abortLat.Observe(d.Seconds())
}

// PreventedWrite counts a write that was not attempted because its socket
// had ended.
func (m *Metrics) PreventedWrite(where string) {
	if m == nil {
		return
	}
	m.prevented.WithLabelValues(where).Inc()
}

// InFlight returns the gauge for route's requests in flight.
func (m *Metrics) InFlight(route string) prometheus.Gauge {
	if m == nil {
		return nopGauge{}
	}
	return m.inFlight.WithLabelValues(route)
}

// Reload counts a configuration reload; ok is false when it was rejected.
func (m *Metrics) Reload(ok bool) {
	if m == nil {
		return
	}
	r := "ok"
	if !ok {
		r = "rejected"
	}
	m.reloads.WithLabelValues(r).Inc()
}

// Retry counts an attempt made again, by why.
func (m *Metrics) Retry(route, reason string) {
	if m == nil {
		return
	}
	m.retries.WithLabelValues(route, reason).Inc()
}

// RetryRefused counts a failed attempt that was not retried, by why not.
func (m *Metrics) RetryRefused(route, reason string) {
	if m == nil {
		return
	}
	m.noRetries.WithLabelValues(route, reason).Inc()
}

// EndpointState is one upstream endpoint's state for the endpoint gauges.
type EndpointState struct {
	Pool, Endpoint string
	Outstanding    int  // requests in flight
	Ejected        bool // passive health took it out for now
	Healthy        bool // active health checks pass (true without checks)
}

// WatchEndpoints exports the state that list returns, read at each scrape:
// switchboard_endpoint_available (1 when neither ejected nor failing its
// health check), switchboard_endpoint_ejected and
// switchboard_endpoint_outstanding_requests, by pool and endpoint.
func (m *Metrics) WatchEndpoints(list func() []EndpointState) {
	if m == nil {
		return
	}
	m.Registry.MustRegister(&endpointCollector{list: list})
}

var (
	endpointAvailable = prometheus.NewDesc("switchboard_endpoint_available",
		"1 when the endpoint may get requests: not ejected by passive health and passing its active health check.",
		[]string{"pool", "endpoint"}, nil)
	endpointEjected = prometheus.NewDesc("switchboard_endpoint_ejected",
		"1 while passive health has ejected the endpoint.", []string{"pool", "endpoint"}, nil)
	endpointOutstanding = prometheus.NewDesc("switchboard_endpoint_outstanding_requests",
		"Attempts in flight to the endpoint.", []string{"pool", "endpoint"}, nil)
)

type endpointCollector struct{ list func() []EndpointState }

func (c *endpointCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- endpointAvailable
	ch <- endpointEjected
	ch <- endpointOutstanding
}

func (c *endpointCollector) Collect(ch chan<- prometheus.Metric) {
	for _, e := range c.list() {
		ch <- prometheus.MustNewConstMetric(endpointAvailable, prometheus.GaugeValue, b2f(!e.Ejected && e.Healthy), e.Pool, e.Endpoint)
		ch <- prometheus.MustNewConstMetric(endpointEjected, prometheus.GaugeValue, b2f(e.Ejected), e.Pool, e.Endpoint)
		ch <- prometheus.MustNewConstMetric(endpointOutstanding, prometheus.GaugeValue, float64(e.Outstanding), e.Pool, e.Endpoint)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var statusLabels = func() (s [600]string) {
	for i := range s {
		s[i] = itoa3(i)
	}
	return s
}()

func itoa3(i int) string {
	return string([]byte{byte('0' + i/100), byte('0' + i/10%10), byte('0' + i%10)})
}

func statusLabel(code int) string {
	if code < 0 || code >= len(statusLabels) {
		return "other"
	}
	return statusLabels[code]
}

type nopGauge struct{ prometheus.Gauge }

func (nopGauge) Inc() {}
func (nopGauge) Dec() {}
