package proxy_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/hanguptest"
	"github.com/switchboard-proxy/switchboard/internal/proxy"
)

// longBody is n bytes that differ from one offset to the next, so that a
// lost or repeated piece shows.
func longBody(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// serveLong answers every request on the connection with body, declared
// by Content-Length, until the connection ends.
func serveLong(body []byte) func(*hanguptest.ServerConn) {
	return func(c *hanguptest.ServerConn) {
		for {
			if _, err := c.ReadRequest(); err != nil {
				return
			}
			c.Conn.SetWriteDeadline(time.Now().Add(hanguptest.Timeout))
			fmt.Fprintf(c.Conn, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(body))
			if _, err := c.Conn.Write(body); err != nil {
				return
			}
		}
	}
}

// A long response body of declared length goes from socket to socket
// (splice) on the fast path: it arrives whole, the access log counts it,
// and the upstream connection carries the next request.
func TestSpliceLongBody(t *testing.T) {
	for _, n := range []int{64 << 10, 1<<20 + 3, 5 << 20} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			body := longBody(n)
			up := hanguptest.NewUpstream(t, serveLong(body))
			h := start(t, "", routeOpts{upstream: up.URL})
			c := h1Client(t)
			before := proxy.SplicedBytesForTest()
			for i := range 3 {
				path := fmt.Sprintf("/long/%d", i)
				res := get(t, c, h.url(path))
				got, err := io.ReadAll(res.Body)
				res.Body.Close()
				if err != nil || !bytes.Equal(got, body) {
					t.Fatalf("request %d: read %d of %d bytes (equal: %v), err %v", i, len(got), n, bytes.Equal(got, body), err)
				}
				wantLog(t, h.logs.next(t, path), map[string]any{"status": 200, "side": "none", "bytes_out": n})
			}
			// All but what came with the head, and what the first read
			// took, went through the pipe.
			if spliced := proxy.SplicedBytesForTest() - before; spliced < int64(3*(n-32<<10)) {
				t.Errorf("spliced %d bytes of %d", spliced, 3*n)
			}
			if a := up.Accepted(); a != 1 {
				t.Errorf("upstream accepted %d connections for 3 requests, want 1 (reused after the body)", a)
			}
		})
	}
}

// Rule R4 while the body is spliced: an upstream that dies part-way makes
// the caller see an abort, and the log blames the upstream.
func TestSpliceUpstreamHangUp(t *testing.T) {
	for _, rst := range []bool{false, true} {
		t.Run(fmt.Sprint("rst=", rst), func(t *testing.T) {
			body := longBody(1 << 20)
			up := hanguptest.NewUpstream(t, func(c *hanguptest.ServerConn) {
				if _, err := c.ReadRequest(); err != nil {
					return
				}
				c.Conn.SetWriteDeadline(time.Now().Add(hanguptest.Timeout))
				fmt.Fprintf(c.Conn, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", 4*len(body))
				c.Conn.Write(body)
				if rst {
					c.Reset()
				} else {
					c.CloseFIN()
				}
			})
			h := start(t, "", routeOpts{upstream: up.URL})
			before := proxy.SplicedBytesForTest()
			wantAbort(t, h1Client(t), h.url("/cut"))
			wantLog(t, h.logs.next(t, "/cut"), map[string]any{"side": "upstream", "phase": "stream_response",
				"action": "reset_caller", "proxy_status": "http_response_incomplete"})
			if proxy.SplicedBytesForTest() == before {
				t.Errorf("nothing was spliced: the test did not reach the path it is for")
			}
		})
	}
}

// Rule R1 while the body is spliced: a caller who hangs up (RST, or FIN
// and then reading on) gets the upstream connection closed at once, and
// the log says caller, stream_response.
func TestSpliceCallerHangUp(t *testing.T) {
	for _, hk := range hangUpKinds {
		t.Run(hk.name, func(t *testing.T) {
			chunk := longBody(64 << 10)
			up := hanguptest.NewUpstream(t, func(c *hanguptest.ServerConn) {
				if _, err := c.ReadRequest(); err != nil {
					return
				}
				c.Conn.SetWriteDeadline(time.Now().Add(hanguptest.Timeout))
				fmt.Fprintf(c.Conn, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", 1<<30)
				for {
					if _, err := c.Conn.Write(chunk); err != nil {
						return // the proxy closed the connection
					}
				}
			})
			h := start(t, "", routeOpts{upstream: up.URL})
			before := proxy.SplicedBytesForTest()
			c := hanguptest.Dial(t, h.addr)
			c.Send("GET /big HTTP/1.1\r\nHost: app\r\n\r\n")
			res, err := c.ReadResponse("GET")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.CopyN(io.Discard, res.Body, 1<<20); err != nil {
				t.Fatal(err)
			}
			sc := recv(t, up.Conns(), "upstream connection")
			if proxy.SplicedBytesForTest() == before {
				t.Fatalf("nothing was spliced: the test did not reach the path it is for")
			}
			if hk.rst {
				c.Reset()
			} else {
				// A full close with bytes unread would send an RST:
				// half-close, and read on until the proxy closes.
				c.Conn.(*net.TCPConn).CloseWrite()
				if _, _, err := c.ReadUntilClosed(wait); err != nil {
					t.Fatalf("caller after its FIN: %v", err)
				}
			}
			closed(t, sc.Done(), "upstream connection closed")
			wantLog(t, h.logs.next(t, "/big"), map[string]any{"status": 499, "side": "caller",
				"phase": "stream_response", "kind": hk.kind, "action": "aborted_upstream"})
		})
	}
}

// The idle-body timeout times the upstream, not the caller: a caller that
// stops reading for longer than idle_body, while the upstream has long
// sent everything, still gets the whole body, spliced or copied.
func TestIdleBodyTimesOnlyTheUpstream(t *testing.T) {
	body := longBody(8 << 20)
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprint("chunked=", chunked), func(t *testing.T) {
			up := hanguptest.NewUpstream(t, func(c *hanguptest.ServerConn) {
				if _, err := c.ReadRequest(); err != nil {
					return
				}
				c.Conn.SetWriteDeadline(time.Now().Add(hanguptest.Timeout))
				if chunked {
					fmt.Fprintf(c.Conn, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n", len(body))
					c.Conn.Write(body)
					io.WriteString(c.Conn, "\r\n0\r\n\r\n")
				} else {
					fmt.Fprintf(c.Conn, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(body))
					c.Conn.Write(body)
				}
				c.WaitPeerClose(hanguptest.Timeout)
			})
			h := start(t, "", routeOpts{upstream: up.URL, extra: "    timeouts:\n      idle_body: 200ms\n"})
			c := hanguptest.Dial(t, h.addr)
			c.Send("GET /slow HTTP/1.1\r\nHost: app\r\n\r\n")
			res, err := c.ReadResponse("GET")
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(600 * time.Millisecond) // the proxy's writes block meanwhile
			got, err := io.ReadAll(res.Body)
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("read %d of %d bytes (equal: %v), err %v", len(got), len(body), bytes.Equal(got, body), err)
			}
			wantLog(t, h.logs.next(t, "/slow"), map[string]any{"status": 200, "side": "none"})
		})
	}
}
