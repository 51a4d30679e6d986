package proxy_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fastUpstream answers every request with its method, path, body length
// and the value of X-Probe; /big answers 10,000 bytes with no declared
// length, /small "tiny" with no declared length.
func fastUpstream(t *testing.T) string {
	return newH1Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/big":
			w.(http.Flusher).Flush() // no Content-Length
			w.Write([]byte(strings.Repeat("b", 10000)))
			return
		case "/small":
			w.(http.Flusher).Flush()
			io.WriteString(w, "tiny")
			return
		case "/trailer":
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "with trailer")
			w.Header().Set("X-Sum", "42")
			return
		}
		io.WriteString(w, r.Method+" "+r.URL.Path+" "+strconv.Itoa(len(body))+" "+r.Header.Get("X-Probe")+" "+r.Header.Get("X-Trail"))
	}))
}

// rawConn is a caller speaking HTTP/1.1 bytes on a socket.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (rc *rawConn) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatal(err)
	}
}

// read reads one response to a request with method.
func (rc *rawConn) read(method string) (*http.Response, string) {
	rc.t.Helper()
	res, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		rc.t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		rc.t.Fatalf("read body: %v", err)
	}
	return res, string(b)
}

// closedByPeer reports whether the proxy closed the connection.
func (rc *rawConn) closedByPeer() bool {
	rc.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := rc.br.ReadByte()
	return err == io.EOF
}

func TestFastPathWire(t *testing.T) {
	h := start(t, "", routeOpts{upstream: fastUpstream(t)})
	t.Run("pipelined requests are answered in order", func(t *testing.T) {
		rc := dialRaw(t, h.addr)
		rc.send("GET /one HTTP/1.1\r\nHost: x\r\nX-Probe: 1\r\n\r\nPOST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-Probe: 2\r\n\r\nhelloGET /three HTTP/1.1\r\nHost: x\r\n\r\n")
		for _, want := range []string{"GET /one 0 1 ", "POST /two 5 2 ", "GET /three 0  "} {
			method, _, _ := strings.Cut(want, " ")
			if _, body := rc.read(method); body != want {
				t.Errorf("body %q, want %q", body, want)
			}
		}
	})
	t.Run("chunked request body with trailers", func(t *testing.T) {
		rc := dialRaw(t, h.addr)
		rc.send("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Trail\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\nX-Trail: t\r\n\r\n")
		if _, body := rc.read("POST"); body != "POST /c 7  " {
			t.Errorf("body %q", body)
		}
	})
	t.Run("HTTP/1.0 without keep-alive ends the connection", func(t *testing.T) {
		rc := dialRaw(t, h.addr)
		rc.send("GET /old HTTP/1.0\r\n\r\n")
		res, body := rc.read("GET")
		if body != "GET /old 0  " || res.ContentLength != int64(len(body)) {
			t.Errorf("body %q, length %d", body, res.ContentLength)
		}
		if !rc.closedByPeer() {
			t.Error("connection left open")
		}
	})
	t.Run("HTTP/1.0 keep-alive stays open", func(t *testing.T) {
		rc := dialRaw(t, h.addr)
		for range 2 {
			rc.send("GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
			res, _ := rc.read("GET")
			if res.Header.Get("Connection") != "keep-alive" {
				t.Fatalf("Connection %q", res.Header.Get("Connection"))
			}
		}
	})
	t.Run("Connection: close is honoured", func(t *testing.T) {
		rc := dialRaw(t, h.addr)
		rc.send("GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		res, _ := rc.read("GET")
		if !res.Close {
			t.Error("response does not say Connection: close")
		}
		if !rc.closedByPeer() {
			t.Error("connection left open")
		}
	})
	t.Run("HEAD has no body", func(t *testing.T) {
		rc := dialRaw(t, h.addr)
		rc.send("HEAD /x HTTP/1.1\r\nHost: x\r\n\r\nGET /y HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, body := rc.read("HEAD"); body != "" {
			t.Errorf("HEAD body %q", body)
		}
		if _, body := rc.read("GET"); body != "GET /y 0  " {
			t.Errorf("next body %q", body)
		}
	})
	t.Run("framing of responses without a length", func(t *testing.T) {
		rc := dialRaw(t, h.addr)
		rc.send("GET /small HTTP/1.1\r\nHost: x\r\n\r\nGET /big HTTP/1.1\r\nHost: x\r\n\r\nGET /trailer HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n")
		res, body := rc.read("GET")
		if body != "tiny" || len(res.TransferEncoding) != 1 {
			t.Errorf("small: %q, TE %v (the upstream flushed, so it is chunked)", body, res.TransferEncoding)
		}
		res, body = rc.read("GET")
		if len(body) != 10000 || len(res.TransferEncoding) != 1 {
			t.Errorf("big: %d bytes, TE %v", len(body), res.TransferEncoding)
		}
		res, body = rc.read("GET")
		if body != "with trailer" || res.Trailer.Get("X-Sum") != "42" {
			t.Errorf("trailer: %q, trailers %v", body, res.Trailer)
		}
	})
	t.Run("a head with bare LF goes to net/http", func(t *testing.T) {
		rc := dialRaw(t, h.addr)
		rc.send("GET /lf HTTP/1.1\nHost: x\n\n")
		if _, body := rc.read("GET"); body != "GET /lf 0  " {
			t.Errorf("body %q", body)
		}
	})
	t.Run("a head larger than the buffer goes to net/http", func(t *testing.T) {
		rc := dialRaw(t, h.addr)
		rc.send("GET /big-head HTTP/1.1\r\nHost: x\r\nX-Probe: " + strings.Repeat("p", 13000) + "\r\n\r\n")
		if res, _ := rc.read("GET"); res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("status %d, want 431 (max_header_bytes is 8KiB, and net/http allows 4KiB more)", res.StatusCode)
		}
		// net/http half-closes, then lingers half a second before it
		// closes; wait, so its goroutine is gone when the leak check runs.
		if !rc.closedByPeer() {
			t.Error("connection left open")
		}
		time.Sleep(600 * time.Millisecond)
	})
	t.Run("a request net/http refuses gets its answer", func(t *testing.T) {
		for _, req := range []string{
			"GET /x HTTP/1.1\r\n\r\n",                       // no Host
			"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", // two
			"GET /x HTTP/1.1\r\nHost: a b\r\n\r\n",          // bad Host
			"GET /x HTTP/1.1\r\nHost: a\r\nBad Name: v\r\n\r\n",
			"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
		} {
			rc := dialRaw(t, h.addr)
			rc.send(req)
			if res, _ := rc.read("GET"); res.StatusCode != http.StatusBadRequest {
				t.Errorf("%q: status %d, want 400", req, res.StatusCode)
			}
		}
	})
	t.Run("a request after a hand-off is served by net/http", func(t *testing.T) {
		rc := dialRaw(t, h.addr)
		rc.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
		rc.read("GET")
		rc.send("GET /b HTTP/1.1\nHost: x\n\n") // bare LF: handed over
		rc.read("GET")
		rc.send("GET /c HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, body := rc.read("GET"); body != "GET /c 0  " {
			t.Errorf("body %q", body)
		}
	})
}
