package proxy_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-proxy/switchboard/internal/hanguptest"
)

// An upstream that refuses or hangs up before any response byte gets the
// caller a 502 at once, with a Proxy-Status naming what happened.
func TestUpstreamFailsBeforeHeaders(t *testing.T) {
	cases := []struct {
		name        string
		upstream    func(t *testing.T) string
		proxyStatus string
		kind, phase string
	}{
		{"refused", func(t *testing.T) string { return "http://" + refusedAddr(t) }, "connection_refused", "refused", "connect"},
		{"FIN", func(t *testing.T) string { return hanguptest.NewUpstream(t, hanguptest.HangUpBeforeHeaders(false)).URL },
			"connection_terminated", "fin", "await_headers"},
		{"RST", func(t *testing.T) string { return hanguptest.NewUpstream(t, hanguptest.HangUpBeforeHeaders(true)).URL },
			"connection_terminated", "reset", "await_headers"},
	}
	for _, tc := range cases {
		run(t, func(t *testing.T, m mode) {
			t.Run(tc.name, func(t *testing.T) {
				h := start(t, "", routeOpts{upstream: tc.upstream(t)})
				res, err := m.client(t).Post(h.url("/fail"), "text/plain", strings.NewReader("payload"))
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusBadGateway {
					t.Fatalf("status = %d, want 502", res.StatusCode)
				}
				ps := res.Header.Get("Proxy-Status")
				if !strings.HasPrefix(ps, "switchboard; error="+tc.proxyStatus+";") {
					t.Errorf("Proxy-Status = %q, want error=%s", ps, tc.proxyStatus)
				}
				if !strings.Contains(string(body), "upstream") {
					t.Errorf("body %q does not say what happened", body)
				}
				wantLog(t, h.logs.next(t, "/fail"), map[string]any{"status": 502, "side": "upstream",
					"kind": tc.kind, "phase": tc.phase, "action": "answered_5xx", "proxy_status": tc.proxyStatus})
			})
		})
	}
}

// Rule R4: an upstream that dies in the middle of the body makes the caller
// see an abort, never a response that looks complete.
func TestUpstreamHangUpMidBody(t *testing.T) {
	cases := []struct {
		name     string
		upstream func(t *testing.T) (url, protocol string)
	}{
		{"h1-chunked-FIN", rawMidBody(true, false)},
		{"h1-chunked-RST", rawMidBody(true, true)},
		{"h1-length-FIN", rawMidBody(false, false)},
		{"h1-length-RST", rawMidBody(false, true)},
		{"h2c-stream-reset", func(t *testing.T) (string, string) {
			return hanguptest.NewH2CServer(t, abortMidBody(true)).URL, "h2c"
		}},
		{"h2c-length-reset", func(t *testing.T) (string, string) {
			return hanguptest.NewH2CServer(t, abortMidBody(false)).URL, "h2c"
		}},
	}
	for _, tc := range cases {
		run(t, func(t *testing.T, m mode) {
			t.Run(tc.name, func(t *testing.T) {
				url, proto := tc.upstream(t)
				h := start(t, "", routeOpts{upstream: url, protocol: proto})
				wantAbort(t, m.client(t), h.url("/midbody"))
				wantLog(t, h.logs.next(t, "/midbody"), map[string]any{"side": "upstream",
					"phase": "stream_response", "action": "reset_caller", "proxy_status": "http_response_incomplete"})
			})
		})
	}
}

// wantAbort gets url and requires the exchange to end in an abort: either
// the connection or stream ends before the response head (which was still
// buffered in switchboard when the upstream died), or the body read fails.
// A clean but truncated response fails the test.
func wantAbort(t *testing.T, c *http.Client, url string) {
	t.Helper()
	res, err := c.Get(url)
	if err != nil {
		return
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err == nil {
		t.Fatalf("caller read a complete-looking response (status %d, %d bytes); want an abort", res.StatusCode, len(body))
	}
}

func rawMidBody(chunked, rst bool) func(t *testing.T) (string, string) {
	return func(t *testing.T) (string, string) {
		return hanguptest.NewUpstream(t, hanguptest.HangUpMidBody(chunked, rst)).URL, "http1"
	}
}

// abortMidBody is an HTTP/2 upstream handler that sends part of a body and
// then resets the stream.
func abortMidBody(chunked bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !chunked {
			w.Header().Set("Content-Length", "1000")
		}
		w.WriteHeader(200)
		fmt.Fprint(w, strings.Repeat("x", 100))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
}

// Rule R5: each timeout answers 504 (or aborts the caller once headers went
// out) and closes the upstream connection.
func TestTimeouts(t *testing.T) {
	t.Run("response_header", func(t *testing.T) {
		up := hanguptest.NewUpstream(t, hanguptest.Stall())
		h := start(t, "", routeOpts{upstream: up.URL, extra: "    timeouts:\n      response_header: 100ms\n"})
		res := get(t, h1Client(t), h.url("/rht"))
		want504(t, res, "http_response_timeout")
		sc := recv(t, up.Conns(), "upstream connection")
		closed(t, sc.Done(), "upstream connection closed")
		wantLog(t, h.logs.next(t, "/rht"), map[string]any{"status": 504, "side": "upstream",
			"kind": "timeout", "phase": "await_headers", "action": "answered_5xx"})
	})
	t.Run("total", func(t *testing.T) {
		up := hanguptest.NewUpstream(t, hanguptest.Stall())
		h := start(t, "", routeOpts{upstream: up.URL, extra: "    timeouts:\n      total: 150ms\n      response_header: 100ms\n      idle_body: 100ms\n      connect: 100ms\n"})
		res := get(t, h1Client(t), h.url("/total"))
		want504(t, res, "http_response_timeout")
		sc := recv(t, up.Conns(), "upstream connection")
		closed(t, sc.Done(), "upstream connection closed")
	})
	t.Run("connect", func(t *testing.T) {
		// TCP connects at once on loopback; the TLS handshake never
		// completes, and the connect timeout covers both.
		up := hanguptest.NewUpstream(t, func(sc *hanguptest.ServerConn) { sc.WaitPeerClose(wait) })
		h := start(t, "", routeOpts{upstream: "https://" + up.Addr,
			poolExtra: "    tls:\n      insecure_skip_verify: true\n",
			extra:     "    timeouts:\n      connect: 100ms\n"})
		res := get(t, h1Client(t), h.url("/ct"))
		want504(t, res, "connection_timeout")
		sc := recv(t, up.Conns(), "upstream connection")
		closed(t, sc.Done(), "half-made connection closed")
		wantLog(t, h.logs.next(t, "/ct"), map[string]any{"status": 504, "side": "upstream",
			"kind": "timeout", "phase": "connect"})
	})
	t.Run("idle_body", func(t *testing.T) {
		up := hanguptest.NewUpstream(t, func(sc *hanguptest.ServerConn) {
			if _, err := sc.ReadRequest(); err != nil {
				return
			}
			sc.Write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
			sc.WaitPeerClose(wait)
		})
		h := start(t, "", routeOpts{upstream: up.URL, extra: "    timeouts:\n      idle_body: 100ms\n"})
		run(t, func(t *testing.T, m mode) {
			res := get(t, m.client(t), h.url("/idle-"+m.name))
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err == nil || string(body) != "hello" {
				t.Fatalf("body = %q, %v; want %q and an abort", body, err, "hello")
			}
			wantLog(t, h.logs.next(t, "/idle-"+m.name), map[string]any{"side": "upstream", "kind": "timeout",
				"phase": "stream_response", "action": "reset_caller", "proxy_status": "connection_read_timeout"})
		})
		for range 2 {
			sc := recv(t, up.Conns(), "upstream connection")
			closed(t, sc.Done(), "upstream connection closed")
		}
	})
}

func get(t *testing.T, c *http.Client, url string) *http.Response {
	t.Helper()
	res, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func want504(t *testing.T, res *http.Response, proxyStatus string) {
	t.Helper()
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status = %d, want 504", res.StatusCode)
	}
	if ps := res.Header.Get("Proxy-Status"); !strings.Contains(ps, "error="+proxyStatus+";") {
		t.Errorf("Proxy-Status = %q, want error=%s", ps, proxyStatus)
	}
}

// A Node upstream's "socket hang up" (it destroys the socket before
// answering) becomes a 502, and one that dies mid-body an abort.
func TestNodeUpstreamHangUps(t *testing.T) {
	node := hanguptest.StartNode(t, hanguptest.NodeOptions{})
	h := start(t, "", routeOpts{upstream: node.URL})
	c := h1Client(t)
	res := get(t, c, h.url("/reset-before-headers"))
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 502 {
		t.Errorf("reset-before-headers: status %d, want 502", res.StatusCode)
	}
	for _, mode := range []string{"chunked", "length"} {
		wantAbort(t, c, h.url("/close-mid-body?mode="+mode))
	}
	res = get(t, c, h.url("/ok"))
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || string(body) != "ok\n" {
		t.Errorf("/ok = %q, %v", body, err)
	}
	// The caller hangs up on a slow request: Node sees the abort.
	hc := hanguptest.Dial(t, h.addr)
	hc.Send("GET /slow?ms=5000 HTTP/1.1\r\nHost: app\r\n\r\n")
	node.WaitEvent(t, func(e hanguptest.NodeEvent) bool { return e.Event == "request" && strings.HasPrefix(e.Path, "/slow") }, wait)
	hc.Reset()
	ev := node.WaitEvent(t, func(e hanguptest.NodeEvent) bool { return e.Event == "aborted" }, wait)
	if ev.Writes != 0 {
		t.Errorf("node attempted %d writes after the abort", ev.Writes)
	}
}
