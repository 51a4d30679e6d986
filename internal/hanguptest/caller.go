package hanguptest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// Caller is a raw TCP client connection, for sending exact bytes and hanging
// up at an exact phase. Its methods are not safe for concurrent use.
type Caller struct {
	net.Conn
	// R buffers reads from Conn; read through it, never from Conn directly.
	R *bufio.Reader
}

// Dial connects to addr ("host:port") within Timeout, failing the test if it
// cannot. The connection is closed in t.Cleanup.
func Dial(t testing.TB, addr string) *Caller {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, Timeout)
	if err != nil {
		t.Fatalf("hanguptest: dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &Caller{Conn: nc, R: bufio.NewReader(nc)}
}

// Send writes s as raw bytes — a request head, part of a body — with a
// deadline of Timeout.
func (c *Caller) Send(s string) error {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(Timeout)); err != nil {
		return fmt.Errorf("set write deadline: %w", err)
	}
	_, err := io.WriteString(c.Conn, s)
	return err
}

// ReadResponse reads a response to a request with the given method (which
// decides whether a body follows) with a read deadline of Timeout, which
// also covers reading resp.Body.
func (c *Caller) ReadResponse(method string) (*http.Response, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(Timeout)); err != nil {
		return nil, fmt.Errorf("set read deadline: %w", err)
	}
	return http.ReadResponse(c.R, &http.Request{Method: method})
}

// CloseFIN half-closes the connection for writing and closes it: the peer
// reads EOF. Bytes the peer sent that are still unread turn the close into
// an RST, so read what is due first.
func (c *Caller) CloseFIN() { closeFIN(c.Conn) }

// Reset closes the connection with SO_LINGER 0: the peer's next read or
// write fails with ECONNRESET.
func (c *Caller) Reset() { reset(c.Conn) }

// ReadUntilClosed reads everything until the peer closes the connection or
// d elapses, and returns the bytes read and how the peer closed it (PeerFIN
// or PeerRST), or, on timeout or another failure, the bytes and an error.
func (c *Caller) ReadUntilClosed(d time.Duration) ([]byte, PeerClose, error) {
	got, _, pc, err := readUntilClosed(c.Conn, c.R, d, true)
	return got, pc, err
}
