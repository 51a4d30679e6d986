package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/switchboard-proxy/switchboard/hangup"
	"github.com/switchboard-proxy/switchboard/internal/attempt"
)

// Transport is an http.RoundTripper that sends each request through a base
// RoundTripper and retries it, when that is safe, after a hang-up, a
// timeout or a retryable status, with the same classification and retry
// decisions as the switchboard proxy. Make one with NewTransport; it is safe
// for concurrent use and starts no goroutines of its own.
type Transport struct {
	base      http.RoundTripper
	kind      baseKind
	policy    attempt.Policy
	perTry    time.Duration
	buffer    int64
	addKey    bool
	onAttempt func(AttemptInfo)
	stats     counters
}

// NewTransport returns a Transport with the given options (see Options for
// the defaults of the zero value).
func NewTransport(opts Options) *Transport {
	t := &Transport{
		base:      opts.Base,
		policy:    opts.policy(),
		perTry:    max(opts.PerTryTimeout, 0),
		buffer:    orDefault(opts.BufferBody, defaultBufferBody),
		onAttempt: opts.OnAttempt,
	}
	t.addKey = opts.AddIdempotencyKey && t.policy.MaxAttempts > 1
	switch t.base.(type) {
	case nil:
		t.base, t.kind = newBase(), baseOwn
	case *http.Transport:
		t.kind = baseNetHTTP
	default:
		t.kind = baseOther
	}
	return t
}

// New returns an http.Client whose Transport is NewTransport(opts).
func New(opts Options) *http.Client {
	return &http.Client{Transport: NewTransport(opts)}
}

// Stats returns a snapshot of the Transport's counters.
func (t *Transport) Stats() Stats { return t.stats.snapshot() }

// CloseIdleConnections closes the idle connections of the base
// RoundTripper, if it has such a method.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// RoundTrip sends req, retrying it while a failure or a status is one that
// another attempt may mend, the request is safe to send again (see
// hangup.RetrySafe), and attempts, budget and the caller's deadline allow.
//
// It returns the last response, whatever its status; reading its body to
// the end either succeeds or fails with a *hangup.Error. When no attempt
// brought a response, it returns a *hangup.Error that says who hung up, in
// which phase, and how many attempts were made. The request's context ends
// the attempt in flight and any wait between attempts at once; the error
// then has Side hangup.Caller and wraps the context's error and its cause.
// RoundTrip closes req.Body, and does not modify req.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.stats.requests.Add(1)
	x, err := t.newExchange(req)
	if err != nil {
		return nil, err
	}
	rc, _ := x.body.take() // the first take never fails
	for n := 1; ; n++ {
		tr := x.newTry(n, t.perTry)
		t.stats.attempts.Add(1)
		x.sent = n
		res, err := t.base.RoundTrip(tr.request(x, rc))
		res, err = tr.headersIn(res, err)
		var f *attempt.Failure
		var v attempt.Verdict
		nothingWritten := err != nil && tr.nothingWritten(t.kind, err)
		if err != nil {
			f = x.classify(tr, err)
			if f.Side != hangup.Caller {
				v = x.loop.After(attempt.Result{Failure: f, Request: x.retryInfo(nothingWritten)})
			}
		} else {
			v = x.loop.After(attempt.Result{Status: res.StatusCode, RetryAfter: res.Header.Get("Retry-After"), Request: x.retryInfo(false)})
		}
		if v.Retry {
			var berr error
			if rc, berr = x.body.take(); berr != nil {
				v = attempt.Verdict{Reason: attempt.ReasonBody}
				if f != nil {
					f.Err = fmt.Errorf("%w (request body not replayable: %v)", f.Err, berr)
				}
			}
		}
		t.observe(x, tr, res, f, v, nothingWritten)
		if !v.Retry {
			if f != nil {
				tr.end()
				return nil, t.fail(x, *f, v.Reason)
			}
			return x.deliver(tr, res), nil
		}
		if res != nil {
			drain(res.Body)
		}
		tr.end()
		if err := attempt.Wait(x.ctx, v.Delay); err != nil {
			rc.Close()
			return nil, t.fail(x, x.callerGone(hangup.Backoff), "")
		}
	}
}

// exchange is one request's state across its attempts.
type exchange struct {
	ctx    context.Context // the caller's
	req    *http.Request   // the caller's, never modified
	header http.Header     // req.Header, or a copy with an Idempotency-Key
	body   body
	loop   attempt.Loop
	start  time.Time
	sent   int // attempts sent
	// first is the first attempt's state, and res the body of the
	// response delivered; both are kept here to save allocations.
	first try
	res   responseBody
}

// newExchange prepares req's attempts: its body for replay, its
// Idempotency-Key. A caller already gone gets its error without an attempt.
func (t *Transport) newExchange(req *http.Request) (*exchange, error) {
	x := &exchange{ctx: req.Context(), req: req, header: req.Header, start: time.Now()}
	if x.ctx.Err() != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, t.fail(x, x.callerGone(hangup.PhaseNone), "")
	}
	b, err := newBody(req, t.buffer)
	if err != nil {
		return nil, t.fail(x, attempt.Failure{Side: hangup.Caller, Phase: hangup.SendRequest, Kind: hangup.Classify(err), Err: err}, "")
	}
	if b.unbuffered {
		t.stats.unbuffered.Add(1)
	}
	x.body = b
	if t.addKey && !hangup.IdempotentMethod(req.Method) && req.Header.Get("Idempotency-Key") == "" {
		x.header = req.Header.Clone()
		if x.header == nil {
			x.header = http.Header{}
		}
		x.header.Set("Idempotency-Key", newIdempotencyKey())
	}
	deadline, _ := x.ctx.Deadline()
	x.loop = t.policy.Start(deadline)
	return x, nil
}

// classify works out who ended a failed attempt, in which phase and how.
func (x *exchange) classify(tr *try, err error) *attempt.Failure {
	switch {
	case x.ctx.Err() != nil:
		f := x.callerGone(tr.getPhase())
		return &f
	case tr.cancel != nil && tr.ctx.Err() != nil:
		// The per-try timeout; its cause is a *hangup.TimeoutError.
		return &attempt.Failure{Side: hangup.Upstream, Phase: tr.getPhase(), Kind: hangup.Timeout, Err: context.Cause(tr.ctx)}
	}
	f := &attempt.Failure{Side: hangup.Upstream, Phase: tr.getPhase(), Kind: hangup.Classify(err), Err: err}
	if isDialError(err) {
		f.Phase = hangup.Connect
	}
	return f
}

// callerGone is the failure of a caller whose context ended in phase.
func (x *exchange) callerGone(phase hangup.Phase) attempt.Failure {
	err := x.ctx.Err()
	cause := context.Cause(x.ctx)
	if !errors.Is(cause, err) {
		// Keep both: errors.Is(err, context.Canceled) and the
		// caller's own reason.
		cause = fmt.Errorf("%w: %w", err, cause)
	}
	return attempt.Failure{Side: hangup.Caller, Phase: phase, Kind: hangup.Classify(err), Err: cause}
}

// retryInfo tells the attempt loop whether the request may be sent again.
func (x *exchange) retryInfo(nothingWritten bool) hangup.Attempt {
	return hangup.Attempt{
		Method:            x.req.Method,
		HasIdempotencyKey: x.header.Get("Idempotency-Key") != "",
		BodyReplayable:    x.body.replayable(),
		NothingWritten:    nothingWritten,
	}
}

// fail ends a request with the failure f, counting it, and returns its
// error.
func (t *Transport) fail(x *exchange, f attempt.Failure, noRetry string) error {
	t.stats.errors.Add(1)
	if f.Side == hangup.Caller {
		t.stats.aborts.Add(1)
	}
	return &hangup.Error{Side: f.Side, Phase: f.Phase, Kind: f.Kind, Attempts: x.sent,
		Elapsed: time.Since(x.start), NoRetry: noRetry, Err: f.Err}
}

// observe counts an attempt and reports it to OnAttempt.
func (t *Transport) observe(x *exchange, tr *try, res *http.Response, f *attempt.Failure, v attempt.Verdict, nothingWritten bool) {
	t.stats.verdict(v)
	if t.onAttempt == nil {
		return
	}
	info := AttemptInfo{Attempt: tr.n, Method: x.req.Method, Host: x.req.URL.Host,
		ConnReplays: tr.connReplays(), Duration: time.Since(tr.start),
		Retry: v.Retry, Delay: v.Delay, Reason: v.Reason}
	if res != nil {
		info.Status = res.StatusCode
	}
	if f != nil {
		info.Side, info.Phase, info.Kind, info.Err = f.Side, f.Phase, f.Kind, f.Err
		info.NothingWritten = nothingWritten
	}
	t.onAttempt(info)
}

// drainLimit is how much of a response that is retried is read, so that
// its connection can serve the next attempt.
const drainLimit = 64 << 10

func drain(rc io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, rc, drainLimit)
	rc.Close()
}

// newIdempotencyKey returns a random version-4 UUID.
func newIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	hex.Encode(s[9:13], b[4:6])
	hex.Encode(s[14:18], b[6:8])
	hex.Encode(s[19:23], b[8:10])
	hex.Encode(s[24:], b[10:])
	s[8], s[13], s[18], s[23] = '-', '-', '-', '-'
	return string(s[:])
}
