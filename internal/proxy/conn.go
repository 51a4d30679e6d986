package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/rawio"
)

// callerConn is a caller's connection as accepted by a listener. It records
// the first read error that is a real hang-up (EOF or reset, not a deadline
// that net/http set to stop a read), so an aborted request can say whether
// the caller sent FIN or RST and exactly when.
type callerConn struct {
	net.Conn
	rc   syscall.RawConn // the socket; nil if it is not one
	r    *rawio.Reader   // reads rc; nil if rc is
	rerr atomic.Pointer[readErr]

	// The peer, worked out once for every request's X-Forwarded-For:
	// remote is RemoteAddr().String(), peer its address (invalid if it is
	// not an IP one), peerIP that address as text.
	remote string
	peer   netip.Addr
	peerIP string
}

func newCallerConn(c net.Conn) *callerConn {
	cc := &callerConn{Conn: c, remote: c.RemoteAddr().String(), rc: rawio.Conn(c)}
	cc.r = rawio.NewReader(cc.rc)
	if cc.peer = peerAddr(cc.remote); cc.peer.IsValid() {
		cc.peerIP = cc.peer.String()
	}
	return cc
}

type readErr struct {
	err error
	at  time.Time
}

func (c *callerConn) Read(p []byte) (int, error) {
	var n int
	var err error
	if c.r != nil {
		n, err = c.r.Read(p) // see rawio
	} else {
		n, err = c.Conn.Read(p)
	}
	if err != nil && c.rerr.Load() == nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		c.rerr.CompareAndSwap(nil, &readErr{err: err, at: time.Now()})
	}
	return n, err
}

// readError returns the first hang-up read error and its time.
func (c *callerConn) readError() (time.Time, error) {
	if re := c.rerr.Load(); re != nil {
		return re.at, re.err
	}
	return time.Time{}, nil
}

// CloseWrite sends FIN, for tunnels forwarding a half-close.
func (c *callerConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

type callerConnKey struct{}

// withCallerConn is an http.Server ConnContext hook: it makes the
// connection findable from every request's context.
func withCallerConn(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	switch cc := c.(type) {
	case *callerConn:
		return context.WithValue(ctx, callerConnKey{}, cc)
	case *prefixConn:
		return context.WithValue(ctx, callerConnKey{}, cc.callerConn)
	}
	return ctx
}

func callerConnFrom(ctx context.Context) *callerConn {
	cc, _ := ctx.Value(callerConnKey{}).(*callerConn)
	return cc
}

// callerListener wraps accepted connections in callerConn.
type callerListener struct{ net.Listener }

func (l callerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newCallerConn(c), nil
}

// isH2Conn reports whether c negotiated HTTP/2 by ALPN.
func isH2Conn(c net.Conn) bool {
	tc, ok := c.(*tls.Conn)
	return ok && tc.ConnectionState().NegotiatedProtocol == "h2"
}

// callerBody is the caller's request body on its way upstream. Its Read runs
// on a transport goroutine; the handler reads what it recorded with err.
type callerBody struct {
	rc    io.ReadCloser
	limit int64
	n     atomic.Int64
	e     atomic.Pointer[error]
}

func (b *callerBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	total := b.n.Add(int64(n))
	if total > b.limit {
		err = &http.MaxBytesError{Limit: b.limit}
		n -= int(total - b.limit)
		b.n.Store(b.limit)
	}
	if err != nil && err != io.EOF {
		b.e.CompareAndSwap(nil, &err)
	}
	return max(n, 0), err
}

// Close closes the caller's body; net/http's server owns it and tolerates
// the transport closing it too.
func (b *callerBody) Close() error { return b.rc.Close() }

// err returns the first error reading the caller's body, other than EOF.
func (b *callerBody) err() error {
	if e := b.e.Load(); e != nil {
		return *e
	}
	return nil
}
