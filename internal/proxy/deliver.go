package proxy

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync/atomic"

	"github.com/switchboard-proxy/switchboard/hangup"
	"github.com/switchboard-proxy/switchboard/internal/attempt"
	"github.com/switchboard-proxy/switchboard/internal/config"
	"github.com/switchboard-proxy/switchboard/internal/queue"
	"github.com/switchboard-proxy/switchboard/internal/upstream"
)

// maxKeptResponse is how much of an upstream's response body a delivery
// reads and keeps for the status URL (the queue's default limit).
const maxKeptResponse = 64 << 10

// deliver makes one attempt to deliver m to its route's pool, for the
// queue's worker. It uses the routing table in force, so a reload's pool
// and timeout changes apply to deliveries still pending.
func (h *Handler) deliver(ctx context.Context, m queue.Message) queue.Outcome {
	rt := h.table.Load().route(m.Route)
	if rt == nil {
		return queue.Outcome{Failure: &attempt.Failure{Side: hangup.Proxy,
			Err: fmt.Errorf("route %q is no longer configured", m.Route)}}
	}
	lease, err := rt.pool.Acquire(ctx, nil)
	if err != nil {
		// No endpoint to try (all ejected or busy): like a connect
		// failure, worth another attempt after a backoff.
		return queue.Outcome{Failure: &attempt.Failure{Side: hangup.Upstream, Phase: hangup.Connect,
			Kind: hangup.Classify(err), Err: err}}
	}
	d := delivery{rt: rt, lease: lease}
	out := d.attempt(ctx, &m)
	switch {
	case ctx.Err() != nil:
		lease.Release(upstream.ResultIgnore) // stopping: no health signal
	case out.Failure != nil:
		lease.Release(failureResult(*out.Failure))
	default:
		lease.Release(statusResult(out.Status))
	}
	return out
}

// delivery is one delivery attempt on one endpoint.
type delivery struct {
	rt    *route
	lease *upstream.Lease
	phase atomic.Uint32 // hangup.Phase, moved on by the transport's trace hooks
}

// attempt sends m and reads the start of the answer, within the route's
// per-try timeout (or, without one, its response-header timeout).
func (d *delivery) attempt(ctx context.Context, m *queue.Message) queue.Outcome {
	limit := cmp.Or(d.rt.perTry, d.rt.respHeader)
	actx, cancel := context.WithTimeoutCause(ctx, limit, &hangup.TimeoutError{Phase: hangup.AwaitHeaders, After: limit})
	defer cancel()
	req, err := d.request(actx, m)
	if err != nil {
		return queue.Outcome{Failure: &attempt.Failure{Side: hangup.Proxy, Err: err}}
	}
	d.phase.Store(uint32(hangup.Connect))
	res, err := d.rt.pool.RoundTripper.RoundTrip(req)
	if err != nil {
		return queue.Outcome{Failure: d.failure(actx, err)}
	}
	defer res.Body.Close()
	d.lease.Endpoint.ObserveKeepAlive(res.Header)
	// The body is kept only for the status URL: a read that fails
	// part-way keeps what came, since the upstream did answer.
	body, _ := io.ReadAll(io.LimitReader(res.Body, maxKeptResponse))
	return queue.Outcome{Status: res.StatusCode, Header: res.Header, Body: body}
}

// request builds the attempt's request from the stored one.
func (d *delivery) request(ctx context.Context, m *queue.Message) (*http.Request, error) {
	target, err := url.ParseRequestURI(m.Target)
	if err != nil {
		return nil, fmt.Errorf("stored target %q: %w", m.Target, err)
	}
	e := d.lease.Endpoint
	hdr := m.Header.Clone()
	if hdr == nil {
		hdr = http.Header{}
	}
	host := hdr.Get("Host")
	delete(hdr, "Host")
	if _, ok := hdr["User-Agent"]; !ok {
		hdr["User-Agent"] = []string{""} // not net/http's own
	}
	out := &http.Request{
		Method:        m.Method,
		URL:           &url.URL{Scheme: e.Scheme, Host: e.Host, Path: target.Path, RawPath: target.RawPath, RawQuery: target.RawQuery},
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        hdr,
		Host:          cmp.Or(host, e.Host),
		ContentLength: int64(len(m.Body)),
	}
	if len(m.Body) > 0 {
		out.Body = io.NopCloser(bytes.NewReader(m.Body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(m.Body)), nil }
	}
	dc := &upstream.DialControl{Abort: ctx, Timeout: d.rt.connect}
	trace := &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { d.phase.Store(uint32(hangup.SendRequest)) },
		WroteRequest: func(httptrace.WroteRequestInfo) {
			d.phase.CompareAndSwap(uint32(hangup.SendRequest), uint32(hangup.AwaitHeaders))
		},
	}
	return out.WithContext(httptrace.WithClientTrace(upstream.WithDialControl(ctx, dc), trace)), nil
}

// failure classifies a failed attempt for the worker's retry policy.
func (d *delivery) failure(ctx context.Context, err error) *attempt.Failure {
	f := &attempt.Failure{Side: hangup.Upstream, Phase: hangup.Phase(d.phase.Load()), Kind: hangup.Classify(err), Err: err}
	var te *hangup.TimeoutError
	var de *hangup.DialError
	switch cause := context.Cause(ctx); {
	case errors.As(cause, &te):
		f.Kind, f.Err = hangup.Timeout, cause
	case cause != nil:
		// The worker is stopping: nobody's fault; the message goes back.
		f.Side, f.Err = hangup.Proxy, cause
	case errors.As(err, &de):
		f.Phase = hangup.Connect
	}
	return f
}

// route returns the route named name, or nil.
func (t *table) route(name string) *route {
	for _, r := range t.routes {
		if r.name == name {
			return r
		}
	}
	return nil
}

// deliveryPolicy is the retry policy of an async route's deliveries. A
// Retry-After is honoured as long as it ends before the delivery's max
// age, after which the delivery is dead anyway.
func deliveryPolicy(rc *config.Route) *attempt.Policy {
	q := rc.Queue
	return &attempt.Policy{
		MaxAttempts:   q.MaxAttempts,
		RetryOnStatus: rc.Retries.RetryOnStatus,
		BackoffBase:   q.BackoffBase.D(),
		BackoffMax:    q.BackoffMax.D(),
		RetryAfterMax: q.MaxAge.D(),
	}
}

// fallbackDeliveryPolicy serves deliveries whose route a reload removed:
// they fail without an attempt and are dead-lettered, so it is never
// asked to retry; it exists because the worker needs a policy.
var fallbackDeliveryPolicy = &attempt.Policy{MaxAttempts: 1}

// deliveryPolicyFor returns the delivery policy of the route named name in
// the table in force, or nil.
func (h *Handler) deliveryPolicyFor(name string) *attempt.Policy {
	if rt := h.table.Load().route(name); rt != nil {
		return rt.delivery
	}
	return nil
}
