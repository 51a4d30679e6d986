package metrics

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestQueueMetrics(t *testing.T) {
	m := New()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	reads := 0
	var fail error
	c := &queueCollector{now: func() time.Time { return now }, counts: func() ([]QueueCount, error) {
		reads++
		return []QueueCount{
			{Route: "hooks", State: "pending", N: 3, Oldest: now.Add(-90 * time.Second)},
			{Route: "hooks", State: "dead", N: 1, Oldest: now.Add(-time.Hour)},
		}, fail
	}}
	m.Registry.MustRegister(c)
	m.QueueOutcome("hooks", "pending", "connect_failure", 0)
	m.QueueOutcome("hooks", "delivered", "", 201)
	m.QueueOutcome("hooks", "dead", "attempts_exhausted", 503)

	want := map[string]float64{
		`switchboard_queue_deliveries{route="hooks",state="dead"}`:                         1,
		`switchboard_queue_deliveries{route="hooks",state="pending"}`:                      3,
		`switchboard_queue_oldest_pending_age_seconds{route="hooks"}`:                      90,
		`switchboard_queue_up{}`:                                                           1,
		`switchboard_queue_delivered_total{code="201",route="hooks"}`:                      1,
		`switchboard_queue_failed_attempts_total{reason="connect_failure",route="hooks"}`:  1,
		`switchboard_queue_dead_lettered_total{reason="attempts_exhausted",route="hooks"}`: 1,
	}
	got := gather(t, m)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	// A second scrape within QueueCacheFor reuses the reading.
	now = now.Add(QueueCacheFor - time.Millisecond)
	gather(t, m)
	if reads != 1 {
		t.Errorf("%d readings for two scrapes within %v, want 1", reads, QueueCacheFor)
	}
	// A failed reading after the cache expired: up is 0, no depth.
	now = now.Add(time.Second)
	fail = errors.New("store down")
	got = gather(t, m)
	if got[`switchboard_queue_up{}`] != 0 || got[`switchboard_queue_deliveries{route="hooks",state="pending"}`] != 0 {
		t.Errorf("after a failed reading: %v", got)
	}
	if reads != 2 {
		t.Errorf("%d readings, want 2", reads)
	}
}

// gather returns the registry's gauge and counter values by name{labels}.
func gather(t *testing.T, m *Metrics) map[string]float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			var labels []string
			for _, l := range mt.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			v := mt.GetGauge().GetValue() + mt.GetCounter().GetValue()
			out[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	return out
}
