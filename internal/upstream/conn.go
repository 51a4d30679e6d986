package upstream

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is a connection to an upstream that records when it was closed. Close
// is safe to call from any goroutine, any number of times; the first call
// closes the socket and wakes everything waiting on Closed.
type Conn struct {
	net.Conn
	once     sync.Once
	closedAt atomic.Int64 // unix nanoseconds of the first Close, 0 while open
	closed   chan struct{}
	written  atomic.Int64 // bytes written so far

	mu     sync.Mutex  // guards retire and uses
	retire *time.Timer // closes the connection if it stays idle; see keepalive.go
	uses   int64       // requests that took the connection
}

// Write writes p and counts the bytes written, so an attempt can tell
// whether anything at all reached the upstream.
func (c *Conn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

// Written returns how many bytes have been written to the connection.
func (c *Conn) Written() int64 { return c.written.Load() }

func newConn(c net.Conn) *Conn {
	return &Conn{Conn: c, closed: make(chan struct{})}
}

// Close closes the connection once and records the time.
func (c *Conn) Close() error {
	err := net.ErrClosed
	c.once.Do(func() {
		c.closedAt.Store(time.Now().UnixNano())
		err = c.Conn.Close()
		close(c.closed)
	})
	return err
}

// CloseWrite half-closes the connection (sends FIN) when the underlying
// connection supports it. Upgrade tunnels use it to forward a half-close.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// Closed is closed when the connection has been closed.
func (c *Conn) Closed() <-chan struct{} { return c.closed }

// ClosedAt returns the time of the first Close, or the zero time.
func (c *Conn) ClosedAt() time.Time {
	n := c.closedAt.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Unwrap finds the *Conn under c, which may be the *Conn itself or a
// *tls.Conn over it. It returns nil if there is none.
func Unwrap(c net.Conn) *Conn {
	for c != nil {
		switch v := c.(type) {
		case *Conn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}
