package client

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/switchboard-proxy/switchboard/hangup"
)

// baseKind is what a Transport knows about its base RoundTripper, which
// decides what it can prove about an attempt that wrote nothing.
type baseKind uint8

const (
	// baseOwn is the Transport's own clone of http.DefaultTransport, with
	// a dialer that types its failures and counts bytes written.
	baseOwn baseKind = iota
	// baseNetHTTP is a caller's *http.Transport: its httptrace hooks are
	// known to fire, and it writes nothing before handing out a connection.
	baseNetHTTP
	// baseOther is any other RoundTripper: only typed dial errors count.
	baseOther
)

// newBase returns the default base: a clone of http.DefaultTransport whose
// dials fail with *hangup.DialError and whose connections count the bytes
// written to them.
func newBase() *http.Transport {
	def, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		// A program replaced http.DefaultTransport; start from its
		// documented settings instead.
		def = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		}
	}
	t := def.Clone()
	dial := t.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, &hangup.DialError{Addr: addr, Err: err}
		}
		return &countingConn{Conn: c}, nil
	}
	// ForceAttemptHTTP2 (cloned) keeps HTTP/2 over TLS despite the custom
	// DialContext.
	return t
}

// countingConn is a connection that counts the bytes written to it, so an
// attempt can tell whether any byte of its request left this process.
type countingConn struct {
	net.Conn
	written atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

// countingFrom finds the countingConn under c, which may be the
// countingConn itself or a *tls.Conn over it; nil if there is none.
func countingFrom(c net.Conn) *countingConn {
	for c != nil {
		switch v := c.(type) {
		case *countingConn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// isH2 reports whether c speaks HTTP/2, where the bytes written to the
// connection belong to many requests and prove nothing about one.
func isH2(c net.Conn) bool {
	tc, ok := c.(*tls.Conn)
	return ok && tc.ConnectionState().NegotiatedProtocol == "h2"
}

// isDialError reports whether err says a connection could not be made: a
// *hangup.DialError, or the *net.OpError of a net.Dialer (Op "dial"). Either
// proves that the attempt wrote nothing, unless the base RoundTripper sent
// the request on an earlier connection first and hid that failure.
func isDialError(err error) bool {
	var de *hangup.DialError
	if errors.As(err, &de) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}
