package upstream

import (
	"context"
	"net/http/httptrace"

	"github.com/switchboard-proxy/switchboard/internal/cancelctx"
)

// SetDialControl makes c carry dc for the pool's dialer, as
// WithDialControl does, without a context of its own.
func SetDialControl(c *cancelctx.Ctx, dc *DialControl) { c.SetValue(dialControlKey{}, dc) }

type traceKey struct{}

// TraceContext returns the context to send a request of the pool with so
// that its transport calls trace's hooks: c itself, carrying trace, when
// the pool's own HTTP/1.1 transport sends it (no allocation), or one
// made by httptrace for net/http's.
func (p *Pool) TraceContext(c *cancelctx.Ctx, trace *httptrace.ClientTrace) context.Context {
	if p.h1 != nil {
		c.SetValue(traceKey{}, trace)
		return c
	}
	return httptrace.WithClientTrace(c, trace)
}

// traceFrom returns the hooks a request's context carries, set by
// TraceContext or by httptrace.
func traceFrom(ctx context.Context) *httptrace.ClientTrace {
	if t, ok := ctx.Value(traceKey{}).(*httptrace.ClientTrace); ok {
		return t
	}
	return httptrace.ContextClientTrace(ctx)
}
