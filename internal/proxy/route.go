package proxy

import (
	"net"
	"net/netip"
	"path"
	"reflect"
	"strings"
	"time"

	"github.com/switchboard-proxy/switchboard/hangup"
	"github.com/switchboard-proxy/switchboard/internal/attempt"
	"github.com/switchboard-proxy/switchboard/internal/config"
	"github.com/switchboard-proxy/switchboard/internal/metrics"
	"github.com/switchboard-proxy/switchboard/internal/upstream"
)

// route is a resolved config.Route.
type route struct {
	name        string
	host        string // lower case; "" matches any host
	wildcard    bool   // host is a suffix like ".example.com"
	prefix      string
	pool        *upstream.Pool
	connect     time.Duration
	respHeader  time.Duration
	idleBody    time.Duration
	total       time.Duration
	totalErr    error // the cause a total timeout cancels with, made once
	ignoreAbort bool
	maxBody     int64
	retry       *attempt.Policy // nil: the route never retries
	perTry      time.Duration
	bufferBody  int64         // request body bytes kept for a replay
	hedge       time.Duration // send a second attempt after this long; 0: never
	h2Pool      bool          // the pool speaks only HTTP/2, so no Upgrade tunnels
	async       bool          // mode async: store the request, answer 202, deliver later
	fallback    bool          // mode fallback: try now; store the request when the upstream fails before answering
	queueStatus []int         // a fallback route's final upstream statuses that store the request (retry_on_status)
	maxAge      time.Duration // a stored request's deadline after its arrival
	delivery    *attempt.Policy
	callbackURL string // notified when a delivery ends; "" for none
}

// table is one configuration's routing state. It is immutable once built;
// a reload builds a new table and swaps it in, so requests in flight finish
// on the table they started with.
type table struct {
	routes  []*route
	pools   map[string]*upstream.Pool
	trusted []netip.Prefix
	cfg     *config.Config
}

// newTable resolves cfg. Pools whose configuration is unchanged are taken
// over from prev, so a reload keeps their warm connections.
func newTable(cfg *config.Config, prev *table) (*table, error) {
	t := &table{pools: make(map[string]*upstream.Pool), trusted: cfg.TrustedNets, cfg: cfg}
	for i := range cfg.Pools {
		pc := &cfg.Pools[i]
		if p := prev.samePool(pc); p != nil {
			t.pools[pc.Name] = p
			continue
		}
		p, err := upstream.NewPool(pc)
		if err != nil {
			t.retire(prev) // close the pools made so far
			return nil, err
		}
		t.pools[pc.Name] = p
	}
	for i := range cfg.Routes {
		rc := &cfg.Routes[i]
		host, wild := hostPattern(rc.Match.Host)
		pc := cfg.Pool(rc.Pool)
		t.routes = append(t.routes, &route{
			name:        rc.Name,
			host:        host,
			wildcard:    wild,
			prefix:      rc.Match.PathPrefix,
			pool:        t.pools[rc.Pool],
			connect:     rc.Timeouts.Connect.D(),
			respHeader:  rc.Timeouts.ResponseHeader.D(),
			idleBody:    rc.Timeouts.IdleBody.D(),
			total:       rc.Timeouts.Total.D(),
			totalErr:    &hangup.TimeoutError{After: rc.Timeouts.Total.D()},
			ignoreAbort: rc.IgnoreClientAbort,
			maxBody:     int64(rc.MaxRequestBody),
			h2Pool:      pc != nil && (pc.Protocol == "h2" || pc.Protocol == "h2c"),
			retry:       retryPolicy(&rc.Retries),
			perTry:      rc.Retries.PerTryTimeout.D(),
			bufferBody:  int64(rc.Retries.BufferBody),
			hedge:       rc.Hedge.Delay.D(),
			async:       rc.Mode == config.ModeAsync,
			fallback:    rc.Mode == config.ModeFallback,
			queueStatus: rc.Retries.RetryOnStatus,
			maxAge:      rc.Queue.MaxAge.D(),
			delivery:    deliveryPolicy(rc),
			callbackURL: rc.Queue.CallbackURL,
		})
	}
	return t, nil
}

// samePool returns prev's pool for pc if its configuration did not change.
func (t *table) samePool(pc *config.Pool) *upstream.Pool {
	if t == nil {
		return nil
	}
	old := t.cfg.Pool(pc.Name)
	if old == nil || !samePoolConfig(old, pc) {
		return nil
	}
	return t.pools[pc.Name]
}

// start starts the active health checks of t's pools; pools taken over
// from an earlier table are running already.
func (t *table) start() {
	for _, p := range t.pools {
		p.Start()
	}
}

// retire closes the idle connections of t's pools that next no longer
// uses. Connections still carrying requests finish them and then expire by
// the pool's idle timeout.
func (t *table) retire(next *table) {
	if t == nil {
		return
	}
	for name, p := range t.pools {
		if next == nil || next.pools[name] != p {
			p.Close()
		}
	}
}

// retryPolicy builds a route's retry policy; nil when it never retries.
func retryPolicy(rc *config.Retries) *attempt.Policy {
	if rc.MaxAttempts <= 1 {
		return nil
	}
	return &attempt.Policy{
		MaxAttempts:   rc.MaxAttempts,
		RetryOnStatus: rc.RetryOnStatus,
		BackoffBase:   rc.BackoffBase.D(),
		BackoffMax:    rc.BackoffMax.D(),
		RetryAfterMax: rc.RetryAfterMax.D(),
		Budget:        attempt.NewBudget(rc.Budget.Ratio, rc.Budget.MinPerSecond, nil),
	}
}

func hostPattern(h string) (string, bool) {
	h = strings.ToLower(h)
	if rest, ok := strings.CutPrefix(h, "*"); ok {
		return rest, true
	}
	return h, false
}

// match returns the first route whose host and path prefix match, or nil.
func (t *table) match(host, path string) *route {
	host = normalHost(host)
	for _, r := range t.routes {
		if r.matchHost(host) && strings.HasPrefix(path, r.prefix) {
			return r
		}
	}
	return nil
}

func (r *route) matchHost(host string) bool {
	switch {
	case r.host == "":
		return true
	case r.wildcard:
		return len(host) > len(r.host) && strings.HasSuffix(host, r.host)
	}
	return host == r.host
}

// normalHost lower-cases host and drops a port, IPv6 brackets and a
// trailing dot.
func normalHost(host string) string {
	// Without a colon there is neither a port nor an IPv6 literal, and
	// SplitHostPort would only make an error to say so.
	if strings.Contains(host, ":") {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		} else if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
			host = host[1 : len(host)-1]
		}
	}
	host = strings.TrimSuffix(host, ".")
	for i := 0; i < len(host); i++ {
		if c := host[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(host)
		}
	}
	return host
}

func samePoolConfig(a, b *config.Pool) bool { return reflect.DeepEqual(a, b) }

// cleanPath removes dot segments ("/./", "/../") and empty segments from a
// request path, as nginx does before matching locations, so that
// "/public/../admin" cannot match the "/public" route and then reach
// "/admin" upstream. A trailing slash is kept. Paths without dots or double
// slashes are returned as they are, without allocating.
func cleanPath(p string) string {
	if p == "" || p[0] != '/' || !strings.Contains(p, "/.") && !strings.Contains(p, "//") {
		return p
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// endpointStates lists the endpoints of the pools in force, for metrics.
func (h *Handler) endpointStates() []metrics.EndpointState {
	t := h.table.Load()
	var out []metrics.EndpointState
	for name, p := range t.pools {
		for _, e := range p.Endpoints() {
			out = append(out, metrics.EndpointState{Pool: name, Endpoint: e.Host,
				Outstanding: e.Outstanding, Ejected: e.Ejected, Healthy: e.Healthy})
		}
	}
	return out
}
