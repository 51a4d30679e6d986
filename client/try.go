package client

import (
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"time"

	"github.com/switchboard-proxy/switchboard/hangup"
)

// try is one attempt. The base transport calls its trace hooks on its own
// goroutines and its per-try timer fires on another; each attempt has its
// own try, so a late hook of a finished attempt cannot touch the next one.
type try struct {
	n     int
	start time.Time
	ctx   context.Context
	// cancel ends ctx; nil when the attempt has no per-try timeout and
	// runs in the caller's context.
	cancel context.CancelCauseFunc
	timer  *time.Timer // the per-try timeout; nil without one
	trace  httptrace.ClientTrace

	phase   atomic.Uint32 // hangup.Phase
	conns   atomic.Int32  // connections handed to the attempt
	conn    atomic.Pointer[countingConn]
	written atomic.Int64 // bytes conn had written when it was handed over
	h2      atomic.Bool  // the connection speaks HTTP/2
}

// newTry starts attempt n of x: it derives the attempt's context from the
// caller's, arming the per-try timeout if there is one.
func (x *exchange) newTry(n int, perTry time.Duration) *try {
	tr := &x.first
	if n > 1 {
		tr = new(try)
	}
	tr.n, tr.start, tr.ctx = n, time.Now(), x.ctx
	tr.setPhase(hangup.Connect)
	if perTry > 0 {
		tr.ctx, tr.cancel = context.WithCancelCause(x.ctx)
		tr.timer = time.AfterFunc(perTry, func() {
			tr.cancel(&hangup.TimeoutError{Phase: tr.getPhase(), After: perTry})
		})
	}
	return tr
}

func (tr *try) setPhase(p hangup.Phase) { tr.phase.Store(uint32(p)) }
func (tr *try) getPhase() hangup.Phase  { return hangup.Phase(tr.phase.Load()) }

// request builds the attempt's request: a shallow copy of the caller's with
// the attempt's context, headers and body.
func (tr *try) request(x *exchange, rc io.ReadCloser) *http.Request {
	tr.trace.GotConn = tr.gotConn
	if rc == nil || rc == http.NoBody {
		// Without a body the headers are the whole request: the server
		// may act on it before WroteRequest runs.
		tr.trace.WroteHeaders = tr.wroteHeaders
	} else {
		tr.trace.WroteRequest = tr.wroteRequest
	}
	out := x.req.WithContext(httptrace.WithClientTrace(tr.ctx, &tr.trace))
	out.Header = x.header
	out.Body, out.ContentLength = rc, x.body.length
	out.GetBody = x.body.get
	return out
}

// gotConn runs when the base transport hands the attempt a connection.
func (tr *try) gotConn(info httptrace.GotConnInfo) {
	if c := countingFrom(info.Conn); c != nil {
		tr.written.Store(c.written.Load())
		tr.conn.Store(c)
	}
	tr.h2.Store(isH2(info.Conn))
	tr.conns.Add(1)
	tr.setPhase(hangup.SendRequest)
}

// wroteHeaders runs once a bodyless request's headers are written.
func (tr *try) wroteHeaders() {
	tr.phase.CompareAndSwap(uint32(hangup.SendRequest), uint32(hangup.AwaitHeaders))
}

// wroteRequest runs once the whole request is written, or failed to be.
func (tr *try) wroteRequest(info httptrace.WroteRequestInfo) {
	if info.Err == nil {
		tr.setPhase(hangup.AwaitHeaders)
	}
}

// headersIn stops the per-try timeout now that the base transport has
// answered. A timeout that fired just before the answer came wins: the
// attempt's context is gone, so its response could not be read.
func (tr *try) headersIn(res *http.Response, err error) (*http.Response, error) {
	if tr.timer == nil || tr.timer.Stop() || err != nil {
		return res, err
	}
	res.Body.Close()
	return nil, context.Cause(tr.ctx)
}

// nothingWritten reports whether the failed attempt provably sent no byte of
// the request: the dial failed (typed), or — with a base transport known to
// be net/http's — no connection was ever handed over, or — with the
// Transport's own base — the HTTP/1.1 connection wrote nothing during the
// attempt.
func (tr *try) nothingWritten(kind baseKind, err error) bool {
	switch {
	case isDialError(err):
		return true
	case kind == baseOther:
		return false
	case tr.conns.Load() == 0:
		return true
	case kind != baseOwn || tr.h2.Load():
		return false
	}
	c := tr.conn.Load()
	return c != nil && c.written.Load() == tr.written.Load()
}

// connReplays counts the connections beyond the first that the base
// transport used for this attempt.
func (tr *try) connReplays() int { return max(int(tr.conns.Load())-1, 0) }

// end releases the attempt's context once its response is dealt with.
func (tr *try) end() {
	if tr.cancel != nil {
		tr.timer.Stop()
		tr.cancel(nil)
	}
}
