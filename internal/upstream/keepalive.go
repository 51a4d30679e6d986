package upstream

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Rule R6: an upstream that closes an idle keep-alive connection just as a
// request is sent on it makes that request fail after it was written, when
// it may no longer be replayed. Node.js servers, and many others, advertise
// their idle timeout in a "Keep-Alive: timeout=N" response header. An
// endpoint learns it from every response, and a connection that goes idle
// is retired by switchboard a margin before the upstream would close it.
// Without a hint, the pool's idle_conn_timeout (default 4s, below Node's
// 5s) applies alone.

// minRetireMargin is the least time a connection is retired before the
// upstream's advertised timeout: room for the last response's bytes to
// cross the network and for timers firing late.
const minRetireMargin = 250 * time.Millisecond

// ObserveKeepAlive learns the endpoint's idle timeout from a response's
// Keep-Alive header, if it has one.
func (e *Endpoint) ObserveKeepAlive(h http.Header) {
	v, ok := h["Keep-Alive"]
	if !ok || len(v) == 0 {
		return
	}
	d, ok := keepAliveTimeout(v[0])
	if !ok {
		return
	}
	// Stored plus one, so that an advertised "timeout=0" differs from
	// no hint at all.
	if e.keepAlive.Load() != int64(d)+1 {
		e.keepAlive.Store(int64(d) + 1)
	}
}

// KeepAlive returns the idle timeout the endpoint last advertised, and
// whether it advertised one.
func (e *Endpoint) KeepAlive() (time.Duration, bool) {
	v := e.keepAlive.Load()
	return time.Duration(v - 1), v > 0
}

// retireAfter returns how long a connection to e may stay idle before
// switchboard closes it, or 0 when e advertised no timeout. The margin is a
// tenth of the timeout, at least minRetireMargin; a timeout too short for
// any margin means the connection is not reused at all.
func (e *Endpoint) retireAfter() time.Duration {
	hint, ok := e.KeepAlive()
	if !ok {
		return 0
	}
	return max(hint-max(hint/10, minRetireMargin), time.Nanosecond)
}

// keepAliveTimeout parses the timeout parameter of a Keep-Alive header value
// such as "timeout=5, max=1000" (RFC 2068 §19.7.1.1): whole seconds.
func keepAliveTimeout(v string) (time.Duration, bool) {
	for part := range strings.SplitSeq(v, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "timeout") {
			continue
		}
		n, err := strconv.ParseUint(strings.Trim(strings.TrimSpace(val), `"`), 10, 32)
		if err != nil {
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	return 0, false
}

// Idle tells the pool that c went back to its idle list after the response
// to the request that took it as use number use (from Busy): if e advertised
// an idle timeout, c is closed before it runs out unless a request takes c
// first. The transport may hand c to the next request before Idle runs;
// then use is stale and Idle does nothing.
func (e *Endpoint) Idle(c *Conn, use int64) {
	d := e.retireAfter()
	if d <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.uses != use {
		return
	}
	if c.retire != nil {
		c.retire.Stop()
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		c.mu.Lock()
		still := c.retire == t
		c.retire = nil
		c.mu.Unlock()
		if still {
			c.Close()
		}
	})
	c.retire = t
}

// Busy tells the pool that a request took c, so it is not to be retired,
// and returns the number of this use of c.
func (c *Conn) Busy() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.uses++
	if c.retire != nil {
		c.retire.Stop()
		c.retire = nil
	}
	return c.uses
}
