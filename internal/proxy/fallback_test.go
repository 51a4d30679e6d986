package proxy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/switchboard-proxy/switchboard/internal/hanguptest"
)

// fallbackRoute is the YAML of a fallback route with short backoffs.
func fallbackRoute(backoffBase, backoffMax string) string {
	return fmt.Sprintf("    mode: fallback\n    queue:\n      backoff_base: %s\n      backoff_max: %s\n", backoffBase, backoffMax)
}

// fallbackAnswer is what a caller of a fallback route got.
type fallbackAnswer struct {
	status      int
	location    string
	proxyStatus string
	id          string // from a 202's JSON body
	body        string
}

// post sends a POST with body (chunked when chunked is set) and an
// Idempotency-Key when key is not empty.
func post(t *testing.T, c *http.Client, url, key, body string, chunked bool) fallbackAnswer {
	t.Helper()
	var r io.Reader = strings.NewReader(body)
	if chunked {
		r = io.MultiReader(r) // unknown length: sent chunked
	}
	req, _ := http.NewRequest("POST", url, r)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := fallbackAnswer{status: res.StatusCode, location: res.Header.Get("Location"),
		proxyStatus: res.Header.Get("Proxy-Status"), body: string(data)}
	if res.StatusCode == http.StatusAccepted {
		var got struct{ ID string }
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatalf("202 body %q: %v", data, err)
		}
		a.id = got.ID
	}
	return a
}

// wantReceipt checks a 202 receipt: Location is the delivery's status URL
// and Proxy-Status says why, with param (`error=…`, `received-status=…`).
func wantReceipt(t *testing.T, a fallbackAnswer, param string) {
	t.Helper()
	if a.status != http.StatusAccepted || a.id == "" || a.location != "/_switchboard/deliveries/"+a.id {
		t.Fatalf("answer %+v; want 202 with the status URL", a)
	}
	want := "switchboard; " + param + `; details="queued for later delivery: `
	if !strings.HasPrefix(a.proxyStatus, want) {
		t.Errorf("Proxy-Status %q; want it to start with %q", a.proxyStatus, want)
	}
}

// serveOn serves h on addr, a loopback address refusedAddr returned,
// until the test ends.
func serveOn(t *testing.T, addr string, h http.Handler) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	srv := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
}

// TestFallbackRefused: the upstream refuses every attempt, so the request
// is stored and the caller gets a receipt; once the upstream listens, it is
// delivered exactly once, with the caller's Idempotency-Key.
func TestFallbackRefused(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		addr := refusedAddr(t)
		h := start(t, queueTop(t.TempDir()), routeOpts{upstream: "http://" + addr, extra: fallbackRoute("20ms", "100ms")})
		c := m.client(t)
		a := post(t, c, h.url("/fb/a?x=1"), "key-a", `{"n":1}`, false)
		wantReceipt(t, a, "error=connection_refused")
		rec := h.logs.next(t, "/fb/a")
		wantLog(t, rec, map[string]any{"status": 202, "action": "queued", "delivery_id": a.id,
			"side": "upstream", "phase": "connect", "kind": "refused", "proxy_status": "connection_refused"})
		if n := len(attempts(t, rec)); n != 3 {
			t.Errorf("%d attempts logged, want 3 (retries.max_attempts): %v", n, rec)
		}

		up := &hookRecorder{}
		serveOn(t, addr, up)
		r := waitRecord(t, c, h.url(a.location), isState("delivered"))
		if r.Response == nil || r.Response.Status != http.StatusCreated {
			t.Errorf("delivered record %+v", r)
		}
		want := hookReq{"POST", "/fb/a?x=1", "key-a", `{"n":1}`, h.addr}
		if seen := up.seen(); len(seen) != 1 || seen[0] != want {
			t.Errorf("upstream saw %+v, want once %+v", seen, want)
		}
	})
}

// resetFirst resets the connection of the first request after reading it
// whole, before any response byte; later requests go to next.
type resetFirst struct {
	n    atomic.Int32
	next http.Handler
}

func (u *resetFirst) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if u.n.Add(1) > 1 {
		u.next.ServeHTTP(w, r)
		return
	}
	io.Copy(io.Discard, r.Body)
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	conn.(*net.TCPConn).SetLinger(0)
	conn.Close()
}

// TestFallbackResetBeforeHeaders: a POST without Idempotency-Key that the
// upstream resets before answering may have reached it, so it is not
// retried; it is stored instead, and delivered later with a generated
// Idempotency-Key (the delivery id).
func TestFallbackResetBeforeHeaders(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		up := &hookRecorder{}
		h := start(t, queueTop(t.TempDir()), routeOpts{upstream: hookUpstream(t, &resetFirst{next: up}), extra: fallbackRoute("10ms", "50ms")})
		c := m.client(t)
		a := post(t, c, h.url("/fb/b"), "", "pay", false)
		wantReceipt(t, a, "error=connection_terminated")
		rec := h.logs.next(t, "/fb/b")
		wantLog(t, rec, map[string]any{"status": 202, "action": "queued", "delivery_id": a.id,
			"side": "upstream", "phase": "await_headers", "kind": "reset", "no_retry": "not_idempotent"})
		if tries := attempts(t, rec); len(tries) != 1 || tries[0]["kind"] != "reset" {
			t.Errorf("attempts %v, want the one reset attempt", tries)
		}

		waitRecord(t, c, h.url(a.location), isState("delivered"))
		want := hookReq{"POST", "/fb/b", a.id, "pay", h.addr}
		if seen := up.seen(); len(seen) != 1 || seen[0] != want {
			t.Errorf("upstream saw %+v after the reset, want once %+v", seen, want)
		}
	})
}

// TestFallbackRelaysAnswer: an upstream that answers has its answer
// relayed; nothing is stored.
func TestFallbackRelaysAnswer(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		up := &hookRecorder{}
		h := start(t, queueTop(t.TempDir()), routeOpts{upstream: hookUpstream(t, up), extra: fallbackRoute("10ms", "50ms")})
		a := post(t, m.client(t), h.url("/fb/c"), "", "hello", false)
		if a.status != http.StatusCreated || a.body != "created" || a.location != "" || a.proxyStatus != "" {
			t.Errorf("answer %+v; want the upstream's 201", a)
		}
		rec := h.logs.next(t, "/fb/c")
		wantLog(t, rec, map[string]any{"status": 201, "action": "ok", "side": "none"})
		if _, ok := rec["delivery_id"]; ok {
			t.Errorf("delivery_id in %v", rec)
		}
		if recs, err := h.srv.QueueForTest().List(t.Context(), "", ""); err != nil || len(recs) != 0 {
			t.Errorf("stored: %d records, %v", len(recs), err)
		}
		if seen := up.seen(); len(seen) != 1 || seen[0].body != "hello" || seen[0].key != "" {
			t.Errorf("upstream saw %+v", seen)
		}
	})
}

// switchable answers 503 until ok is set, then passes on to next.
type switchable struct {
	ok   atomic.Bool
	n503 atomic.Int32
	next http.Handler
}

func (u *switchable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if u.ok.Load() {
		u.next.ServeHTTP(w, r)
		return
	}
	u.n503.Add(1)
	io.Copy(io.Discard, r.Body)
	w.WriteHeader(http.StatusServiceUnavailable)
}

// TestFallbackFinalStatus: a final response whose status is in
// retry_on_status (503 here, after the retries) stores the request too;
// Proxy-Status gives the status received.
func TestFallbackFinalStatus(t *testing.T) {
	up := &switchable{next: &hookRecorder{}}
	h := start(t, queueTop(t.TempDir()), routeOpts{upstream: hookUpstream(t, up), extra: fallbackRoute("1s", "1s")})
	c := h1Client(t)
	a := post(t, c, h.url("/fb/d"), "key-d", "job", false)
	wantReceipt(t, a, "received-status=503")
	rec := h.logs.next(t, "/fb/d")
	wantLog(t, rec, map[string]any{"status": 202, "action": "queued", "delivery_id": a.id, "side": "upstream"})
	tries := attempts(t, rec)
	if len(tries) != 3 || tries[2]["status"] != float64(503) {
		t.Errorf("attempts %v, want three 503s", tries)
	}
	// The first delivery waits backoff_base: the upstream was not asked
	// again before the receipt was read.
	if n := up.n503.Load(); n != 3 {
		t.Errorf("upstream answered 503 %d times before the receipt, want 3", n)
	}
	up.ok.Store(true)
	waitRecord(t, c, h.url(a.location), isState("delivered"))
	if seen := up.next.(*hookRecorder).seen(); len(seen) != 1 || seen[0].key != "key-d" || seen[0].body != "job" {
		t.Errorf("upstream saw %+v", seen)
	}
}

// TestFallbackTooLarge: a body over queue.max_body is proxied, but when
// the upstream fails it cannot be stored: the caller gets the 502, and
// the log says why.
func TestFallbackTooLarge(t *testing.T) {
	h := start(t, queueTop(t.TempDir()), routeOpts{upstream: "http://" + refusedAddr(t), extra: fallbackRoute("10ms", "50ms")})
	c := h1Client(t)
	big := strings.Repeat("x", 2<<10)
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprint("chunked=", chunked), func(t *testing.T) {
			path := fmt.Sprint("/big/", chunked)
			a := post(t, c, h.url(path), "key", big, chunked)
			if a.status != http.StatusBadGateway || a.location != "" || !strings.Contains(a.proxyStatus, "error=connection_refused") {
				t.Errorf("answer %+v; want 502 connection_refused", a)
			}
			wantLog(t, h.logs.next(t, path), map[string]any{"status": 502, "action": "answered_5xx", "no_fallback": "body_too_large"})
		})
	}
	if recs, err := h.srv.QueueForTest().List(t.Context(), "", ""); err != nil || len(recs) != 0 {
		t.Errorf("stored: %d records, %v", len(recs), err)
	}
}

// TestFallbackCallerHangsUp: a caller who hangs up while the upstream is
// being tried has not had its request accepted: the upstream is aborted
// (rule R1), the log says 499, and nothing is stored.
func TestFallbackCallerHangsUp(t *testing.T) {
	for _, hk := range hangUpKinds {
		t.Run(hk.name, func(t *testing.T) {
			up := hanguptest.NewUpstream(t, hanguptest.Stall())
			h := start(t, queueTop(t.TempDir()), routeOpts{upstream: up.URL, extra: fallbackRoute("10ms", "50ms")})
			c := hanguptest.Dial(t, h.addr)
			c.Send("POST /fb/e HTTP/1.1\r\nHost: app\r\nContent-Length: 4\r\n\r\nwork")
			sc := recv(t, up.Conns(), "upstream connection")
			closed(t, sc.FirstRequest(), "request at the upstream")
			hangUp(c, hk.rst)
			closed(t, sc.Done(), "upstream connection closed")
			wantLog(t, h.logs.next(t, "/fb/e"), map[string]any{"status": 499, "side": "caller",
				"phase": "await_headers", "kind": hk.kind, "action": "aborted_upstream"})
			if recs, err := h.srv.QueueForTest().List(t.Context(), "", ""); err != nil || len(recs) != 0 {
				t.Errorf("stored: %d records, %v", len(recs), err)
			}
		})
	}
}

// TestFallbackNoEndpoint: with no endpoint to be had (the only one is at
// max_conns_per_endpoint past queue_timeout), what would be a 503 stores
// the request instead.
func TestFallbackNoEndpoint(t *testing.T) {
	up := hanguptest.NewUpstream(t, hanguptest.Stall())
	h := start(t, queueTop(t.TempDir()), routeOpts{upstream: up.URL, extra: fallbackRoute("1m", "1m"),
		poolExtra: "    max_conns_per_endpoint: 1\n    queue_timeout: 20ms\n"})
	hold := hanguptest.Dial(t, h.addr)
	hold.Send("GET /hold HTTP/1.1\r\nHost: app\r\n\r\n")
	sc := recv(t, up.Conns(), "upstream connection")
	closed(t, sc.FirstRequest(), "held request at the upstream")

	a := post(t, h1Client(t), h.url("/fb/f"), "key-f", "later", false)
	wantReceipt(t, a, "error=destination_unavailable")
	wantLog(t, h.logs.next(t, "/fb/f"), map[string]any{"status": 202, "action": "queued", "delivery_id": a.id,
		"side": "proxy", "phase": "queued", "proxy_status": "destination_unavailable"})
	rec, err := h.srv.QueueForTest().Get(t.Context(), a.id)
	if err != nil || rec.State != "pending" || rec.IdempotencyKey != "key-f" {
		t.Errorf("stored record %+v, %v", rec, err)
	}
	hold.CloseFIN()
	closed(t, sc.Done(), "held upstream connection closed")
}
