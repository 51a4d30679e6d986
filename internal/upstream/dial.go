package upstream

import (
	"context"
	"crypto/tls"
	"net"
	"sync/atomic"
	"time"

	"github.com/switchboard-proxy/switchboard/hangup"
	"github.com/switchboard-proxy/switchboard/internal/cancelctx"
)

// DialControl carries one request's wishes to the pool's dialer. net/http
// dials with a context detached from the request's cancellation (so a dial can
// serve a later request), but it keeps the request context's values; this is
// how the dialer still learns about the request.
type DialControl struct {
	// Abort is the request's context: when it is done before the dial
	// completes, the dial is abandoned and its socket closed (rule R1 in the
	// connect phase), instead of finishing in the background.
	Abort context.Context
	// Timeout bounds TCP connect plus TLS handshake; 0 means no limit.
	Timeout time.Duration

	conn atomic.Pointer[Conn] // set by the dialer once TCP is connected
}

type dialControlKey struct{}

// WithDialControl returns a context carrying dc for the pool's dialer.
func WithDialControl(ctx context.Context, dc *DialControl) context.Context {
	return context.WithValue(ctx, dialControlKey{}, dc)
}

func dialControlFrom(ctx context.Context) *DialControl {
	dc, _ := ctx.Value(dialControlKey{}).(*DialControl)
	return dc
}

// dialer dials upstream endpoints, honouring DialControl.
type dialer struct {
	tls *tls.Config // nil for cleartext pools
	net net.Dialer
}

// dialContext prepares ctx for one dial: it applies the connect timeout and
// ties the dial to the requesting caller. The returned stop must be called
// when the dial has finished.
func (d *dialer) dialContext(ctx context.Context) (context.Context, func()) {
	dc := dialControlFrom(ctx)
	if dc == nil {
		return ctx, func() {}
	}
	var cancelTimeout context.CancelFunc = func() {}
	if dc.Timeout > 0 {
		ctx, cancelTimeout = context.WithTimeoutCause(ctx, dc.Timeout,
			&hangup.TimeoutError{Phase: hangup.Connect, After: dc.Timeout})
	}
	ctx, cancel := context.WithCancelCause(ctx)
	stopAbort := func() bool { return false }
	if dc.Abort != nil {
		// The caller went away while we were still connecting: nobody
		// wants this connection, so do not finish making it.
		stopAbort = context.AfterFunc(dc.Abort, func() { cancel(cancelctx.Cause(dc.Abort)) })
	}
	return ctx, func() { stopAbort(); cancel(nil); cancelTimeout() }
}

// DialContext dials a cleartext connection.
func (d *dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	ctx, stop := d.dialContext(ctx)
	defer stop()
	c, err := d.dialTCP(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	dialDone(ctx)
	return c, nil
}

// dialDone forgets the connection of a finished dial: from now on it is
// the transport's, which may give it to another request.
func dialDone(ctx context.Context) {
	if dc := dialControlFrom(ctx); dc != nil {
		dc.conn.Store(nil)
	}
}

func (d *dialer) dialTCP(ctx context.Context, network, addr string) (*Conn, error) {
	c, err := d.net.DialContext(ctx, network, addr)
	if err != nil {
		if cause := cancelctx.Cause(ctx); cause != nil && ctx.Err() != nil {
			err = cause
		}
		return nil, &hangup.DialError{Addr: addr, Err: err}
	}
	uc := newConn(c)
	if dc := dialControlFrom(ctx); dc != nil {
		dc.conn.Store(uc)
	}
	return uc, nil
}

// DialTLSContext dials and completes a TLS handshake. It returns a
// *tls.Conn, which net/http requires to negotiate HTTP/2 by ALPN.
func (d *dialer) DialTLSContext(ctx context.Context, network, addr string) (net.Conn, error) {
	ctx, stop := d.dialContext(ctx)
	defer stop()
	c, err := d.dialTCP(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cfg := d.tls.Clone()
	if cfg.ServerName == "" {
		host, _, _ := net.SplitHostPort(addr)
		cfg.ServerName = host
	}
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		if cause := cancelctx.Cause(ctx); cause != nil && ctx.Err() != nil {
			err = cause
		}
		return nil, &hangup.DialError{Addr: addr, Err: err}
	}
	dialDone(ctx)
	return tc, nil
}

// Conn returns the connection the dialer is still setting up for this
// request (TCP connected, TLS handshake in progress), or nil. The proxy
// closes it when the caller hangs up meanwhile. Once the dial returns, the
// connection belongs to the transport and Conn returns nil.
func (dc *DialControl) Conn() *Conn { return dc.conn.Load() }
