package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// QueueCount is how many deliveries of one route are in one state, and
// when the oldest of them arrived, for the queue gauges.
type QueueCount struct {
	Route, State string
	N            int
	Oldest       time.Time
}

// QueueCacheFor is how long WatchQueue reuses one reading of the queue:
// reading it visits every record, so scrapes closer together than this
// (several Prometheus servers, a dashboard refreshing) share one reading.
const QueueCacheFor = 5 * time.Second

// WatchQueue exports the delivery queue's depth, read with counts at
// scrape time at most once per QueueCacheFor:
// switchboard_queue_deliveries by route and state,
// switchboard_queue_oldest_pending_age_seconds by route, and
// switchboard_queue_up (0 when the last reading failed; the other two are
// then absent).
func (m *Metrics) WatchQueue(counts func() ([]QueueCount, error)) {
	if m == nil {
		return
	}
	m.Registry.MustRegister(&queueCollector{counts: counts, now: time.Now})
}

// QueueOutcome counts one recorded step of a delivery: state is where it
// stands after the step (pending: the attempt failed and is retried,
// delivered, dead), reason why it is retried or dead, status the
// upstream's answer (0 for none).
func (m *Metrics) QueueOutcome(route, state, reason string, status int) {
	if m == nil {
		return
	}
	switch state {
	case "delivered":
		m.qDelivered.WithLabelValues(route, statusLabel(status)).Inc()
	case "dead":
		m.qDead.WithLabelValues(route, reason).Inc()
	default:
		m.qFailed.WithLabelValues(route, reason).Inc()
	}
}

func newQueueCounters() (delivered, failed, dead *prometheus.CounterVec) {
	delivered = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_queue_delivered_total",
		Help: "Queued deliveries that ended delivered, by route and the upstream's final status.",
	}, []string{"route", "code"})
	failed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_queue_failed_attempts_total",
		Help: "Delivery attempts that failed and are retried later, by route and reason (connect_failure, reset_before_response, timeout, status_NNN).",
	}, []string{"route", "reason"})
	dead = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_queue_dead_lettered_total",
		Help: "Queued deliveries that ended dead-lettered, by route and reason (attempts_exhausted, max_age, deadline, not_idempotent, not_retryable, ...).",
	}, []string{"route", "reason"})
	return delivered, failed, dead
}

var (
	queueDepth = prometheus.NewDesc("switchboard_queue_deliveries",
		"Deliveries in the queue's records by route and state (pending, delivered, dead, cancelled); "+
			"read at most every 5s.", []string{"route", "state"}, nil)
	queueOldest = prometheus.NewDesc("switchboard_queue_oldest_pending_age_seconds",
		"Age of the oldest pending delivery, by route (absent when none is pending).", []string{"route"}, nil)
	queueUp = prometheus.NewDesc("switchboard_queue_up",
		"1 when the queue's records could be read at the last reading.", nil, nil)
)

type queueCollector struct {
	counts func() ([]QueueCount, error)
	now    func() time.Time

	mu   sync.Mutex // guards the following: the cached reading
	at   time.Time
	last []QueueCount
	err  error
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepth
	ch <- queueOldest
	ch <- queueUp
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	counts, err := c.reading(now)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(queueUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(queueUp, prometheus.GaugeValue, 1)
	for _, q := range counts {
		ch <- prometheus.MustNewConstMetric(queueDepth, prometheus.GaugeValue, float64(q.N), q.Route, q.State)
		if q.State == "pending" && q.N > 0 {
			age := max(now.Sub(q.Oldest), 0)
			ch <- prometheus.MustNewConstMetric(queueOldest, prometheus.GaugeValue, age.Seconds(), q.Route)
		}
	}
}

// reading returns the cached reading, or a new one when it is older than
// QueueCacheFor. Concurrent scrapes wait for one reading.
func (c *queueCollector) reading(now time.Time) ([]QueueCount, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() || now.Sub(c.at) >= QueueCacheFor {
		c.last, c.err = c.counts()
		c.at = now
	}
	return c.last, c.err
}
