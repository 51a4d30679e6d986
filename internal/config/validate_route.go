package config

import (
	"fmt"
	"math"
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
	if e := v.timeouts(field+".timeouts", &r.Timeouts); e != nil {
		return e
	}
	if e := v.retries(field+".retries", &r.Retries, r.Timeouts.Total); e != nil {
		return e
	}
	if e := v.mode(field, r); e != nil {
		return e
	}
	// A hedge is an extra attempt, so it counts against max_attempts; with
	// one attempt allowed it could never be sent.
	if r.Hedge.Delay > 0 && r.Retries.MaxAttempts < 2 {
		return v.errf(field+".hedge.delay", "hedging needs retries.max_attempts of at least 2 (a hedge is an extra attempt), got %d", r.Retries.MaxAttempts)
	}
	return nil
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

// retries checks a route's retry policy. BufferBody is deliberately not
// checked against max_request_body: a buffer larger than the largest body
// allowed is simply never filled, so the smaller of the two applies.
func (v *validator) retries(field string, r *Retries, total Duration) *Error {
	if e := v.intIn(field+".max_attempts", r.MaxAttempts, 1, maxAttemptsLimit); e != nil {
		return e
	}
	if total > 0 && r.PerTryTimeout > total {
		return v.errf(field+".per_try_timeout", "per_try_timeout %v is larger than timeouts.total %v", r.PerTryTimeout, total)
	}
	if e := v.retryOnStatus(field+".retry_on_status", r.RetryOnStatus); e != nil {
		return e
	}
	if e := v.ordered(field+".backoff_base", field+".backoff_max", r.BackoffBase, r.BackoffMax); e != nil {
		return e
	}
	// Written as !(in range) so NaN (".nan" in YAML) fails too.
	if b := r.Budget; !(b.Ratio > 0 && b.Ratio <= 1) {
		return v.errf(field+".budget.ratio", "must be a fraction greater than 0 and at most 1 (0.2 means 20%%), got %v", b.Ratio)
	}
	return v.intIn(field+".budget.min_per_second", r.Budget.MinPerSecond, 0, math.MaxInt)
}

func (v *validator) retryOnStatus(field string, statuses []int) *Error {
	seen := map[int]string{} // status → field that listed it
	for i, code := range statuses {
		item := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case code < minRetryStatus || code > maxRetryStatus:
			return v.errf(item, "status %d is not between %d and %d", code, minRetryStatus, maxRetryStatus)
		case seen[code] != "":
			return v.errf(item, "duplicate status %d (also %s)", code, v.name(seen[code]))
		}
		seen[code] = item
	}
	return nil
}

// mode checks a route's mode and, for a route that queues, its delivery
// settings.
func (v *validator) mode(field string, r *Route) *Error {
	switch r.Mode {
	case ModeSync:
		return nil
	case ModeAsync, ModeFallback:
	default:
		return v.errf(field+".mode", "unknown mode %q; want sync, async or fallback", r.Mode)
	}
	q := &r.Queue
	if e := v.intIn(field+".queue.max_attempts", q.MaxAttempts, 1, maxQueueAttempts); e != nil {
		return e
	}
	if e := v.ordered(field+".queue.backoff_base", field+".queue.backoff_max", q.BackoffBase, q.BackoffMax); e != nil {
		return e
	}
	if q.CallbackURL != "" {
		if err := checkCallbackURL(q.CallbackURL); err != nil {
			return v.errf(field+".queue.callback_url", "%v", err)
		}
	}
	return nil
}
