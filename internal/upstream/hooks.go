package upstream

import (
	"context"
	"net/http"
	"net/http/httptrace"

	"github.com/switchboard-proxy/switchboard/internal/cancelctx"
)

// SetDialControl makes c carry dc for the pool's dialer, as
// WithDialControl does, without a context of its own.
func SetDialControl(c *cancelctx.Ctx, dc *DialControl) { c.SetValue(dialControlKey{}, dc) }

type traceKey struct{}

// RequestContext returns the context to send a request of the pool with,
// so that its transport calls trace's hooks: c itself, carrying trace and
// mem (nil for none), when the pool's own HTTP/1.1 transport sends it (no
// allocation), or one made by httptrace for net/http's.
func (p *Pool) RequestContext(c *cancelctx.Ctx, trace *httptrace.ClientTrace, mem *ResponseMem) context.Context {
	if p.h1 != nil {
		c.SetValue(traceKey{}, trace)
		if mem != nil {
			c.SetValue(responseMemKey{}, mem)
		}
		return c
	}
	return httptrace.WithClientTrace(c, trace)
}

// traceFrom returns the hooks a request's context carries, set by
// RequestContext or by httptrace.
func traceFrom(ctx context.Context) *httptrace.ClientTrace {
	if t, ok := ctx.Value(traceKey{}).(*httptrace.ClientTrace); ok {
		return t
	}
	return httptrace.ContextClientTrace(ctx)
}

type responseMemKey struct{}

// ResponseMem is room for the response to one request of the pool's own
// HTTP/1.1 transport: its http.Response, header map, body framing and
// body, and the transport's state for a bodyless request. A caller that
// sends request after request, one at a time, keeps one and passes it
// with RequestContext, and the transport builds the response in it instead
// of allocating one. The caller must be done with the last response, body
// closed, before it sends the next request with the same ResponseMem: no
// call on the last response or its body may still run, or come later.
// (Until then a second Close or a Read after Close is harmless, as on any
// response.)
type ResponseMem struct {
	res    http.Response
	header http.Header
	values []string
	length lengthBody
	body   h1Body
	// req is the request's transport state when it has no body: no
	// bodyWriter, which may outlive the exchange, ever holds it, and
	// nothing refers to it once RoundTrip returns.
	req h1Request
}

func responseMemFrom(ctx context.Context) *ResponseMem {
	m, _ := ctx.Value(responseMemKey{}).(*ResponseMem)
	return m
}
