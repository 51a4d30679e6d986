package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-proxy/switchboard/hangup"
	"github.com/switchboard-proxy/switchboard/internal/attempt"
	"github.com/switchboard-proxy/switchboard/internal/cancelctx"
	"github.com/switchboard-proxy/switchboard/internal/metrics"
	"github.com/switchboard-proxy/switchboard/internal/queue"
	"github.com/switchboard-proxy/switchboard/internal/upstream"
)

// Handler is switchboard's request path as an http.Handler. It is safe for
// concurrent use; its routing table can be swapped while it serves.
type Handler struct {
	table   atomic.Pointer[table]
	log     atomic.Pointer[slog.Logger] // the access log
	metrics *metrics.Metrics
	tunnels tunnelSet
	active  sync.WaitGroup // requests being served, so Close can wait for them
	// closing is cancelled when the server closes: it ends the upstream
	// exchanges of ignore_client_abort routes, which nothing else stops.
	closing     context.Context
	stopClosing context.CancelFunc
	// queue stores the requests of async routes; nil when no route is
	// async. Set by New before anything is served, then fixed.
	queue        *queue.Queue
	queueMaxBody int64
}

// newHandler returns a handler serving t.
func newHandler(t *table, accessLog *slog.Logger, m *metrics.Metrics) *Handler {
	h := &Handler{metrics: m}
	h.closing, h.stopClosing = context.WithCancel(context.Background())
	h.table.Store(t)
	h.log.Store(accessLog)
	return h
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// ServeHTTP relays r to the upstream its route names.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.active.Add(1)
	defer h.active.Done()
	m := exchanges.Get().(*exchangeMem)
	m.ex = exchange{h: h, w: w, r: r, start: time.Now(), callerCtx: r.Context(), mem: m}
	ex := &m.ex
	defer ex.recycle()
	defer ex.finish()
	t := h.table.Load()
	if p := cleanPath(r.URL.Path); p != r.URL.Path {
		// Route and forward the path the upstream will act on.
		r.URL.Path, r.URL.RawPath = p, ""
	}
	if strings.HasPrefix(r.URL.Path, ReservedPrefix) {
		ex.serveReserved()
		return
	}
	ex.table = t
	ex.route = t.match(r.Host, r.URL.Path)
	if ex.route == nil {
		ex.answerLocal(http.StatusNotFound, "no route matches this host and path")
		return
	}
	inFlight := h.metrics.InFlight(ex.route.name)
	inFlight.Inc()
	defer inFlight.Dec()
	if r.ContentLength > ex.route.maxBody {
		ex.answerLocal(http.StatusRequestEntityTooLarge, "request body larger than this route allows")
		return
	}
	if ex.route.async {
		ex.serveAsync(t)
		return
	}
	if isUpgrade(r.Header) && r.ProtoMajor == 1 {
		ex.serveUpgrade(t)
		return
	}
	ex.fallback = ex.route.fallback
	ex.plain = !ex.route.ignoreAbort // nothing outlives the exchange unless it hedges
	ex.serve(t)
}

// exchange is the state of one request. It is owned by the handler's
// goroutine, except the fields documented otherwise.
type exchange struct {
	h         *Handler
	w         http.ResponseWriter
	r         *http.Request
	table     *table // the routing table the request is served with
	route     *route
	start     time.Time
	callerCtx context.Context // the caller's request context: the abort signal

	ctx         *cancelctx.Ctx // the exchange's context: the caller's, bounded by the total timeout; &mem.ctx once prepared
	mem         *exchangeMem
	plain       bool        // served by serve, where nothing holds ex after it, unless it hedged
	hedged      bool        // hedge goroutines may still hold ex
	stopClosing func() bool // unhooks ctx from the server closing; nil if not hooked
	body        *callerBody
	replay      *replayBody  // keeps the body for another attempt; nil when the route never retries
	loop        attempt.Loop // the retry state, when the route retries
	try         *try         // the current (or last) attempt
	tries       []tryLog     // every attempt but the last, for the access log
	tryLogged   bool         // the current try is in tries already: the exchange ended between attempts
	noRetry     string       // why a failed attempt was not retried, if it was not
	endpoint    *upstream.Endpoint
	res         *http.Response
	phase       hangup.Phase // the exchange's own phase between attempts (backoff)

	wroteHeader bool
	downDead    bool  // the caller's socket ended: write nothing more
	bytesOut    int64 // response body bytes accepted for the caller; a tunnel's bytes to the caller
	tunnelIn    int64 // a tunnel's bytes from the caller to the upstream
	status      int
	outcome     hangup.Outcome
	proxyError  string
	detail      string
	abortedAt   time.Time // when the caller hung up, if it did
	propagation time.Duration
	ignored     bool   // the caller left, but the route let the upstream finish
	deliveryID  string // the id an async or fallback route stored the request under
	fallback    bool   // a fallback route's request (not an Upgrade): store it if the upstream fails
	noFallback  string // why a fallback request could not be stored
	queueErr    error  // the store's error, with noFallback store_failed
}

// exchangeMem is the memory of an exchange, pooled: the exchange, and its
// context, which must outlive a reset of the exchange.
type exchangeMem struct {
	ex  exchange
	ctx cancelctx.Ctx
}

var exchanges = sync.Pool{New: func() any { return new(exchangeMem) }}

// recycle gives the exchange's attempt back for reuse when it was the only
// one, and the exchange itself when nothing can hold it any more.
func (ex *exchange) recycle() {
	if ex.try != nil && len(ex.tries) == 0 {
		ex.try.recycle()
		ex.try = nil
	}
	if !ex.plain || ex.hedged || !ex.ctx.Reusable() {
		return
	}
	m := ex.mem
	m.ex = exchange{}
	exchanges.Put(m)
}

// cancel cancels the exchange's context with cause: a timeout, or the
// caller leaving.
func (ex *exchange) cancel(cause error) { ex.ctx.Cancel(cause) }

// relay sends the upstream's response to the caller as it arrives.
func (ex *exchange) relay(res *http.Response) {
	ex.try.setPhase(hangup.StreamResponse)
	hdr := ex.w.Header()
	copyHeader(hdr, res.Header)
	announceTrailers(hdr, res.Trailer)
	ex.status = res.StatusCode
	if ex.callerGone() {
		if !ex.route.ignoreAbort {
			ex.fail(cancelctx.Cause(ex.callerCtx))
			return
		}
		ex.ignoreCaller(hangup.AwaitHeaders)
	} else {
		if ex.r.ProtoMajor == 1 && lastRequest(ex.r) {
			hdr.Set("Connection", "close")
		}
		ex.w.WriteHeader(res.StatusCode)
		ex.wroteHeader = true
	}
	if err := ex.copyBody(res); err != nil {
		ex.fail(err)
		return
	}
	copyTrailers(hdr, res.Trailer)
	if ex.ignored {
		ex.outcome.Action = hangup.OK
	}
}

// ignoreCaller notes that the caller left in phase but the route lets the
// upstream finish (ignore_client_abort): the response is read and dropped.
func (ex *exchange) ignoreCaller(phase hangup.Phase) {
	if ex.ignored {
		return
	}
	ex.ignored = true
	ex.downDead = true
	ex.outcome = hangup.Outcome{Side: hangup.Caller, Phase: phase, Kind: ex.callerKind(nil), Action: hangup.OK}
}

// callerWriteError is a failed write to the caller: the caller's side
// ended.
type callerWriteError struct{ err error }

func (e callerWriteError) Error() string { return "write to caller: " + e.err.Error() }
func (e callerWriteError) Unwrap() error { return e.err }

// copyBody copies the response body, flushing at once when the response
// streams (no length, or server-sent events), and enforcing the idle-body
// timeout on every read. A nil return means the body arrived whole.
func (ex *exchange) copyBody(res *http.Response) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	flush := res.ContentLength < 0 || isEventStream(res.Header)
	var rc *http.ResponseController
	if flush {
		rc = http.NewResponseController(ex.w)
	}
	// The idle-body timeout times each wait for the upstream, not the
	// writes to a slow caller. It ends the attempt, whose context the
	// response body reads under; classify finds its cause there.
	idle := ex.route.idleBody
	// A long body of known length goes socket to socket once what came
	// with the head is relayed (the first read takes that).
	canSplice := !flush && res.ContentLength >= spliceMin && !ex.route.ignoreAbort
	for {
		if idle > 0 {
			ex.try.armIdle(idle)
		}
		n, rerr := res.Body.Read(buf)
		if idle > 0 {
			ex.try.stopIdle()
		}
		if n > 0 {
			if werr := ex.write(buf[:n]); werr != nil {
				return callerWriteError{werr}
			}
			if flush && !ex.downDead {
				if err := rc.Flush(); err != nil {
					ex.downDead = true
					return callerWriteError{err}
				}
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
		if canSplice {
			canSplice = false
			if done, err := ex.spliceBody(res.Body, idle); done {
				return err
			}
		}
	}
}

// write writes p to the caller unless the caller's socket already ended, in
// which case it counts a prevented write (rule R2) and returns an error; on
// an ignore_client_abort route it drops p and lets the copy go on.
func (ex *exchange) write(p []byte) error {
	if ex.ignored {
		return nil
	}
	if err := ex.mayWrite(); err != nil || ex.ignored {
		return err
	}
	n, err := ex.w.Write(p)
	ex.bytesOut += int64(n)
	if err != nil {
		ex.downDead = true
		if ex.route.ignoreAbort {
			ex.ignoreCaller(hangup.StreamResponse)
			return nil
		}
	}
	return err
}

// mayWrite checks, before a write of the response body, that the caller's
// socket has not ended; if it has, it counts a prevented write (rule R2)
// and returns an error, or on an ignore_client_abort route starts
// dropping the body.
func (ex *exchange) mayWrite() error {
	if !ex.downDead && !ex.callerGone() {
		return nil
	}
	ex.downDead = true
	ex.h.metrics.PreventedWrite("response_body")
	if ex.route.ignoreAbort {
		ex.ignoreCaller(hangup.StreamResponse)
		return nil
	}
	return errCallerGone
}

var errCallerGone = errors.New("caller hung up")

// callerGone reports whether the caller's side of the exchange has ended.
func (ex *exchange) callerGone() bool { return ex.callerCtx.Err() != nil }

func isEventStream(h http.Header) bool {
	ct := h.Get("Content-Type")
	return len(ct) >= 17 && ct[:17] == "text/event-stream"
}

// announceTrailers declares the upstream's trailers before the header is
// written, as HTTP/1.1 chunked encoding and HTTP/2 both need.
func announceTrailers(h http.Header, tr http.Header) {
	for k := range tr {
		h.Add("Trailer", k)
	}
}

func copyTrailers(h http.Header, tr http.Header) {
	for k, vv := range tr {
		if _, announced := h["Trailer"]; announced {
			h[k] = vv
		} else {
			h[http.TrailerPrefix+k] = vv
		}
	}
}

// fail ends an exchange whose attempt failed with err: classify, decide,
// abort what must be aborted, and answer if an answer can still be sent.
func (ex *exchange) fail(err error) { ex.end(ex.classify(err)) }

// end ends an exchange with the failure f.
func (ex *exchange) end(f attempt.Failure) {
	if f.Side == hangup.Caller {
		ex.abortUpstream()
	} else {
		// The upstream failed or timed out: whatever it is still
		// doing, we no longer want it.
		ex.cancel(f.Err)
		if ex.try != nil {
			ex.try.cancel(f.Err)
		}
		ex.closeUpstreamConn()
	}
	f.Phase = ex.settledPhase(f.Phase)
	if ex.try != nil && f.Side == hangup.Upstream {
		ex.try.result = failureResult(f)
	}
	d := attempt.Decide(f)
	ex.outcome = hangup.Outcome{Side: f.Side, Phase: f.Phase, Kind: f.Kind, Action: d.Action, Err: f.Err}
	ex.proxyError = d.ProxyError
	if f.Side == hangup.Caller {
		ex.status = d.Status
		// A caller that is still there sent too much, or sent a body
		// that does not parse: it gets a 4xx, not silence.
		switch tooBig := new(http.MaxBytesError); {
		case errors.As(f.Err, &tooBig):
			ex.status, ex.detail = http.StatusRequestEntityTooLarge, "request body larger than this route allows"
			ex.writeAnswer(ex.status, "", ex.detail)
		case f.Phase == hangup.SendRequest && f.Kind == hangup.KindUnknown && !ex.callerGone():
			ex.status, ex.detail = http.StatusBadRequest, "malformed request body"
			ex.writeAnswer(ex.status, "", ex.detail)
		}
		return
	}
	switch d.Action {
	case hangup.ResetCaller:
		// Headers went out: only an abort tells the caller the body
		// is incomplete (rule R4). ServeHTTP's deferred finish logs
		// it while the panic unwinds; net/http recovers this value.
		panic(http.ErrAbortHandler)
	case hangup.Answered5xx:
		msg := hangup.Outcome{Side: f.Side, Phase: f.Phase, Kind: f.Kind}.Describe()
		if attempt.Queueable(f) && ex.fallBack(ex.outcome, "error="+d.ProxyError, msg, 0) {
			return
		}
		ex.answerError(d.Status, d.ProxyError, msg)
	}
}

// getPhase returns the phase the exchange is in: between attempts its own,
// else its attempt's.
func (ex *exchange) getPhase() hangup.Phase {
	switch {
	case ex.phase != hangup.PhaseNone:
		return ex.phase
	case ex.try != nil:
		return ex.try.getPhase()
	}
	return hangup.Connect
}

// settledPhase returns phase, or, for a bodyless request on an HTTP/2
// upstream that failed while being sent, the attempt's phase once the
// transport has reported the headers written or settleWait has passed.
// That transport reports the headers written on its own goroutine only
// after the write returned, so the upstream may have had the whole request,
// and the caller have cancelled or the upstream have failed since, before
// the report: without the wait such an exchange would be logged
// send_request. The upstream is aborted before the wait, so the wait
// delays only the record (and, for an upstream failure, the 502), and only
// by settleWait when the headers were never written.
func (ex *exchange) settledPhase(phase hangup.Phase) hangup.Phase {
	tr := ex.try
	if phase != hangup.SendRequest || tr == nil || ex.body != nil || !tr.h2.Load() {
		return phase
	}
	t := time.NewTimer(settleWait)
	defer t.Stop()
	select {
	case <-tr.wrote:
		return tr.getPhase()
	case <-t.C:
		return phase
	}
}

// settleWait bounds how long settledPhase waits for the transport's report.
const settleWait = 50 * time.Millisecond

// classify works out who ended a failed attempt, in which phase and how.
func (ex *exchange) classify(err error) attempt.Failure {
	f := attempt.Failure{Phase: ex.getPhase(), Err: err, HeadersSent: ex.wroteHeader}
	var tooBig *http.MaxBytesError
	var de *hangup.DialError
	switch {
	case ex.body != nil && errors.As(ex.body.err(), &tooBig):
		f.Side, f.Phase, f.Kind, f.Err = hangup.Caller, hangup.SendRequest, hangup.KindNone, tooBig
	case ex.body != nil && ex.body.err() != nil:
		// The caller hung up while still sending its body, or sent one
		// that does not parse.
		f.Side, f.Phase, f.Err = hangup.Caller, hangup.SendRequest, ex.body.err()
		if ex.malformedBody(f.Err) {
			f.Kind = hangup.KindUnknown // not a hang-up: no abort time either
		} else {
			f.Kind = ex.callerKind(f.Err)
		}
	case ex.callerGone() && !ex.route.ignoreAbort || errors.Is(err, errCallerGone):
		f.Side, f.Err = hangup.Caller, cancelctx.Cause(ex.callerCtx)
		f.Kind = ex.callerKind(nil)
	case errors.As(err, new(callerWriteError)):
		f.Side = hangup.Caller
		f.Kind = ex.callerKind(err)
	case ex.ctx.Err() != nil && isTimeout(ex.ctx.Cause()):
		f.Side, f.Kind, f.Err = hangup.Upstream, hangup.Timeout, ex.ctx.Cause()
	case ex.try != nil && ex.try.ctx.Err() != nil && isTimeout(ex.try.ctx.Cause()):
		f.Side, f.Kind, f.Err = hangup.Upstream, hangup.Timeout, ex.try.ctx.Cause()
	default:
		f.Side, f.Kind = hangup.Upstream, hangup.Classify(err)
		if errors.As(err, &de) {
			f.Phase = hangup.Connect
		}
	}
	return f
}

func isTimeout(err error) bool {
	var te *hangup.TimeoutError
	return errors.As(err, &te)
}

// malformedBody reports whether bodyErr, the error reading the caller's
// body, says the body does not parse (a bad chunk size, say) while the
// caller is still connected, rather than that the caller hung up.
func (ex *exchange) malformedBody(bodyErr error) bool {
	if hangup.Classify(bodyErr) != hangup.KindUnknown || ex.callerGone() {
		return false
	}
	if cc := callerConnFrom(ex.callerCtx); cc != nil {
		if _, err := cc.readError(); err != nil {
			return false
		}
	}
	return true
}

// callerKind says how the caller hung up: the read error its connection
// saw (FIN or RST) if any, else an HTTP/2 stream reset.
func (ex *exchange) callerKind(bodyErr error) hangup.Kind {
	if cc := callerConnFrom(ex.callerCtx); cc != nil {
		if at, err := cc.readError(); err != nil {
			ex.abortedAt = at
			return hangup.Classify(err)
		}
	}
	ex.abortedAt = time.Now()
	if bodyErr != nil {
		if k := hangup.Classify(bodyErr); k != hangup.KindUnknown {
			return k
		}
	}
	if ex.r.ProtoMajor == 2 {
		return hangup.Reset // RST_STREAM from the caller
	}
	return hangup.FIN
}

// abortUpstream stops the upstream request of a caller who hung up (rule
// R1): over HTTP/1.1 the upstream connection is closed, over HTTP/2 the
// stream is reset. It records how long the abort took to propagate.
func (ex *exchange) abortUpstream() {
	if ex.route.ignoreAbort {
		return
	}
	ex.cancel(errCallerGone)
	if ex.res != nil {
		ex.res.Body.Close() // HTTP/2: RST_STREAM CANCEL
	}
	closedAt := time.Now()
	if c := ex.closeUpstreamConn(); c != nil {
		closedAt = c.ClosedAt()
	}
	if !ex.abortedAt.IsZero() {
		ex.propagation = max(closedAt.Sub(ex.abortedAt), 0)
		ex.h.metrics.AbortPropagated(ex.propagation)
	}
}

// closeUpstreamConn closes the HTTP/1.1 connection the attempt used (or was
// still making), which is the only way to abort a request on it. HTTP/2
// connections are shared and are left to the stream reset.
func (ex *exchange) closeUpstreamConn() *upstream.Conn { return closeTryConn(ex.try) }

// closeTryConn closes the HTTP/1.1 connection of the attempt tr.
func closeTryConn(tr *try) *upstream.Conn {
	if tr == nil {
		return nil
	}
	c := tr.uconn.Load()
	if c == nil {
		c = tr.dial.Conn()
	}
	if c == nil || tr.h2.Load() {
		return nil
	}
	c.Close()
	return c
}

// answerLocal answers a request switchboard handles itself (no route, body
// too large) with status and a one-line text.
func (ex *exchange) answerLocal(status int, msg string) {
	ex.status = status
	ex.detail = msg
	if status == http.StatusRequestEntityTooLarge {
		ex.outcome = hangup.Outcome{Side: hangup.Caller, Phase: hangup.SendRequest}
	}
	ex.writeAnswer(status, "", msg)
}

// answerError sends a 5xx answer with an RFC 9209 Proxy-Status header.
func (ex *exchange) answerError(status int, proxyError, msg string) {
	ex.status = status
	ex.detail = msg
	ex.writeAnswer(status, proxyError, msg)
}

func (ex *exchange) writeAnswer(status int, proxyError, msg string) {
	if ex.wroteHeader {
		return
	}
	if ex.downDead || ex.callerGone() {
		ex.h.metrics.PreventedWrite("error_answer")
		return
	}
	h := ex.w.Header()
	clear(h)
	if ex.r.ProtoMajor == 1 && lastRequest(ex.r) {
		h.Set("Connection", "close")
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	if proxyError != "" {
		h.Set("Proxy-Status", proxyStatus(proxyError, msg))
	}
	if status == http.StatusRequestEntityTooLarge {
		h.Set("Connection", "close") // the rest of the body is not read
	}
	ex.wroteHeader = true
	ex.w.WriteHeader(status)
	n, err := io.WriteString(ex.w, http.StatusText(status)+": "+msg+"\n")
	ex.bytesOut += int64(n)
	if err != nil {
		ex.downDead = true
	}
}

// proxyStatus formats an RFC 9209 Proxy-Status field value.
func proxyStatus(errType, details string) string {
	return "switchboard; error=" + errType + "; details=" + quoteSF(details)
}

// quoteSF quotes s as an RFC 8941 structured-field string: printable ASCII
// only, with backslash and double quote escaped.
func quoteSF(s string) string {
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c > 0x7e:
			b = append(b, '?')
		default:
			b = append(b, c)
		}
	}
	return string(append(b, '"'))
}
