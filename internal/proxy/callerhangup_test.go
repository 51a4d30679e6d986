package proxy_test

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/hanguptest"
)

// hangUp closes the caller's connection with a FIN or an RST.
func hangUp(c *hanguptest.Caller, rst bool) {
	if rst {
		c.Reset()
	} else {
		c.CloseFIN()
	}
}

var hangUpKinds = []struct {
	name string
	rst  bool
	kind string
	peer hanguptest.PeerClose
}{
	{"FIN", false, "fin", hanguptest.PeerFIN},
	{"RST", true, "reset", hanguptest.PeerRST},
}

// Rule R1: a caller who hangs up while switchboard awaits the upstream's
// response headers makes switchboard close the upstream connection at once;
// nothing is written to the caller; the log says 499, caller, await_headers.
func TestCallerHangUpAwaitingHeaders(t *testing.T) {
	for _, hk := range hangUpKinds {
		t.Run(hk.name, func(t *testing.T) {
			up := hanguptest.NewUpstream(t, hanguptest.Stall())
			h := start(t, "", routeOpts{upstream: up.URL})
			c := hanguptest.Dial(t, h.addr)
			c.Send("GET /await HTTP/1.1\r\nHost: app\r\n\r\n")
			sc := recv(t, up.Conns(), "upstream connection")
			closed(t, sc.FirstRequest(), "request at the upstream")
			hangUp(c, hk.rst)
			closed(t, sc.Done(), "upstream connection closed")
			if rec := sc.Record(); rec.PeerClosed.IsZero() {
				t.Fatalf("upstream never saw its connection close: %+v", rec)
			}
			rec := h.logs.next(t, "/await")
			wantLog(t, rec, map[string]any{"status": 499, "side": "caller", "phase": "await_headers",
				"kind": hk.kind, "action": "aborted_upstream"})
			if _, ok := rec["abort_ms"]; !ok {
				t.Errorf("no abort_ms in %v", rec)
			}
		})
	}
}

// Rule R1 while the response streams: the upstream connection is closed and
// the upstream's writes start failing.
func TestCallerHangUpStreaming(t *testing.T) {
	for _, hk := range hangUpKinds {
		t.Run(hk.name, func(t *testing.T) {
			up := hanguptest.NewUpstream(t, hanguptest.StreamUntilClosed(5*time.Millisecond))
			h := start(t, "", routeOpts{upstream: up.URL})
			c := hanguptest.Dial(t, h.addr)
			c.Send("GET /stream HTTP/1.1\r\nHost: app\r\n\r\n")
			res, err := c.ReadResponse("GET")
			if err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(res.Body).ReadString('\n')
			if err != nil || line != "0\n" {
				t.Fatalf("first chunk = %q, %v", line, err)
			}
			sc := recv(t, up.Conns(), "upstream connection")
			hangUp(c, hk.rst)
			closed(t, sc.Done(), "upstream stream stopped")
			if rec := sc.Record(); rec.WriteFailed.IsZero() && rec.PeerClosed.IsZero() {
				t.Fatalf("upstream never noticed: %+v", rec)
			}
			rec := h.logs.next(t, "/stream")
			wantLog(t, rec, map[string]any{"status": 499, "side": "caller", "phase": "stream_response",
				"kind": hk.kind, "action": "aborted_upstream"})
		})
	}
}

// Rule R1 while the caller is still sending its request body.
func TestCallerHangUpSendingBody(t *testing.T) {
	for _, hk := range hangUpKinds {
		t.Run(hk.name, func(t *testing.T) {
			got := make(chan *hanguptest.ServerConn, 1)
			up := hanguptest.NewUpstream(t, func(sc *hanguptest.ServerConn) {
				req, err := sc.ReadRequest()
				if err != nil {
					return
				}
				if _, err := io.ReadFull(req.Body, make([]byte, 1000)); err != nil {
					return
				}
				got <- sc
				sc.WaitPeerClose(wait)
			})
			h := start(t, "", routeOpts{upstream: up.URL})
			c := hanguptest.Dial(t, h.addr)
			c.Send("POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("b", 1000))
			sc := recv(t, got, "first part of the body at the upstream")
			hangUp(c, hk.rst)
			closed(t, sc.Done(), "upstream connection closed")
			rec := h.logs.next(t, "/upload")
			wantLog(t, rec, map[string]any{"status": 499, "side": "caller", "phase": "send_request",
				"kind": hk.kind, "action": "aborted_upstream"})
			if n, _ := rec["bytes_in"].(float64); n < 1000 {
				t.Errorf("bytes_in = %v, want >= 1000", rec["bytes_in"])
			}
		})
	}
}

// A caller still connected whose body does not parse gets 400, and the
// upstream request, already under way, is aborted. Nobody hung up: the
// record says so (kind unknown, no abort_ms).
func TestMalformedRequestBody(t *testing.T) {
	got := make(chan *hanguptest.ServerConn, 1)
	up := hanguptest.NewUpstream(t, func(sc *hanguptest.ServerConn) {
		req, err := sc.ReadRequest()
		if err != nil {
			return
		}
		if _, err := io.ReadFull(req.Body, make([]byte, 5)); err != nil {
			return
		}
		got <- sc
		sc.WaitPeerClose(wait)
	})
	h := start(t, "", routeOpts{upstream: up.URL})
	c := hanguptest.Dial(t, h.addr)
	c.Send("POST /chunks HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
	sc := recv(t, got, "first chunk at the upstream")
	c.Send("zz\r\n")
	res, err := c.ReadResponse("POST")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || !res.Close {
		t.Fatalf("status %d, close %v; want 400 and Connection: close", res.StatusCode, res.Close)
	}
	closed(t, sc.Done(), "upstream connection closed")
	if rec := sc.Record(); rec.PeerClosed.IsZero() {
		t.Fatalf("upstream never saw its connection close: %+v", rec)
	}
	rec := h.logs.next(t, "/chunks")
	wantLog(t, rec, map[string]any{"status": 400, "side": "caller", "phase": "send_request",
		"kind": "unknown", "action": "aborted_upstream", "detail": "malformed request body", "level": "INFO"})
	if _, ok := rec["abort_ms"]; ok {
		t.Errorf("abort_ms in %v: the caller did not hang up", rec)
	}
}

// Rule R1 while the upstream connection is still being made: the upstream
// accepts TCP but never completes the TLS handshake; when the caller leaves,
// the half-made connection is closed rather than finished in the
// background.
func TestCallerHangUpConnecting(t *testing.T) {
	for _, hk := range hangUpKinds {
		t.Run(hk.name, func(t *testing.T) {
			peerClosed := make(chan time.Time, 1)
			accepted := make(chan struct{})
			up := hanguptest.NewUpstream(t, func(sc *hanguptest.ServerConn) {
				close(accepted)
				at, _, err := sc.WaitPeerClose(wait)
				if err == nil {
					peerClosed <- at
				}
			})
			h := start(t, "", routeOpts{
				upstream:  "https://" + up.Addr,
				poolExtra: "    tls:\n      insecure_skip_verify: true\n",
			})
			c := hanguptest.Dial(t, h.addr)
			c.Send("GET /connect HTTP/1.1\r\nHost: app\r\n\r\n")
			closed(t, accepted, "TCP connection at the upstream")
			hangUp(c, hk.rst)
			recv(t, peerClosed, "the half-made upstream connection to close")
			rec := h.logs.next(t, "/connect")
			wantLog(t, rec, map[string]any{"status": 499, "side": "caller", "phase": "connect",
				"kind": hk.kind, "action": "aborted_upstream"})
		})
	}
}

// Rule R1 over HTTP/2: a caller's RST_STREAM (context cancelled) aborts the
// upstream request, over an HTTP/1.1 and over an HTTP/2 upstream.
func TestCallerCancelsHTTP2Stream(t *testing.T) {
	upstreams := []struct {
		name     string
		protocol string
		server   func(t *testing.T, h http.Handler) string
	}{
		{"h1-upstream", "http1", func(t *testing.T, h http.Handler) string { return newH1Server(t, h) }},
		{"h2c-upstream", "h2c", func(t *testing.T, h http.Handler) string { return hanguptest.NewH2CServer(t, h).URL }},
	}
	for _, u := range upstreams {
		t.Run(u.name, func(t *testing.T) {
			recd := hanguptest.NewRecorder()
			url := u.server(t, recd.Wrap(hanguptest.SlowHandler(time.Minute)))
			h := start(t, "", routeOpts{upstream: url, protocol: u.protocol})
			ctx, cancel := ctxWithCancel(t)
			req, _ := http.NewRequestWithContext(ctx, "GET", h.url("/h2cancel"), nil)
			errc := make(chan error, 1)
			go func() {
				res, err := h2cClient(t).Do(req)
				if err == nil {
					res.Body.Close()
				}
				errc <- err
			}()
			recv(t, recd.Started(), "request at the upstream")
			cancel()
			ended := recv(t, recd.Ended(), "upstream handler to end")
			if ended.CtxDone.IsZero() {
				t.Fatalf("upstream request context never ended: %+v", ended)
			}
			if err := recv(t, errc, "client"); err == nil {
				t.Fatal("cancelled request succeeded")
			}
			rec := h.logs.next(t, "/h2cancel")
			wantLog(t, rec, map[string]any{"status": 499, "side": "caller", "phase": "await_headers",
				"kind": "reset", "action": "aborted_upstream", "proto": "HTTP/2.0"})
		})
	}
}

// A route with ignore_client_abort lets the upstream finish when the caller
// leaves, and logs that it did.
func TestIgnoreClientAbort(t *testing.T) {
	recd := hanguptest.NewRecorder()
	url := newH1Server(t, recd.Wrap(hanguptest.SlowHandler(200*time.Millisecond)))
	h := start(t, "", routeOpts{upstream: url, extra: "    ignore_client_abort: true\n"})
	c := hanguptest.Dial(t, h.addr)
	c.Send("GET /finish HTTP/1.1\r\nHost: app\r\n\r\n")
	recv(t, recd.Started(), "request at the upstream")
	c.Reset()
	ended := recv(t, recd.Ended(), "upstream handler to end")
	if !ended.CtxDone.IsZero() {
		t.Fatalf("upstream was aborted although the route ignores client aborts: %+v", ended)
	}
	rec := h.logs.next(t, "/finish")
	wantLog(t, rec, map[string]any{"status": 499, "side": "caller", "kind": "reset",
		"action": "ok", "ignored_abort": true})
}
