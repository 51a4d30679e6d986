package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-proxy/switchboard/hangup"
	"github.com/switchboard-proxy/switchboard/internal/attempt"
	"github.com/switchboard-proxy/switchboard/internal/cancelctx"
	"github.com/switchboard-proxy/switchboard/internal/h1"
	"github.com/switchboard-proxy/switchboard/internal/upstream"
)

// serve makes attempts at the upstream until one gives a response worth
// relaying, or a failure that another attempt would not mend or that may not
// be retried; then it relays the response or ends the exchange.
func (ex *exchange) serve(t *table) {
	ex.prepare()
	defer ex.release()
	for {
		tr := ex.newTry()
		if tr == nil {
			return
		}
		res, err := ex.send(tr, t)
		tr = ex.try // a hedged attempt may have won
		var v attempt.Verdict
		if err != nil {
			f := ex.classify(err)
			if ex.route.retry != nil && f.Side != hangup.Caller {
				v = ex.loop.After(attempt.Result{Failure: &f, Request: ex.retryInfo()})
			}
			if !v.Retry {
				ex.refused(v.Reason)
				ex.end(f)
				return
			}
			ex.logTry(0, &f, v.Reason)
			tr.result = failureResult(f)
			tr.cancel(f.Err)
			ex.closeUpstreamConn()
		} else {
			tr.result = statusResult(res.StatusCode)
			tr.endpoint.ObserveKeepAlive(res.Header)
			if tr.idled.Load() {
				// A bodyless response's connection went idle before
				// RoundTrip returned, before the hint was learned:
				// arm its retirement again (a no-op if it was taken).
				tr.putIdleConn(nil)
			}
			if ex.route.retry != nil {
				v = ex.loop.After(attempt.Result{Status: res.StatusCode, RetryAfter: res.Header.Get("Retry-After"), Request: ex.retryInfo()})
			}
			if !v.Retry {
				ex.refused(v.Reason)
				ex.res = res
				ex.answer(res)
				return
			}
			ex.logTry(res.StatusCode, nil, v.Reason)
			res.Body.Close()
			tr.cancel(nil)
		}
		ex.h.metrics.Retry(ex.route.name, v.Reason)
		tr.stop() // the endpoint's slot and health signal are not held through the wait
		if !ex.backoff(v.Delay) {
			return
		}
	}
}

// answer relays res, the final response, or stores the request when its
// status says so, and closes res's body.
func (ex *exchange) answer(res *http.Response) {
	defer res.Body.Close()
	if ex.queuesStatus(res.StatusCode) && ex.fallBackStatus(res) {
		return
	}
	ex.relay(res)
}

// send makes the attempt tr through the pool's RoundTripper (its own
// HTTP/1.1 transport, or net/http's for HTTP/2) and returns its response.
// On a route with hedging, an idempotent bodyless request that has no
// response header after hedge.delay gets a second attempt on another
// endpoint; the first response wins, the other attempt is aborted at once,
// and ex.try is the winner.
func (ex *exchange) send(tr *try, t *table) (*http.Response, error) {
	if !ex.hedgeable() {
		res, err := ex.route.pool.RoundTripper.RoundTrip(tr.request(ex, t, false))
		tr.headersIn()
		return res, err
	}
	ex.hedged = true // its goroutines hold ex
	results := make(chan sent, 2)
	run := func(tr *try) {
		tr.foreign = true // a goroutine of its own sends it
		out := tr.request(ex, t, false)
		go func() {
			res, err := ex.route.pool.RoundTripper.RoundTrip(out)
			tr.headersIn()
			results <- sent{tr, res, err}
		}()
	}
	run(tr)
	timer := time.NewTimer(ex.route.hedge)
	defer timer.Stop()
	var hedge *try
	pending := 1
	for {
		select {
		case r := <-results:
			pending--
			ex.try, ex.endpoint = r.tr, r.tr.endpoint
			if pending == 0 {
				return r.res, r.err
			}
			other := hedge
			if r.tr == hedge {
				other = tr
			}
			if r.err != nil {
				// This attempt failed; the other may still answer.
				f := ex.classify(r.err)
				ex.logTry(0, &f, "")
				r.tr.result = failureResult(f)
				r.tr.stop()
				ex.try, ex.endpoint, ex.tryLogged = other, other.endpoint, false
				continue
			}
			// The other attempt lost: abort it, drop what it brings.
			ex.try = other
			ex.logTry(0, nil, "")
			ex.tries[len(ex.tries)-1].Abandoned = "other_attempt_answered"
			other.cancel(errAttemptAbandoned)
			closeTryConn(other)
			go func() {
				if l := <-results; l.res != nil {
					l.res.Body.Close()
				}
				other.stop()
			}()
			ex.try, ex.endpoint, ex.tryLogged = r.tr, r.tr.endpoint, false
			return r.res, r.err
		case <-timer.C:
			if hedge != nil || pending == 0 {
				continue
			}
			lease := ex.route.pool.TryAcquire([]*upstream.Endpoint{tr.endpoint})
			if lease == nil {
				continue // no free slot: no hedge, and nothing charged
			}
			if !ex.loop.Hedge() {
				lease.Release(upstream.ResultIgnore)
				continue
			}
			hedge = ex.startTry(tries.Get().(*try), lease)
			hedge.hedge = true
			pending++
			ex.h.metrics.Retry(ex.route.name, "hedge")
			run(hedge)
		}
	}
}

// sent is one attempt's outcome from the transport.
type sent struct {
	tr  *try
	res *http.Response
	err error
}

var errAttemptAbandoned = errors.New("another attempt answered first")

// hedgeable reports whether the exchange may race a second attempt: the
// route hedges, and the request is safe to send twice and has no body.
func (ex *exchange) hedgeable() bool {
	r := ex.r
	return ex.route.hedge > 0 && ex.route.retry != nil && ex.body == nil &&
		(hangup.IdempotentMethod(r.Method) || r.Header.Get("Idempotency-Key") != "")
}

// roundTrip makes the single attempt of an Upgrade request. It returns the
// response, or nil after ending the exchange with the failure. It uses
// net/http's transport, whose handling of 101 Switching Protocols gives a
// writable body to tunnel over.
func (ex *exchange) roundTrip(out *http.Request) *http.Response {
	res, err := ex.route.pool.Transport.RoundTrip(out)
	ex.try.headersIn()
	if err != nil {
		ex.fail(err)
		return nil
	}
	ex.try.result = statusResult(res.StatusCode)
	ex.res = res
	return res
}

// backoff waits d before the next attempt. A caller who hangs up during the
// wait, or the total timeout running out, ends the exchange: it reports
// false.
func (ex *exchange) backoff(d time.Duration) bool {
	ex.phase = hangup.Backoff
	if err := attempt.Wait(ex.ctx, d); err != nil {
		ex.end(ex.classify(err))
		return false
	}
	ex.phase = hangup.PhaseNone
	return true
}

// refused records why a request was not retried, when a retry would have
// been wanted.
func (ex *exchange) refused(reason string) {
	if reason == "" {
		return
	}
	ex.noRetry = reason
	ex.h.metrics.RetryRefused(ex.route.name, reason)
}

// retryInfo tells the retry policy whether the request may be sent again.
func (ex *exchange) retryInfo() hangup.Attempt {
	r := ex.r
	return hangup.Attempt{
		Method:            r.Method,
		HasIdempotencyKey: r.Header.Get("Idempotency-Key") != "",
		BodyReplayable:    ex.body == nil || ex.replay != nil && ex.replay.replayable(),
		NothingWritten:    ex.try.nothingWritten(),
	}
}

// prepare derives the exchange's context from the caller's, arms the total
// timeout and starts the retry loop.
func (ex *exchange) prepare() {
	var parent context.Context = ex.callerCtx
	if ex.route.ignoreAbort {
		// On purpose: the route wants the upstream to finish its work
		// even when the caller leaves (ignore_client_abort).
		parent = context.WithoutCancel(parent)
	}
	ex.ctx = &ex.mem.ctx
	ex.ctx.Start(parent)
	var deadline time.Time
	if d := ex.route.total; d > 0 {
		ex.ctx.SetTimeout(d, ex.route.totalErr)
		deadline = ex.start.Add(d)
	}
	if ex.route.ignoreAbort {
		ex.stopClosing = context.AfterFunc(ex.h.closing, func() { ex.cancel(errServerClosed) })
	}
	if p := ex.route.retry; p != nil {
		ex.loop = p.Start(deadline)
	}
	r := ex.r
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		ex.body = &callerBody{rc: r.Body, limit: ex.route.maxBody}
		switch {
		case ex.fallback:
			// Kept whole, to be stored if the upstream fails.
			ex.replay = &replayBody{src: ex.body, limit: ex.fallbackLimit()}
		case ex.route.retry != nil && ex.route.bufferBody > 0:
			ex.replay = &replayBody{src: ex.body, limit: min(ex.route.bufferBody, ex.route.maxBody)}
		}
	}
}

// release frees the exchange's context.
func (ex *exchange) release() {
	if ex.try != nil {
		ex.try.stop()
	}
	ex.ctx.End()
	if ex.stopClosing != nil {
		ex.stopClosing()
	}
}

var errServerClosed = errors.New("switchboard is shutting down")

// try is one attempt at the upstream. The transport calls its hooks on its
// own goroutines (net/http's, for HTTP/2) or on the one sending (the
// pool's HTTP/1.1 transport, or a hedge's); each attempt has its own, so a
// late hook of an abandoned attempt cannot touch the next one.
//
// A try is reused for a later exchange's attempt only when nothing can
// still call into it (see recycle); tryState is what each attempt starts
// afresh, the rest is made once and re-armed.
type try struct {
	tryState
	ctx cancelctx.Ctx

	mu     sync.Mutex  // guards the timers and the tryState fields marked so
	header *time.Timer // response-header timeout
	perTry *time.Timer // per-try timeout
	idle   *time.Timer // idle-body timeout

	// The request to the upstream is built in these.
	out    *http.Request
	blank  *http.Request // a request with nothing but ctx set, to reset out from
	outURL url.URL
	outHdr http.Header
	fwd    [3]string // X-Forwarded-* values
	trace  httptrace.ClientTrace
	// resMem holds the response, when the pool's own transport reads it.
	// Every call on the response and its body is made by the exchange's
	// goroutine before the try is recycled (or by a hedge's goroutine,
	// whose try never is), as ResponseMem requires.
	resMem upstream.ResponseMem
	// leaseMem is the lease of an attempt newTry makes (a hedge's is
	// allocated), reused with the try: recycle runs only once nothing
	// can release it any more.
	leaseMem upstream.Lease

	wroteHeaders func() // tr.onWroteHeaders, for trace
}

// tryState is an attempt's own state, zero when it starts.
type tryState struct {
	dial     upstream.DialControl
	endpoint *upstream.Endpoint
	lease    *upstream.Lease // &leaseMem, or a hedge's own
	result   upstream.Result // for passive health, set once known
	hedge    bool            // sent while another attempt was still waiting
	start    time.Time
	route    *route

	phase   atomic.Uint32 // hangup.Phase
	uconn   atomic.Pointer[upstream.Conn]
	h2      atomic.Bool  // the connection speaks HTTP/2
	written atomic.Int64 // bytes uconn had written when it was assigned
	conns   atomic.Int32 // connections assigned; more than one means the transport replayed the request
	use     atomic.Int64 // which use of uconn this attempt is (upstream.Conn.Busy)
	idled   atomic.Bool  // uconn went back to the idle pool

	// wrote is closed once the transport reports the request, or a
	// bodyless request's headers, written (or failed to write). Only an
	// HTTP/2 attempt has one (made before h2 is set), for settledPhase.
	wrote       chan struct{}
	wroteClosed atomic.Bool

	// Under mu: when each timer is due (zero: not armed), and whether the
	// response header came (the timers are off for good).
	headerDue, perTryDue, idleDue time.Time
	timersOff                     bool
	foreign                       bool // net/http's transport or a hedge's goroutine had it: never reuse
}

// tries holds attempts to reuse. What a try keeps across uses is made
// here, once: func values of its methods allocate, and so do timers.
var tries = sync.Pool{New: func() any {
	tr := new(try)
	tr.header = stoppedTimer(tr.headerFired)
	tr.perTry = stoppedTimer(tr.perTryFired)
	tr.idle = stoppedTimer(tr.idleFired)
	tr.blank = new(http.Request).WithContext(&tr.ctx)
	tr.out = new(http.Request)
	tr.outHdr = make(http.Header, 16)
	tr.trace = httptrace.ClientTrace{
		GotConn:      tr.gotConn,
		WroteRequest: tr.wroteRequest,
		PutIdleConn:  tr.putIdleConn,
	}
	tr.wroteHeaders = tr.onWroteHeaders
	return tr
}}

// stoppedTimer returns a timer that runs f once armed.
func stoppedTimer(f func()) *time.Timer {
	t := time.AfterFunc(time.Hour, f)
	t.Stop()
	return t
}

// recycle gives tr back for reuse if nothing can call into it any more: it
// was sent by the pool's own HTTP/1.1 transport on the exchange's
// goroutine (else foreign is set: net/http's transport, HTTP/2 included,
// or a hedge's goroutine had it), and its context was handed to nothing
// that may keep it.
func (tr *try) recycle() {
	if tr.foreign || !tr.ctx.Reusable() {
		return
	}
	tr.tryState = tryState{}
	tries.Put(tr)
}

// cancel cancels the attempt's context with cause.
func (tr *try) cancel(cause error) { tr.ctx.Cancel(cause) }

func (tr *try) setPhase(p hangup.Phase) { tr.phase.Store(uint32(p)) }
func (tr *try) getPhase() hangup.Phase  { return hangup.Phase(tr.phase.Load()) }

// newTry starts an attempt: it takes an endpoint from the pool, waiting in
// its queue if every endpoint is busy, and arms the per-try timeout. If no
// endpoint can be had, or the caller leaves while queued, it ends the
// exchange and returns nil.
func (ex *exchange) newTry() *try {
	var avoid []*upstream.Endpoint
	if prev := ex.try; prev != nil {
		prev.stop()
		for _, l := range ex.tries {
			avoid = append(avoid, l.endpoint)
		}
	}
	ex.phase = hangup.Queued
	tr := tries.Get().(*try)
	if err := ex.route.pool.AcquireInto(ex.ctx, avoid, &tr.leaseMem); err != nil {
		tries.Put(tr) // not started: nothing else has seen it
		ex.unavailable(err)
		return nil
	}
	ex.phase = hangup.PhaseNone
	ex.startTry(tr, &tr.leaseMem)
	ex.try, ex.endpoint, ex.tryLogged = tr, tr.endpoint, false
	return tr
}

// startTry starts tr, a try fresh from tries, as an attempt on lease's
// endpoint and arms its per-try timeout.
func (ex *exchange) startTry(tr *try, lease *upstream.Lease) *try {
	tr.start, tr.route, tr.lease, tr.endpoint = time.Now(), ex.route, lease, lease.Endpoint
	tr.ctx.Start(ex.ctx)
	tr.dial = upstream.DialControl{Abort: &tr.ctx, Timeout: ex.route.connect}
	upstream.SetDialControl(&tr.ctx, &tr.dial)
	tr.setPhase(hangup.Connect)
	if d := ex.route.perTry; d > 0 {
		tr.mu.Lock()
		arm(tr.perTry, &tr.perTryDue, d)
		tr.mu.Unlock()
	}
	return tr
}

// arm arms t, one of an attempt's timers, to fire after d, and notes when
// it is due; under tr.mu.
func arm(t *time.Timer, due *time.Time, d time.Duration) {
	*due = time.Now().Add(d)
	t.Reset(d)
}

// perTryFired ends the attempt when the per-try timeout passes before the
// response header came.
func (tr *try) perTryFired() {
	if r := tr.due(&tr.perTryDue, true); r != nil {
		tr.cancel(&hangup.TimeoutError{Phase: tr.getPhase(), After: r.perTry})
	}
}

// due reports, by returning the attempt's route, whether the timer whose
// due time is *at has come due; a timer of the response header
// (headerTimer) no longer counts once it came. A stale firing (Stop cannot
// stop a callback that already started, and the timers are re-armed for
// later attempts) finds its timer not due and gets nil.
func (tr *try) due(at *time.Time, headerTimer bool) *route {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if headerTimer && tr.timersOff || at.IsZero() || time.Now().Before(*at) {
		return nil
	}
	return tr.route
}

// armIdle (re)arms the idle-body timeout: the response body must go on
// within d.
func (tr *try) armIdle(d time.Duration) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	arm(tr.idle, &tr.idleDue, d)
}

// stopIdle stops the idle-body timeout.
func (tr *try) stopIdle() {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.idleDue = time.Time{}
	tr.idle.Stop()
}

// idleFired ends the attempt when its response body stalled for the
// idle-body timeout.
func (tr *try) idleFired() {
	if r := tr.due(&tr.idleDue, false); r != nil {
		tr.cancel(&hangup.TimeoutError{Phase: hangup.StreamResponse, After: r.idleBody})
	}
}

// headerFired ends the attempt when the response-header timeout passes.
func (tr *try) headerFired() {
	if r := tr.due(&tr.headerDue, true); r != nil {
		tr.cancel(&hangup.TimeoutError{Phase: hangup.AwaitHeaders, After: r.respHeader})
	}
}

// stop ends the attempt's timers and context, and gives its endpoint back
// to the pool with the attempt's result.
func (tr *try) stop() {
	tr.headersIn()
	tr.ctx.End()
	tr.lease.Release(tr.result)
}

// unavailable ends an exchange that could not get an endpoint: the caller
// left while it was queued, or the pool has none to give (all ejected or
// unhealthy, or all busy past the queue's limits), which is a 503 at once.
func (ex *exchange) unavailable(err error) {
	if ex.callerGone() && !ex.route.ignoreAbort || ex.ctx.Err() != nil {
		ex.end(ex.classify(err))
		return
	}
	ex.outcome = hangup.Outcome{Side: hangup.Proxy, Phase: hangup.Queued, Action: hangup.Answered5xx, Err: err}
	ex.proxyError = "destination_unavailable"
	msg := "no upstream endpoint available: " + err.Error()
	if ex.fallBack(ex.outcome, "error="+ex.proxyError, msg, 0) {
		return
	}
	ex.answerError(http.StatusServiceUnavailable, ex.proxyError, msg)
}

// failureResult is what a failed attempt tells the pool's passive health.
func failureResult(f attempt.Failure) upstream.Result {
	var de *hangup.DialError
	switch {
	case f.Side != hangup.Upstream:
		return upstream.ResultIgnore
	case f.Phase == hangup.Connect || f.Kind == hangup.Refused || errors.As(f.Err, &de):
		return upstream.ResultConnectFailure
	}
	return upstream.ResultReset
}

// statusResult is what a response tells the pool's passive health.
func statusResult(status int) upstream.Result {
	if status >= 500 {
		return upstream.Result5xx
	}
	return upstream.ResultOK
}

// request builds the request to send upstream on this attempt, through
// the pool's RoundTripper, or, for an Upgrade, its net/http Transport.
func (tr *try) request(ex *exchange, t *table, upgrade bool) *http.Request {
	r := ex.r
	tr.outURL = url.URL{
		Scheme:   tr.endpoint.Scheme,
		Host:     tr.endpoint.Host,
		Path:     r.URL.Path,
		RawPath:  r.URL.RawPath,
		RawQuery: r.URL.RawQuery,
	}
	clear(tr.outHdr)
	out := tr.out
	*out = *tr.blank
	out.Method = r.Method
	out.URL = &tr.outURL
	out.Proto, out.ProtoMajor, out.ProtoMinor = "HTTP/1.1", 1, 1
	out.Header = tr.outHdr
	out.ContentLength = r.ContentLength
	out.Host = r.Host
	copyHeader(out.Header, r.Header)
	if _, ok := r.Header["User-Agent"]; !ok {
		// Without this net/http would send its own "Go-http-client".
		out.Header["User-Agent"] = noUserAgent
	}
	delete(out.Header, "Expect") // our server already answered 100-continue
	if h1.HasToken(r.Header["Te"], "trailers") {
		out.Header["Te"] = teTrailers
	}
	forwarded(out.Header, r, t.trusted, tr.fwd[:])
	switch {
	case ex.replay != nil:
		out.Body = ex.replay.reader()
	case ex.body != nil:
		out.Body = ex.body
	}
	if len(r.Trailer) > 0 {
		out.Trailer = r.Trailer
	}
	// Without a body the headers are the whole request: the upstream may
	// act on it before WroteRequest runs.
	tr.trace.WroteHeaders = nil
	if out.Body == nil {
		tr.trace.WroteHeaders = tr.wroteHeaders
	}
	if upgrade {
		tr.foreign = true // net/http's transport may keep what it was given
		return out.WithContext(httptrace.WithClientTrace(&tr.ctx, &tr.trace))
	}
	if tc := ex.route.pool.RequestContext(&tr.ctx, &tr.trace, &tr.resMem); tc != context.Context(&tr.ctx) {
		tr.foreign = true
		return out.WithContext(tc)
	}
	return out
}

// Header values the request builder sets; nobody changes them in place.
var (
	noUserAgent = []string{""}
	teTrailers  = []string{"trailers"}
)

// gotConn runs on a transport goroutine when a connection is assigned.
func (tr *try) gotConn(info httptrace.GotConnInfo) {
	if c := upstream.Unwrap(info.Conn); c != nil {
		tr.use.Store(c.Busy())
		tr.written.Store(c.Written())
		tr.uconn.Store(c)
	}
	tr.conns.Add(1)
	if isH2Conn(info.Conn) || tr.route.h2Pool {
		if tr.wrote == nil {
			tr.wrote = make(chan struct{})
		}
		tr.h2.Store(true) // publishes wrote
	} else {
		tr.h2.Store(false)
	}
	tr.setPhase(hangup.SendRequest)
}

// putIdleConn runs on a transport goroutine when the attempt's HTTP/1.1
// connection goes back to the idle list (rule R6).
func (tr *try) putIdleConn(err error) {
	if c := tr.uconn.Load(); err == nil && c != nil && !tr.h2.Load() {
		tr.idled.Store(true)
		tr.endpoint.Idle(c, tr.use.Load())
	}
}

// onWroteHeaders runs on a transport goroutine once a bodyless request's
// headers went out.
func (tr *try) onWroteHeaders() {
	tr.phase.CompareAndSwap(uint32(hangup.SendRequest), uint32(hangup.AwaitHeaders))
	tr.reportWritten()
}

// reportWritten wakes settledPhase, if the attempt speaks HTTP/2.
func (tr *try) reportWritten() {
	if tr.h2.Load() && tr.wroteClosed.CompareAndSwap(false, true) {
		close(tr.wrote)
	}
}

// wroteRequest runs on a transport goroutine once the whole request went
// out: from now on the response-header timeout runs. The HTTP/1.1 and
// HTTP/2 transports both report it only after their write returned, by
// which time the response may have arrived and be streaming: the phase
// only ever moves on from send_request here, never back.
func (tr *try) wroteRequest(info httptrace.WroteRequestInfo) {
	defer tr.reportWritten()
	if info.Err == nil {
		tr.phase.CompareAndSwap(uint32(hangup.SendRequest), uint32(hangup.AwaitHeaders))
	}
	d := tr.route.respHeader
	if d <= 0 {
		return
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if !tr.timersOff {
		arm(tr.header, &tr.headerDue, d)
	}
}

// headersIn stops the timers that end with the response header.
func (tr *try) headersIn() {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.timersOff = true
	tr.headerDue, tr.perTryDue = time.Time{}, time.Time{}
	tr.header.Stop()
	tr.perTry.Stop()
}

// nothingWritten reports whether the attempt provably sent nothing to the
// upstream: it never got a connection, or its HTTP/1.1 connection wrote no
// byte. An HTTP/2 stream cannot tell, so it never counts.
func (tr *try) nothingWritten() bool {
	if tr.conns.Load() == 0 {
		return true
	}
	c := tr.uconn.Load()
	return c != nil && !tr.h2.Load() && c.Written() == tr.written.Load()
}

// tryLog is one attempt in the access log.
type tryLog struct {
	Endpoint string  `json:"endpoint"`
	Status   int     `json:"status,omitempty"`
	Side     string  `json:"side,omitempty"`
	Phase    string  `json:"phase,omitempty"`
	Kind     string  `json:"kind,omitempty"`
	MS       float64 `json:"duration_ms"`
	Retry    string  `json:"retry,omitempty"` // why the next attempt was made
	// Replays counts requests the transport itself sent again on a fresh
	// connection because a reused one was closed before anything was
	// written, or before any response byte for an idempotent request.
	Replays int `json:"conn_replays,omitempty"`
	// Hedge marks an attempt sent while the previous one still waited;
	// Abandoned says why an attempt was aborted unfinished.
	Hedge     bool   `json:"hedge,omitempty"`
	Abandoned string `json:"abandoned,omitempty"`

	endpoint *upstream.Endpoint
}

// logTry records the current attempt's end for the access log.
func (ex *exchange) logTry(status int, f *attempt.Failure, retry string) {
	l := ex.try.logEntry()
	l.Status, l.Retry = status, retry
	if f != nil {
		l.Side, l.Phase, l.Kind = f.Side.String(), f.Phase.String(), f.Kind.String()
	}
	ex.tries = append(ex.tries, l)
	ex.tryLogged = true
}

// logEntry is the attempt's access-log entry so far: where it went, how
// long it took, how the transport replayed it.
func (tr *try) logEntry() tryLog {
	return tryLog{Endpoint: tr.endpoint.Host, MS: ms(time.Since(tr.start)),
		Replays: max(int(tr.conns.Load())-1, 0), Hedge: tr.hedge, endpoint: tr.endpoint}
}

// replayBody keeps the first bytes of the caller's body, up to limit, so
// that a failed attempt can be sent again. Each attempt reads it through its
// own reader: from the kept bytes first, then on from the caller. Once more
// than limit bytes were read the request can no longer be replayed, and only
// the reader that went past the limit can go on.
type replayBody struct {
	src   *callerBody
	limit int64

	mu   sync.Mutex // guards the fields below; held across reads of src
	kept []byte
	read int64 // bytes read from src
	eof  bool
	// lost is set (under mu) once a read went past limit: kept is
	// incomplete. It is read without mu, so that the handler's retry check
	// does not wait on an attempt's body reader blocked on the caller.
	lost atomic.Bool
}

// reader returns a reader of the whole body for a new attempt.
func (b *replayBody) reader() io.ReadCloser { return &replayReader{b: b} }

// replayable reports whether every byte read so far was kept.
func (b *replayBody) replayable() bool { return !b.lost.Load() }

// errReplayOver is what an abandoned attempt's body reader returns: a
// later attempt owns the body now.
var errReplayOver = errors.New("request body taken over by a later attempt")

// replayReader is one attempt's view of a replayBody.
type replayReader struct {
	b      *replayBody
	pos    int64
	closed atomic.Bool // not under b.mu, so Close never waits on a slow caller
}

func (r *replayReader) Read(p []byte) (int, error) {
	if r.closed.Load() {
		return 0, errReplayOver
	}
	b := r.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if r.pos < int64(len(b.kept)) {
		n := copy(p, b.kept[r.pos:])
		r.pos += int64(n)
		return n, nil
	}
	if r.pos != b.read {
		return 0, errReplayOver // another reader went past the kept bytes
	}
	if b.eof {
		return 0, io.EOF
	}
	n, err := b.src.Read(p)
	b.read += int64(n)
	r.pos += int64(n)
	if !b.lost.Load() {
		if b.read <= b.limit {
			b.kept = append(b.kept, p[:n]...)
		} else {
			b.lost.Store(true)
			b.kept = nil
		}
	}
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// Close ends this attempt's use of the body; the caller's body itself
// belongs to the server.
func (r *replayReader) Close() error {
	r.closed.Store(true)
	return nil
}
