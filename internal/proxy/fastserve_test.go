package proxy_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/hanguptest"
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
	t.Run("a head larger than max_header_bytes gets 431", func(t *testing.T) {
		rc := dialRaw(t, h.addr)
		rc.send("GET /big-head HTTP/1.1\r\nHost: x\r\nX-Probe: " + strings.Repeat("p", 9000) + "\r\n\r\n")
		if res, _ := rc.read("GET"); res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("status %d, want 431 (max_header_bytes is 8KiB)", res.StatusCode)
		}
		if !rc.closedByPeer() {
			t.Error("connection left open")
		}
	})
	t.Run("a head larger than the pooled buffer is still served", func(t *testing.T) {
		h := startListener(t, "max_header_bytes: 64KiB", "", routeOpts{upstream: fastUpstream(t)})
		rc := dialRaw(t, h.addr)
		probe := strings.Repeat("p", 30000)
		for range 2 {
			rc.send("GET /big-head HTTP/1.1\r\nHost: x\r\nX-Probe: " + probe + "\r\n\r\n")
			if _, body := rc.read("GET"); body != "GET /big-head 0 "+probe+" " {
				t.Fatalf("body of %d bytes, want the probe back", len(body))
			}
		}
	})
	t.Run("a request net/http hands over is served to the end", func(t *testing.T) {
		rc := dialRaw(t, h.addr)
		rc.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
		rc.read("GET")
		rc.send("POST /b HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
		if res, _ := rc.read("POST"); res.StatusCode != http.StatusContinue {
			t.Fatalf("status %d, want 100 Continue from net/http", res.StatusCode)
		}
		rc.send("hi")
		if _, body := rc.read("POST"); body != "POST /b 2  " {
			t.Errorf("body %q", body)
		}
		rc.send("GET /c HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, body := rc.read("GET"); body != "GET /c 0  " {
			t.Errorf("body %q", body)
		}
	})
}

// TestFastPathRefuses sends request heads the fast path must refuse: what
// net/http's server refuses, and the request-smuggling ambiguities it
// would re-frame. Each gets its 4xx or 5xx, the connection closes, and the
// upstream sees nothing.
func TestFastPathRefuses(t *testing.T) {
	var seen atomic.Int32
	up := newH1Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
	}))
	h := start(t, "", routeOpts{upstream: up})
	for _, tc := range []struct {
		name, req string
		status    int
	}{
		{"no Host", "GET /x HTTP/1.1\r\n\r\n", 400},
		{"two Hosts", "GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"bad Host", "GET /x HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"space in a field name", "GET /x HTTP/1.1\r\nHost: a\r\nBad Name: v\r\n\r\n", 400},
		{"space before the colon", "GET /x HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n", 400},
		{"bad Content-Length", "GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", 400},
		{"CL.TE", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", 400},
		{"TE.CL", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n", 400},
		{"two Content-Lengths", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello", 400},
		{"obfuscated TE", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501},
		{"TE list", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400},
		{"obs-fold", "GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400},
		{"obs-fold TE", "POST /x HTTP/1.1\r\nHost: a\r\nX-A: b\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"bare LF", "GET /x HTTP/1.1\nHost: a\n\n", 400},
		{"bare CR", "GET /x HTTP/1.1\r\nHost: a\rX-B: c\r\n\r\n", 400},
		{"NUL in a value", "GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n", 400},
		{"HTTP/1.2", "GET /x HTTP/1.2\r\nHost: a\r\n\r\n", 505},
		{"two spaces", "GET  /x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, h.addr)
			rc.send(tc.req)
			res, _ := rc.read("GET")
			if res.StatusCode != tc.status {
				t.Errorf("status %d, want %d", res.StatusCode, tc.status)
			}
			if !rc.closedByPeer() {
				t.Error("connection left open")
			}
		})
	}
	if n := seen.Load(); n != 0 {
		t.Errorf("the upstream saw %d requests", n)
	}
}

// TestAmbiguousUpstreamResponse: an upstream response whose framing is
// ambiguous is refused, not passed on; the caller gets a 502 and the log
// says why.
func TestAmbiguousUpstreamResponse(t *testing.T) {
	up := hanguptest.NewUpstream(t, func(c *hanguptest.ServerConn) {
		if _, err := c.ReadRequest(); err != nil {
			return
		}
		c.Write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
		c.WaitPeerClose(hanguptest.Timeout)
	})
	h := start(t, "", routeOpts{upstream: up.URL})
	res, err := http.Get(h.url("/ambiguous"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadGateway || !strings.Contains(res.Header.Get("Proxy-Status"), "error=") {
		t.Errorf("status %d, Proxy-Status %q; want 502 with an error", res.StatusCode, res.Header.Get("Proxy-Status"))
	}
	wantLog(t, h.logs.next(t, "/ambiguous"), map[string]any{"status": 502.0, "side": "upstream", "kind": "unknown"})
}

// TestFastPathHangUpAfterAnswer: once a request is answered, the R1
// watcher reads on as the connection's idle wait. A caller hanging up then
// must end only its own connection, never cancel a request that reused
// the answered one's pooled state: callers that take an answer and hang
// up (FIN or RST) churn while another caller's slow requests, started
// just after, must all succeed.
func TestFastPathHangUpAfterAnswer(t *testing.T) {
	up := newH1Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(20 * time.Millisecond)
		}
		io.WriteString(w, r.URL.Path)
	}))
	h := start(t, "", routeOpts{upstream: up})
	var done atomic.Bool
	churned := make(chan int)
	for i := range 4 {
		go func() {
			n := 0
			defer func() { churned <- n }()
			for ; n < 2000 && !done.Load(); n++ {
				c, err := net.Dial("tcp", h.addr)
				if err != nil {
					t.Error(err)
					return
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if i%2 == 0 {
					c.(*net.TCPConn).SetLinger(0) // close with RST
				}
				io.WriteString(c, "GET /quick HTTP/1.1\r\nHost: x\r\n\r\n")
				res, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err == nil {
					_, err = io.ReadAll(res.Body)
				}
				c.Close()
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	c := h1Client(t)
	for range 30 {
		res, err := c.Get(h.url("/slow"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || string(body) != "/slow" {
			t.Fatalf("slow request: %d %q", res.StatusCode, body)
		}
	}
	done.Store(true)
	total := 0
	for range 4 {
		total += <-churned
	}
	t.Logf("%d answered callers hung up meanwhile", total)
}
