package upstream

import (
	"time"

	"github.com/switchboard-proxy/switchboard/internal/config"
)

// endpointState is an endpoint's load and health. It lives in Endpoint and
// is guarded by Pool.mu.
type endpointState struct {
	outstanding int // leases not yet released

	// Passive health.
	failures     int       // failed attempts in a row
	ejections    int       // ejections in a row: a success after returning resets it
	ejectedUntil time.Time // ejected while now is before this

	// Active health.
	unhealthy bool
	probeOK   int // successful probes in a row
	probeFail int // failed probes in a row
}

// available reports whether e may take new attempts at now.
func (s *endpointState) available(now time.Time) bool {
	return !s.unhealthy && !s.ejected(now)
}

// ejected reports whether passive health keeps e out at now.
func (s *endpointState) ejected(now time.Time) bool { return now.Before(s.ejectedUntil) }

// passiveHealth is config.PassiveHealth with defaults applied.
type passiveHealth struct {
	failures   int // in a row, to eject
	base       time.Duration
	max        time.Duration
	maxPercent int
}

// Passive health defaults, as config applies them.
const (
	defaultConsecutiveFailures = 5
	defaultBaseEjection        = 10 * time.Second
	defaultMaxEjection         = 5 * time.Minute
	defaultMaxEjectedPercent   = 50
)

func newPassiveHealth(c *config.PassiveHealth) passiveHealth {
	return passiveHealth{
		failures:   orInt(c.ConsecutiveFailures, defaultConsecutiveFailures),
		base:       orDuration(c.BaseEjection.D(), defaultBaseEjection),
		max:        orDuration(c.MaxEjection.D(), defaultMaxEjection),
		maxPercent: min(orInt(c.MaxEjectedPercent, defaultMaxEjectedPercent), 100),
	}
}

// ejection returns how long the nth ejection in a row lasts: the base time
// doubled for each earlier one, capped at the maximum.
func (h *passiveHealth) ejection(n int) time.Duration {
	d := h.base
	for range n - 1 {
		if d >= h.max/2 {
			return h.max
		}
		d *= 2
	}
	return min(d, h.max)
}

// recordLocked feeds an attempt's result on e to passive health.
func (p *Pool) recordLocked(e *Endpoint, r Result, now time.Time) {
	s := &e.st
	switch {
	case r == ResultIgnore:
		return
	case s.ejected(now):
		// An attempt begun before the ejection: the endpoint is
		// already out, and its return starts with a clean count.
		return
	case r == ResultOK:
		s.failures = 0
		s.ejections = 0
		return
	}
	s.failures++
	if s.failures < p.passive.failures || !p.mayEjectLocked(now) {
		// Over the cap the count stays high, so the endpoint is
		// ejected on its next failure once the cap allows.
		return
	}
	s.failures = 0
	s.ejections++
	s.ejectedUntil = now.Add(p.passive.ejection(s.ejections))
}

// mayEjectLocked reports whether one more endpoint may be ejected without
// exceeding max_ejected_percent of the pool.
func (p *Pool) mayEjectLocked(now time.Time) bool {
	ejected := 0
	for _, e := range p.endpoints {
		if e.st.ejected(now) {
			ejected++
		}
	}
	return ejected+1 <= len(p.endpoints)*p.passive.maxPercent/100
}

// EndpointStatus is a snapshot of one endpoint, for metrics and the admin
// API.
type EndpointStatus struct {
	Host                string
	Weight              int
	Outstanding         int       // attempts in flight
	Ejected             bool      // kept out by passive health
	EjectedUntil        time.Time // when the ejection ends; zero if not ejected
	Healthy             bool      // by active health; true without active checks
	ConsecutiveFailures int       // failed attempts in a row, for passive health
}

// Endpoints returns a snapshot of the pool's endpoints, in configuration
// order.
func (p *Pool) Endpoints() []EndpointStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	out := make([]EndpointStatus, len(p.endpoints))
	for i, e := range p.endpoints {
		out[i] = EndpointStatus{
			Host:                e.Host,
			Weight:              e.Weight,
			Outstanding:         e.st.outstanding,
			Ejected:             e.st.ejected(now),
			Healthy:             !e.st.unhealthy,
			ConsecutiveFailures: e.st.failures,
		}
		if out[i].Ejected {
			out[i].EjectedUntil = e.st.ejectedUntil
		}
	}
	return out
}
