package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/cancelctx"
)

// h1Transport is the HTTP/1.1 transport of an http1 pool. Unlike net/http's
// Transport, which runs a read loop and a write loop goroutine for every
// connection and hands each request between them, it makes each exchange
// on the calling goroutine: RoundTrip takes an idle connection or dials
// one, writes the request, reads the response head and returns; the
// response body reads on from the connection and, at its end, gives the
// connection back to the idle list. Only a request body goes out from a
// goroutine of its own, for the exchange alone, so that an upstream that
// answers before it has read the body is heard (see bodyWriter). Nothing
// runs between requests except the idle timers.
//
// Cancelling a request's context closes its connection at once, whatever
// the exchange is doing (rule R1), and RoundTrip or the body's Read then
// returns an error wrapping the context's cause.
//
// A connection the upstream closed while it was idle is found before reuse
// (alive) and dropped. A request that fails on a reused connection before
// anything of it was written, or (when it is safe to repeat) before any
// response byte came, is sent again on another connection as net/http
// does (rule R6), calling httptrace's GotConn again.
//
// It is safe for concurrent use.
type h1Transport struct {
	dialer      *dialer
	maxIdle     int           // idle connections kept per endpoint
	idleTimeout time.Duration // idle connections older than this are closed; 0 = never

	mu     sync.Mutex // guards idle and closed, and every idle connection
	idle   map[connKey]*idleList
	closed bool // connections are no longer kept idle
}

// connKey names an endpoint.
type connKey struct {
	scheme string // "http" or "https"
	addr   string // host:port
}

// idleList is one endpoint's idle connections. Lists are never removed:
// a pool has a fixed set of endpoints.
type idleList struct {
	conns []*h1Conn   // oldest first; the newest is reused first
	timer *time.Timer // closes connections idle past idleTimeout; nil when not armed
	gen   int         // counts timers armed, so a stopped timer that fired anyway does nothing
}

// maxConnReplays bounds how many times one RoundTrip sends its request
// again after a reused connection failed.
const maxConnReplays = 4

func newH1Transport(d *dialer, maxIdle int, idleTimeout time.Duration) *h1Transport {
	if maxIdle <= 0 {
		maxIdle = http.DefaultMaxIdleConnsPerHost // as net/http's Transport
	}
	return &h1Transport{dialer: d, maxIdle: maxIdle, idleTimeout: idleTimeout, idle: map[connKey]*idleList{}}
}

// RoundTrip sends req and returns the response head; see h1Transport. It
// always closes req's body.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	key, err := requestKey(req)
	if err != nil {
		closeRequestBody(req)
		return nil, err
	}
	ctx := req.Context()
	if ctx.Err() != nil {
		closeRequestBody(req)
		return nil, cancelctx.Cause(ctx)
	}
	r, err := newH1Request(req, responseMemFrom(ctx))
	if err != nil {
		closeRequestBody(req)
		return nil, err
	}
	defer r.release()
	trace := traceFrom(ctx)
	for replays := 0; ; replays++ {
		pc, reused, idleFor, err := t.getConn(ctx, key)
		if err != nil {
			r.closeBody()
			return nil, err
		}
		if trace != nil && trace.GotConn != nil {
			trace.GotConn(httptrace.GotConnInfo{Conn: pc.conn, Reused: reused, WasIdle: reused, IdleTime: idleFor})
		}
		res, f := pc.send(ctx, r, trace)
		if f == nil {
			r.closeBody()
			return res, nil
		}
		if replays >= maxConnReplays || !r.shouldReplay(reused, f) || !r.rewind() {
			r.closeBody()
			return nil, f.err
		}
	}
}

// shouldReplay reports whether a request that failed with f on a
// connection may be sent again, transparently, on another: net/http's
// Transport rules (its shouldRetryRequest). Only a reused connection
// qualifies (a fresh one failing says something about the request or the
// upstream), and only before any response byte. Then the request may go
// again if none of it was written, or if it is safe to repeat (see
// isReplayable) and it was all written but never answered: the upstream
// closed the connection just as the request went out (rule R6).
func (r *h1Request) shouldReplay(reused bool, f *failure) bool {
	var ce *canceledError
	switch {
	case !reused || f.gotByte || errors.As(f.err, &ce):
		return false
	case !f.written:
		var bre *bodyReadError
		return !errors.As(f.err, &bre)
	}
	return r.replayable && f.awaiting
}

// requestKey returns the endpoint req goes to.
func requestKey(req *http.Request) (connKey, error) {
	u := req.URL
	if u == nil {
		return connKey{}, errors.New("request has no URL")
	}
	if u.Host == "" {
		return connKey{}, errors.New("request URL has no host")
	}
	key := connKey{scheme: u.Scheme, addr: u.Host}
	var port string
	switch u.Scheme {
	case "http":
		port = "80"
	case "https":
		port = "443"
	default:
		return connKey{}, fmt.Errorf("unsupported protocol scheme %q", u.Scheme)
	}
	if !hasPort(u.Host) {
		key.addr = net.JoinHostPort(strings.Trim(u.Host, "[]"), port)
	}
	return key, nil
}

// hasPort reports whether host:port has its port.
func hasPort(h string) bool {
	i := strings.LastIndexByte(h, ':')
	return i >= 0 && i > strings.LastIndexByte(h, ']')
}

func closeRequestBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// getConn returns a live idle connection to key's endpoint, the one idle
// the shortest time, or dials a new one. It reports whether the connection
// was reused, and how long it was idle.
func (t *h1Transport) getConn(ctx context.Context, key connKey) (*h1Conn, bool, time.Duration, error) {
	for {
		pc := t.takeIdle(key)
		if pc == nil {
			break
		}
		// The upstream may have closed it while it idled: with no
		// goroutine reading, only a look at the socket tells.
		if pc.alive() {
			return pc, true, time.Since(pc.idleAt), nil
		}
		pc.close()
	}
	pc, err := t.dial(ctx, key)
	return pc, false, 0, err
}

// dial connects to key's endpoint through the pool's dialer, which honours
// the request's DialControl and the connect timeout.
func (t *h1Transport) dial(ctx context.Context, key connKey) (*h1Conn, error) {
	var c net.Conn
	var err error
	if key.scheme == "https" {
		c, err = t.dialer.DialTLSContext(ctx, "tcp", key.addr)
	} else {
		c, err = t.dialer.DialContext(ctx, "tcp", key.addr)
	}
	if err != nil {
		return nil, err
	}
	return newH1Conn(t, key, c), nil
}

// takeIdle takes the newest idle connection to key's endpoint, skipping
// (and closing) those closed meanwhile, by the keep-alive retirement of
// rule R6, or idle too long. It returns nil if there is none.
func (t *h1Transport) takeIdle(key connKey) *h1Conn {
	var stale []*h1Conn
	defer func() {
		for _, pc := range stale {
			pc.close()
		}
	}()
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.idle[key]
	if l == nil {
		return nil
	}
	var now time.Time
	if t.idleTimeout > 0 {
		now = time.Now()
	}
	for n := len(l.conns); n > 0; n = len(l.conns) {
		pc := l.conns[n-1]
		l.conns[n-1] = nil
		l.conns = l.conns[:n-1]
		select {
		case <-pc.raw.Closed():
			continue
		default:
		}
		if t.idleTimeout > 0 && now.Sub(pc.idleAt) >= t.idleTimeout {
			// The rest are older still.
			stale = append(stale, pc)
			stale = append(stale, l.conns...)
			clear(l.conns)
			l.conns = l.conns[:0]
			return nil
		}
		return pc
	}
	return nil
}

// putIdle adds pc to its endpoint's idle list, making room by closing the
// oldest if the list is full. It reports false, and keeps nothing, once the
// transport is closed.
func (t *h1Transport) putIdle(pc *h1Conn) bool {
	var evicted *h1Conn
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return false
	}
	l := t.idle[pc.key]
	if l == nil {
		l = &idleList{}
		t.idle[pc.key] = l
	}
	if len(l.conns) >= t.maxIdle {
		evicted = l.conns[0]
		copy(l.conns, l.conns[1:])
		l.conns[len(l.conns)-1] = nil
		l.conns = l.conns[:len(l.conns)-1]
	}
	pc.idleAt = time.Now()
	l.conns = append(l.conns, pc)
	if t.idleTimeout > 0 && l.timer == nil {
		t.armLocked(l, t.idleTimeout)
	}
	t.mu.Unlock()
	if evicted != nil {
		evicted.close()
	}
	return true
}

// armLocked arms l's timer to expire connections in d.
func (t *h1Transport) armLocked(l *idleList, d time.Duration) {
	l.gen++
	gen := l.gen
	l.timer = time.AfterFunc(d, func() { t.expireIdle(l, gen) })
}

// expireIdle closes l's connections idle for idleTimeout or longer, and
// arms the timer again for the oldest left. The timer armed as gen calls
// it.
func (t *h1Transport) expireIdle(l *idleList, gen int) {
	t.mu.Lock()
	if l.gen != gen || l.timer == nil {
		t.mu.Unlock()
		return // stopped, or superseded
	}
	now := time.Now()
	n := 0
	for n < len(l.conns) && now.Sub(l.conns[n].idleAt) >= t.idleTimeout {
		n++
	}
	stale := append([]*h1Conn(nil), l.conns[:n]...)
	rest := copy(l.conns, l.conns[n:])
	clear(l.conns[rest:])
	l.conns = l.conns[:rest]
	l.timer = nil
	if rest > 0 {
		t.armLocked(l, t.idleTimeout-now.Sub(l.conns[0].idleAt))
	}
	t.mu.Unlock()
	for _, pc := range stale {
		pc.close()
	}
}

// CloseIdleConnections closes the idle connections. Connections in use
// stay open and may become idle again.
func (t *h1Transport) CloseIdleConnections() { t.closeIdle(false) }

// Close closes the idle connections, and every connection in use once its
// exchange ends.
func (t *h1Transport) Close() { t.closeIdle(true) }

func (t *h1Transport) closeIdle(forever bool) {
	var all []*h1Conn
	t.mu.Lock()
	if forever {
		t.closed = true
	}
	for _, l := range t.idle {
		all = append(all, l.conns...)
		clear(l.conns)
		l.conns = l.conns[:0]
		if l.timer != nil {
			l.timer.Stop()
			l.timer = nil
		}
	}
	t.mu.Unlock()
	for _, pc := range all {
		pc.close()
	}
}
