package config

import (
	"fmt"
	"math"
	"regexp"
	"strings"
)

var poolNameRE = regexp.MustCompile(`^[a-z0-9_-]+$`)

func (v *validator) pools() *Error {
	if len(v.c.Pools) == 0 {
		return v.errf("pools", "at least one pool is required")
	}
	seen := map[string]string{} // name → field that declared it
	for i := range v.c.Pools {
		field := fmt.Sprintf("pools[%d]", i)
		p := &v.c.Pools[i]
		if e := v.poolName(field+".name", p.Name, seen); e != nil {
			return e
		}
		if e := v.pool(field, p); e != nil {
			return e
		}
	}
	return nil
}

func (v *validator) poolName(field, name string, seen map[string]string) *Error {
	switch {
	case name == "":
		return v.errf(field, "name is required")
	case !poolNameRE.MatchString(name):
		return v.errf(field, "invalid pool name %q: use only a-z, 0-9, '_' and '-'", name)
	case seen[name] != "":
		return v.errf(field, "duplicate pool name %q (also %s)", name, v.name(seen[name]))
	}
	seen[name] = field
	return nil
}

func (v *validator) pool(field string, p *Pool) *Error {
	switch p.Protocol {
	case ProtoHTTP1, ProtoH2C, ProtoH2, ProtoAuto:
	default:
		return v.errf(field+".protocol", "unknown protocol %q (want http1, h2c, h2 or auto)", p.Protocol)
	}
	if p.MaxIdlePerEndpoint < 0 {
		return v.errf(field+".max_idle_per_endpoint", "must not be negative, got %d", p.MaxIdlePerEndpoint)
	}
	if len(p.Endpoints) == 0 {
		return v.errf(field+".endpoints", "at least one endpoint is required")
	}
	for i := range p.Endpoints {
		if e := v.endpoint(fmt.Sprintf("%s.endpoints[%d]", field, i), p.Protocol, &p.Endpoints[i]); e != nil {
			return e
		}
	}
	if e := v.poolTLS(field+".tls", p.TLS); e != nil {
		return e
	}
	if e := v.balancing(field, p); e != nil {
		return e
	}
	if e := v.passiveHealth(field+".health.passive", &p.Health.Passive); e != nil {
		return e
	}
	return v.activeHealth(field+".health.active", p.Health.Active)
}

func (v *validator) poolTLS(field string, t *TLS) *Error {
	if t == nil {
		return nil
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return v.errf(field, "cert_file and key_file must be set together")
	}
	return v.files(field, t)
}

// balancing checks how endpoints are picked and how many requests may wait
// for one.
func (v *validator) balancing(field string, p *Pool) *Error {
	switch p.Balance {
	case BalanceRoundRobin, BalanceLeastOutstanding:
	default:
		return v.errf(field+".balance", "unknown balance %q (want round_robin or least_outstanding)", p.Balance)
	}
	if e := v.intIn(field+".max_conns_per_endpoint", p.MaxConnsPerEndpoint, 0, math.MaxInt); e != nil {
		return e
	}
	return v.intIn(field+".max_queue", p.MaxQueue, 0, math.MaxInt)
}

func (v *validator) passiveHealth(field string, h *PassiveHealth) *Error {
	if e := v.intIn(field+".consecutive_failures", h.ConsecutiveFailures, 1, math.MaxInt); e != nil {
		return e
	}
	if e := v.intIn(field+".max_ejected_percent", h.MaxEjectedPercent, 1, 100); e != nil {
		return e
	}
	return v.ordered(field+".base_ejection", field+".max_ejection", h.BaseEjection, h.MaxEjection)
}

func (v *validator) activeHealth(field string, h *ActiveHealth) *Error {
	if h == nil {
		return nil
	}
	switch {
	case h.Path == "":
		return v.errf(field+".path", "path is required")
	case !strings.HasPrefix(h.Path, "/"):
		return v.errf(field+".path", "path %q must start with \"/\"", h.Path)
	case strings.ContainsFunc(h.Path, isSpaceOrControl):
		return v.errf(field+".path", "path %q contains a space or control character", h.Path)
	}
	// A probe that may run into the next one would overlap it.
	if h.Timeout >= h.Interval {
		at := v.written(field+".timeout", field+".interval")
		return v.errf(at, "timeout %s must be less than interval %s", v.show(field+".timeout", h.Timeout), v.show(field+".interval", h.Interval))
	}
	if e := v.intIn(field+".healthy_threshold", h.HealthyThreshold, 1, math.MaxInt); e != nil {
		return e
	}
	return v.intIn(field+".unhealthy_threshold", h.UnhealthyThreshold, 1, math.MaxInt)
}

// endpoint checks one endpoint against its pool's protocol and resolves its
// Scheme and Host.
func (v *validator) endpoint(field, protocol string, ep *Endpoint) *Error {
	scheme, host, err := parseEndpoint(ep.URL)
	if err != nil {
		return v.errf(field+".url", "%v", err)
	}
	// h2c and h2 name how to reach the upstream; a mismatched scheme would
	// silently fall back to a different protocol or fail at the first request.
	if want := map[string]string{ProtoH2C: "http", ProtoH2: "https"}[protocol]; want != "" && scheme != want {
		return v.errf(field+".url", "protocol %s needs %s:// endpoints, got %q", protocol, want, ep.URL)
	}
	if ep.Weight < 1 || ep.Weight > 1000 {
		return v.errf(field+".weight", "must be between 0 and 1000, got %d", ep.Weight)
	}
	ep.Scheme, ep.Host = scheme, host
	return nil
}
