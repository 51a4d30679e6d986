package config

import (
	"fmt"
	"regexp"
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
	if p.TLS == nil {
		return nil
	}
	if (p.TLS.CertFile == "") != (p.TLS.KeyFile == "") {
		return v.errf(field+".tls", "cert_file and key_file must be set together")
	}
	return v.files(field+".tls", p.TLS)
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
