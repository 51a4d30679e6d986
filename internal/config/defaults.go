package config

import (
	"fmt"
	"time"
)

// applyDefaults replaces every zero-valued field that has a default. It runs
// before validation so validation sees effective values.
func (c *Config) applyDefaults() {
	orString(&c.Admin.Address, defaultAdminAddress)
	orString(&c.AccessLog.Path, defaultAccessLog)
	orDuration(&c.DrainTimeout, defaultDrainTimeout)
	for i := range c.Listeners {
		c.Listeners[i].applyDefaults()
	}
	for i := range c.Pools {
		c.Pools[i].applyDefaults()
	}
	for i := range c.Routes {
		c.Routes[i].applyDefaults(i)
	}
}

func (l *Listener) applyDefaults() {
	if l.H2C == nil {
		// TLS listeners get HTTP/2 from ALPN; prior knowledge is for cleartext.
		l.H2C = new(l.TLS == nil)
	}
	orDuration(&l.ReadHeaderTimeout, defaultReadHeaderTimeout)
	orDuration(&l.IdleTimeout, defaultIdleTimeout)
	orSize(&l.MaxHeaderBytes, defaultMaxHeaderBytes)
}

func (p *Pool) applyDefaults() {
	orString(&p.Protocol, ProtoHTTP1)
	if p.MaxIdlePerEndpoint == 0 {
		p.MaxIdlePerEndpoint = defaultMaxIdle
	}
	orDuration(&p.IdleConnTimeout, defaultIdleConnTimeout)
	for i := range p.Endpoints {
		if p.Endpoints[i].Weight == 0 {
			p.Endpoints[i].Weight = 1
		}
	}
}

func (r *Route) applyDefaults(index int) {
	orString(&r.Name, fmt.Sprintf("route%d", index))
	orString(&r.Match.PathPrefix, "/")
	orSize(&r.MaxRequestBody, defaultMaxRequestBody)
	r.Timeouts.applyDefaults()
}

// applyDefaults caps each defaulted phase timeout at Total, so setting only
// a short total is valid; an explicit phase timeout is left for validation.
func (t *Timeouts) applyDefaults() {
	orDuration(&t.Connect, capAt(defaultConnect, t.Total))
	orDuration(&t.ResponseHeader, capAt(defaultResponseHeader, t.Total))
	orDuration(&t.IdleBody, capAt(defaultIdleBody, t.Total))
}

func capAt(d time.Duration, total Duration) time.Duration {
	if total > 0 && total.D() < d {
		return total.D()
	}
	return d
}

func orString(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

func orDuration(d *Duration, def time.Duration) {
	if *d == 0 {
		*d = Duration(def)
	}
}

func orSize(s *Size, def int64) {
	if *s == 0 {
		*s = Size(def)
	}
}
