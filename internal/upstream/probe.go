package upstream

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/config"
)

// activeHealth is config.ActiveHealth with defaults applied.
type activeHealth struct {
	path      string
	interval  time.Duration
	timeout   time.Duration
	healthy   int // successes in a row to mark healthy
	unhealthy int // failures in a row to mark unhealthy
}

// Active health defaults, as config applies them.
const (
	defaultProbeInterval      = 5 * time.Second
	defaultProbeTimeout       = time.Second
	defaultHealthyThreshold   = 2
	defaultUnhealthyThreshold = 3
)

// probeUserAgent names health probes in upstream logs.
const probeUserAgent = "switchboard-health"

// probeDrainLimit bounds how much of a probe's response body is read.
const probeDrainLimit = 64 << 10

func newActiveHealth(c *config.ActiveHealth) *activeHealth {
	path := c.Path
	if path == "" {
		path = "/"
	}
	return &activeHealth{
		path:      path,
		interval:  orDuration(c.Interval.D(), defaultProbeInterval),
		timeout:   orDuration(c.Timeout.D(), defaultProbeTimeout),
		healthy:   orInt(c.HealthyThreshold, defaultHealthyThreshold),
		unhealthy: orInt(c.UnhealthyThreshold, defaultUnhealthyThreshold),
	}
}

// newProbeTransport builds the transport for health probes: like the pool's
// (same protocol and TLS), but with a connection per probe. A reused idle
// connection would race the endpoint's keep-alive close (rule R6) and fail
// probes of a healthy endpoint, and a fresh connection also proves the
// endpoint still accepts.
func newProbeTransport(pc *config.Pool, tlsCfg *tls.Config) *http.Transport {
	t := newTransport(pc, newDialer(tlsCfg))
	t.DisableKeepAlives = true
	t.MaxConnsPerHost = 0
	return t
}

// Start starts active health checks when the pool has them configured: each
// endpoint is probed at once and then every interval, until Close. Start is
// idempotent, and does nothing after Close.
func (p *Pool) Start() {
	p.life.Lock()
	defer p.life.Unlock()
	if p.active == nil || p.started || p.closed {
		return
	}
	p.started = true
	// The checkers live as long as the pool, not any request.
	ctx, stop := context.WithCancel(context.Background())
	p.stop = stop
	for _, e := range p.endpoints {
		p.checks.Go(func() { p.checkEndpoint(ctx, e) })
	}
}

// checkEndpoint probes e every interval until ctx ends.
func (p *Pool) checkEndpoint(ctx context.Context, e *Endpoint) {
	target := e.Scheme + "://" + e.Host + p.active.path
	tick := time.NewTicker(p.active.interval)
	defer tick.Stop()
	for {
		ok := p.probe(ctx, e, target)
		if ctx.Err() != nil {
			return // stopped mid-probe: the failure is ours, not e's
		}
		p.recordProbe(e, ok)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// probe reports whether one GET of target on e answers 2xx or 3xx within
// the probe timeout.
func (p *Pool) probe(ctx context.Context, e *Endpoint, target string) bool {
	ctx, cancel := context.WithTimeout(ctx, p.active.timeout)
	defer cancel()
	// net/http detaches dials from the request; tie this one to the probe
	// so it cannot outlive the probe or Close.
	ctx = WithDialControl(ctx, &DialControl{Abort: ctx, Timeout: p.active.timeout})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return false
	}
	req.Host = e.Host
	req.Header.Set("User-Agent", probeUserAgent)
	res, err := p.health.RoundTrip(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, probeDrainLimit))
	res.Body.Close()
	return res.StatusCode >= 200 && res.StatusCode < 400
}

// recordProbe counts a probe result and flips e's health when a threshold
// is reached.
func (p *Pool) recordProbe(e *Endpoint, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := &e.st
	if ok {
		s.probeOK++
		s.probeFail = 0
	} else {
		s.probeFail++
		s.probeOK = 0
	}
	switch {
	case s.unhealthy && s.probeOK >= p.active.healthy:
		s.unhealthy = false
	case !s.unhealthy && s.probeFail >= p.active.unhealthy:
		s.unhealthy = true
	default:
		return
	}
	// Waiters may now have a slot, or nothing left to wait for.
	p.dispatchLocked(p.now())
}
