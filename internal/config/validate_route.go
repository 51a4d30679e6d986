package config

import (
	"fmt"
	"strings"
)

func (v *validator) routes() *Error {
	if len(v.c.Routes) == 0 {
		return v.errf("routes", "at least one route is required")
	}
	seen := map[string]string{} // name → field that declared it
	for i := range v.c.Routes {
		field := fmt.Sprintf("routes[%d]", i)
		r := &v.c.Routes[i]
		if prev := seen[r.Name]; prev != "" {
			return v.errf(field+".name", "duplicate route name %q (also %s)", r.Name, v.name(prev))
		}
		seen[r.Name] = field + ".name"
		if e := v.route(field, r); e != nil {
			return e
		}
	}
	return nil
}

func (v *validator) route(field string, r *Route) *Error {
	switch {
	case r.Pool == "":
		return v.errf(field+".pool", "pool is required")
	case v.c.Pool(r.Pool) == nil:
		return v.errf(field+".pool", "unknown pool %q", r.Pool)
	}
	host, err := parseHostPattern(r.Match.Host)
	if err != nil {
		return v.errf(field+".match.host", "%v", err)
	}
	r.Match.Host = host
	if e := v.pathPrefix(field+".match.path_prefix", r.Match.PathPrefix); e != nil {
		return e
	}
	if r.MaxRequestBody <= 0 {
		return v.errf(field+".max_request_body", "must be greater than 0")
	}
	return v.timeouts(field+".timeouts", &r.Timeouts)
}

func (v *validator) pathPrefix(field, p string) *Error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return v.errf(field, "path_prefix %q must start with \"/\"", p)
	case strings.ContainsAny(p, "?#"):
		return v.errf(field, "path_prefix %q must not contain a query or fragment", p)
	case strings.ContainsFunc(p, isSpaceOrControl):
		return v.errf(field, "path_prefix %q contains a space or control character", p)
	}
	return nil
}

// timeouts rejects a phase timeout that Total would always cut short, since
// that setting could never take effect and is likely a typo.
func (v *validator) timeouts(field string, t *Timeouts) *Error {
	if t.Total == 0 {
		return nil
	}
	for _, p := range []struct {
		key string
		d   Duration
	}{{"connect", t.Connect}, {"response_header", t.ResponseHeader}, {"idle_body", t.IdleBody}} {
		if p.d > t.Total {
			return v.errf(field+"."+p.key, "%s %v is larger than total %v", p.key, p.d, t.Total)
		}
	}
	return nil
}
