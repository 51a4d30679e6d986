package hanguptest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The canned handlers below run on an Upstream. Each reads one request,
// body included, before doing its part (so a FIN is not turned into an RST
// by unread bytes), and records what it learned in the conn's ConnRecord.

// Respond returns a handler that answers every request on the connection
// with status and body (with Content-Length), serving keep-alive requests
// until the peer closes the connection (recorded), asks for Connection:
// close (answered, then FIN), or stays idle for Timeout (FIN, like a
// server's keep-alive timeout).
func Respond(status int, body string) func(*ServerConn) {
	head := fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n\r\n",
		status, http.StatusText(status), len(body))
	return func(c *ServerConn) {
		for n := 0; ; n++ {
			req, err := c.readRequestDrained()
			if err != nil {
				if n == 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
					c.failUnlessHangUp(err)
				}
				c.CloseFIN()
				return
			}
			resp := head
			if req.Method != http.MethodHead {
				resp += body
			}
			if err := c.Write(resp); err != nil {
				c.failUnlessHangUp(err)
				return
			}
			if req.Close {
				c.CloseFIN()
				return
			}
		}
	}
}

// Stall returns a handler that reads a request, sends nothing, and waits up
// to Timeout for the peer to close the connection, recording how it did.
func Stall() func(*ServerConn) {
	return func(c *ServerConn) {
		if _, err := c.readRequestDrained(); err != nil {
			c.failUnlessHangUp(err)
			return
		}
		if _, _, err := c.WaitPeerClose(Timeout); err != nil {
			c.fail(err)
		}
	}
}

// HangUpBeforeHeaders returns a handler that reads a request and then,
// without sending a byte, closes the connection with a FIN, or an RST if rst
// is set: the "socket hang up" a proxy must retry or answer with 502.
func HangUpBeforeHeaders(rst bool) func(*ServerConn) {
	return func(c *ServerConn) {
		if _, err := c.readRequestDrained(); err != nil {
			c.failUnlessHangUp(err)
			return
		}
		hangUp(c, rst)
	}
}

// Bodies sent by HangUpMidBody before it hangs up.
const (
	// MidBodyChunk is each of the three chunks sent with chunked set.
	MidBodyChunk = "0123456789"
	// MidBodyLength is the Content-Length announced without chunked, of
	// which only MidBodySent bytes ('x') are sent.
	MidBodyLength = 1000
	MidBodySent   = 100
)

// HangUpMidBody returns a handler that reads a request, sends a 200
// response head and part of the body, and then closes the connection with a
// FIN, or an RST if rst is set. With chunked, the head says
// Transfer-Encoding: chunked and three chunks of MidBodyChunk follow, with
// no last chunk; otherwise it says Content-Length: MidBodyLength and
// MidBodySent bytes follow. Either way the response is provably truncated.
func HangUpMidBody(chunked, rst bool) func(*ServerConn) {
	var resp string
	if chunked {
		chunk := fmt.Sprintf("%x\r\n%s\r\n", len(MidBodyChunk), MidBodyChunk)
		resp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n" +
			strings.Repeat(chunk, 3)
	} else {
		resp = fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s",
			MidBodyLength, strings.Repeat("x", MidBodySent))
	}
	return func(c *ServerConn) {
		if _, err := c.readRequestDrained(); err != nil {
			c.failUnlessHangUp(err)
			return
		}
		// TCP_NODELAY (Go's default) makes the write leave before the
		// close, so the peer receives the partial body even with an RST.
		if err := c.Write(resp); err != nil {
			c.failUnlessHangUp(err)
			return
		}
		hangUp(c, rst)
	}
}

// StreamUntilClosed returns a handler that reads a request, sends a chunked
// 200 response head, and then one chunk ("i\n" for i = 0, 1, …) at once and
// every interval until a write fails or the Upstream shuts down. It records
// successful chunk writes (ConnRecord.Writes), the time of the first failing
// write (WriteFailed), and — from a concurrent reader — the time and kind of
// the peer's close (PeerClosed, PeerClose). After a FIN the next write
// usually still succeeds and the one after fails, so WriteFailed lags
// PeerClosed by up to two intervals.
func StreamUntilClosed(interval time.Duration) func(*ServerConn) {
	return func(c *ServerConn) {
		if _, err := c.readRequestDrained(); err != nil {
			c.failUnlessHangUp(err)
			return
		}
		var wg sync.WaitGroup
		defer wg.Wait()
		defer c.Conn.Close() // stops watchPeerClose
		if !c.streamWrite("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n") {
			return
		}
		wg.Go(c.watchPeerClose)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; ; i++ {
			line := fmt.Sprintf("%d\n", i)
			if !c.streamWrite(fmt.Sprintf("%x\r\n%s\r\n", len(line), line)) {
				return
			}
			c.update(func(r *ConnRecord) { r.Writes++ })
			select {
			case <-tick.C:
			case <-c.stop:
				return
			}
		}
	}
}

// streamWrite writes s and reports whether it succeeded, recording the time
// of a failure that was not our own close.
func (c *ServerConn) streamWrite(s string) bool {
	err := c.Write(s)
	if err == nil {
		return true
	}
	at := time.Now()
	if !errors.Is(err, net.ErrClosed) {
		c.update(func(r *ConnRecord) {
			if r.WriteFailed.IsZero() {
				r.WriteFailed = at
			}
		})
	}
	return false
}

// watchPeerClose records when the peer closes the connection. It runs
// beside StreamUntilClosed's writer, which bounds it by closing the conn
// when it stops; hence the generous deadline.
func (c *ServerConn) watchPeerClose() {
	_, _, _ = c.WaitPeerClose(time.Hour)
}

// readRequestDrained reads a request and its whole body.
func (c *ServerConn) readRequestDrained() (*http.Request, error) {
	req, err := c.ReadRequest()
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(io.Discard, req.Body); err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	return req, nil
}

// failUnlessHangUp records err unless it is the peer hanging up (a read
// failure is already recorded as such; a write fails with EPIPE) or the
// Upstream closing the conn.
func (c *ServerConn) failUnlessHangUp(err error) {
	if classifyRead(err) != 0 || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
		return
	}
	c.fail(err)
}

func hangUp(c *ServerConn, rst bool) {
	if rst {
		c.Reset()
		return
	}
	c.CloseFIN()
}
