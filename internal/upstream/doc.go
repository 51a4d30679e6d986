// Package upstream holds the pools of upstream endpoints switchboard proxies
// to: picking an endpoint, dialing it, and the HTTP transport that carries
// requests to it.
//
// Each attempt leases an endpoint ([Pool.Acquire], [Lease.Release]): the
// pool balances load (smooth weighted round robin or power of two choices),
// caps attempts in flight per endpoint with a bounded first-come queue, and
// keeps failing endpoints out, passively (ejection after failures in a row,
// growing with each ejection) and actively (HTTP probes, [Pool.Start]).
//
// Every connection a pool dials is tracked: the time it was closed is
// recorded, so the proxy can measure how fast a caller's hang-up reached the
// upstream (rule R1), and a dial made for a request is abandoned the moment
// that request's caller goes away, although net/http detaches dials from the
// request context (see [WithDialControl]).
package upstream
