package proxy_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/config"
)

// hookRecorder is an upstream that records every request it gets.
type hookRecorder struct {
	mu   sync.Mutex
	reqs []hookReq
}

type hookReq struct {
	method, target, key, body, host string
}

func (h *hookRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.reqs = append(h.reqs, hookReq{r.Method, r.URL.RequestURI(), r.Header.Get("Idempotency-Key"), string(body), r.Host})
	h.mu.Unlock()
	w.Header().Set("X-Upstream", "yes")
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, "created")
}

func (h *hookRecorder) seen() []hookReq {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookReq(nil), h.reqs...)
}

// asyncRoute is the YAML of an async route with short backoffs.
func asyncRoute(backoffBase, backoffMax string) string {
	return fmt.Sprintf("    mode: async\n    queue:\n      backoff_base: %s\n      backoff_max: %s\n", backoffBase, backoffMax)
}

func queueTop(dir string) string { return "queue:\n  dir: " + dir + "\n  max_body: 1KiB\n" }

// record is the part of a delivery's status this test reads.
type record struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Attempts int    `json:"attempts"`
	Outcomes []struct {
		Status int    `json:"status"`
		Error  string `json:"error"`
	} `json:"outcomes"`
	Response *struct {
		Status int         `json:"status"`
		Header http.Header `json:"header"`
		Body   []byte      `json:"body"`
	} `json:"response"`
}

// status GETs a delivery's status URL.
func status(t *testing.T, c *http.Client, url string) (int, record) {
	t.Helper()
	res, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var r record
	if res.StatusCode == http.StatusOK {
		if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
	}
	return res.StatusCode, r
}

// waitRecord polls a status URL until ok accepts the record.
func waitRecord(t *testing.T, c *http.Client, url string, ok func(record) bool) record {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(4 * wait)
	for {
		code, r := status(t, c, url)
		if code == http.StatusOK && ok(r) {
			return r
		}
		select {
		case <-tick.C:
		case <-timeout:
			t.Fatalf("%s: still %d %+v", url, code, r)
		}
	}
}

func isState(s string) func(record) bool { return func(r record) bool { return r.State == s } }

// postAsync posts body and checks the 202 receipt; it returns the status
// URL.
func postAsync(t *testing.T, h *harness, c *http.Client, path, key, body string) (string, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", h.url(path), strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var got struct{ ID, Status_URL string }
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusAccepted || got.ID == "" || loc != "/_switchboard/deliveries/"+got.ID || got.Status_URL != loc {
		t.Fatalf("POST %s = %d, Location %q, body %+v; want 202 with the status URL", path, res.StatusCode, loc, got)
	}
	return got.ID, h.url(loc)
}

func TestAsyncDelivered(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		up := &hookRecorder{}
		h := start(t, queueTop(t.TempDir()), routeOpts{upstream: hookUpstream(t, up), extra: asyncRoute("10ms", "50ms")})
		c := m.client(t)
		id, statusURL := postAsync(t, h, c, "/hooks/a?x=1", "key-1", `{"n":1}`)
		rec := h.logs.next(t, "/hooks/a")
		wantLog(t, rec, map[string]any{"status": 202, "action": "queued", "delivery_id": id, "route": "r0"})

		r := waitRecord(t, c, statusURL, isState("delivered"))
		if r.Attempts != 1 || r.Response == nil || r.Response.Status != http.StatusCreated ||
			string(r.Response.Body) != "created" || r.Response.Header.Get("X-Upstream") != "yes" {
			t.Errorf("delivered record %+v", r)
		}
		seen := up.seen()
		if len(seen) != 1 {
			t.Fatalf("upstream saw %d requests, want 1: %+v", len(seen), seen)
		}
		want := hookReq{"POST", "/hooks/a?x=1", "key-1", `{"n":1}`, h.addr}
		if seen[0] != want {
			t.Errorf("upstream saw %+v, want %+v", seen[0], want)
		}
	})
}

func TestAsyncGeneratesIdempotencyKey(t *testing.T) {
	up := &hookRecorder{}
	h := start(t, queueTop(t.TempDir()), routeOpts{upstream: hookUpstream(t, up), extra: asyncRoute("10ms", "50ms")})
	c := h1Client(t)
	id, statusURL := postAsync(t, h, c, "/hooks/b", "", "x")
	waitRecord(t, c, statusURL, isState("delivered"))
	if seen := up.seen(); len(seen) != 1 || seen[0].key != id {
		t.Errorf("upstream saw %+v, want one request with Idempotency-Key %s", seen, id)
	}
}

// TestAsyncUpstreamComesBack: the upstream refuses connections at first;
// the delivery is retried and succeeds once it listens.
func TestAsyncUpstreamComesBack(t *testing.T) {
	addr := refusedAddr(t)
	up := &hookRecorder{}
	h := start(t, queueTop(t.TempDir()), routeOpts{upstream: "http://" + addr, extra: asyncRoute("20ms", "100ms")})
	c := h1Client(t)
	_, statusURL := postAsync(t, h, c, "/hooks/c", "key-c", "late")
	r := waitRecord(t, c, statusURL, func(r record) bool { return len(r.Outcomes) > 0 })
	if r.State != "pending" || r.Outcomes[0].Error == "" {
		t.Fatalf("after a refused attempt: %+v", r)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	srv := &http.Server{Handler: up}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })

	r = waitRecord(t, c, statusURL, isState("delivered"))
	if r.Attempts < 2 || r.Response.Status != http.StatusCreated {
		t.Errorf("record %+v", r)
	}
	if seen := up.seen(); len(seen) != 1 || seen[0].key != "key-c" || seen[0].body != "late" {
		t.Errorf("upstream saw %+v", seen)
	}
}

func TestAsyncCancel(t *testing.T) {
	up := &hookRecorder{}
	addr := refusedAddr(t)
	// Long backoffs: after one refused attempt the delivery stays pending.
	h := start(t, queueTop(t.TempDir()), routeOpts{upstream: "http://" + addr, extra: asyncRoute("1m", "5m")})
	c := h1Client(t)
	_, statusURL := postAsync(t, h, c, "/hooks/d", "", "x")
	waitRecord(t, c, statusURL, func(r record) bool { return len(r.Outcomes) > 0 && r.State == "pending" })

	del := func() int {
		req, _ := http.NewRequest("DELETE", statusURL, nil)
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := del(); code != http.StatusNoContent {
		t.Fatalf("DELETE pending = %d, want 204", code)
	}
	if code, r := status(t, c, statusURL); code != 200 || r.State != "cancelled" {
		t.Errorf("after DELETE: %d %+v", code, r)
	}
	if code := del(); code != http.StatusConflict {
		t.Errorf("DELETE cancelled = %d, want 409", code)
	}
	if code, _ := status(t, c, h.url("/_switchboard/deliveries/nosuchid")); code != http.StatusNotFound {
		t.Errorf("GET unknown = %d, want 404", code)
	}
	req, _ := http.NewRequest("DELETE", h.url("/_switchboard/deliveries/nosuchid"), nil)
	if res, err := c.Do(req); err != nil || res.StatusCode != http.StatusNotFound {
		t.Errorf("DELETE unknown = %v %v, want 404", res.StatusCode, err)
	} else {
		res.Body.Close()
	}
	if q := h.srv.QueueForTest(); q != nil {
		if recs, err := q.List(t.Context(), "", "pending"); err != nil || len(recs) != 0 {
			t.Errorf("pending after cancel: %v %v", recs, err)
		}
	}
	if seen := up.seen(); len(seen) != 0 {
		t.Errorf("upstream saw %+v", seen)
	}
}

func TestAsyncTooLarge(t *testing.T) {
	up := &hookRecorder{}
	h := start(t, queueTop(t.TempDir()), routeOpts{upstream: hookUpstream(t, up), extra: asyncRoute("10ms", "50ms")})
	c := h1Client(t)
	big := strings.Repeat("x", 2<<10)
	cases := []struct {
		name string
		body io.Reader
	}{
		{"content-length", strings.NewReader(big)},
		{"chunked", io.MultiReader(strings.NewReader(big))}, // unknown length: sent chunked
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := c.Post(h.url("/big/"+tc.name), "text/plain", tc.body)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("status %d, want 413", res.StatusCode)
			}
			wantLog(t, h.logs.next(t, "/big/"+tc.name), map[string]any{"status": 413})
		})
	}
	recs, err := h.srv.QueueForTest().List(t.Context(), "", "")
	if err != nil || len(recs) != 0 {
		t.Errorf("stored after 413: %d records, %v", len(recs), err)
	}
}

// TestNoQueueWithoutAsync: a config without an async route opens no queue:
// no NATS server runs and no data directory is created.
func TestNoQueueWithoutAsync(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	h := start(t, "queue:\n  dir: "+dir+"\n", routeOpts{upstream: hookUpstream(t, &hookRecorder{})})
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("queue dir %s: %v, want it not to exist", dir, err)
	}
	if h.srv.QueueForTest() != nil {
		t.Error("a queue is open")
	}
	buf := make([]byte, 1<<20)
	if stacks := string(buf[:runtime.Stack(buf, true)]); strings.Contains(stacks, "nats-io") {
		t.Errorf("NATS goroutines running:\n%s", stacks)
	}
	res, err := h1Client(t).Get(h.url("/_switchboard/deliveries/x"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("status URL without a queue = %d, want 404", res.StatusCode)
	}
}

// hookUpstream runs h on a loopback HTTP/1.1 server and returns its URL.
func hookUpstream(t *testing.T, h http.Handler) string {
	s := httptest.NewServer(h)
	t.Cleanup(func() {
		s.CloseClientConnections()
		s.Close()
	})
	return s.URL
}

// TestReloadCannotAddFirstAsyncRoute: the queue opens only at start, so a
// reload that would need it is rejected and the old config stays.
func TestReloadCannotAddFirstAsyncRoute(t *testing.T) {
	up := hookUpstream(t, &hookRecorder{})
	h := start(t, "", routeOpts{upstream: up})
	src := fmt.Sprintf("listeners:\n  - address: %s\nadmin:\n  address: \"off\"\nqueue:\n  dir: %s\npools:\n  - name: p0\n    endpoints:\n      - url: %s\nroutes:\n  - pool: p0\n%s",
		h.addr, t.TempDir(), up, asyncRoute("1s", "5m"))
	cfg, err := config.Parse("async.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.srv.Reload(cfg); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Errorf("Reload = %v, want an error asking for a restart", err)
	}
	if h.srv.QueueForTest() != nil {
		t.Error("a queue is open after the rejected reload")
	}
}

// flakyHook answers 503 until ok is set, then 201.
type flakyHook struct {
	mu sync.Mutex
	ok bool
	n  int
}

func (f *flakyHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	f.mu.Lock()
	ok := f.ok
	f.n++
	f.mu.Unlock()
	if !ok {
		http.Error(w, "not now", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

// The status URL follows a delivery through its states: pending while the
// upstream answers 503, dead after max_attempts (with every attempt's
// outcome), pending again after a replay, delivered once the upstream
// recovers. (Cancelled is TestAsyncCancel.)
func TestAsyncStatusThroughEveryState(t *testing.T) {
	up := &flakyHook{}
	h := start(t, queueTop(t.TempDir()), routeOpts{upstream: hookUpstream(t, up),
		extra: "    mode: async\n    queue:\n      max_attempts: 2\n      backoff_base: 20ms\n      backoff_max: 50ms\n"})
	c := h1Client(t)
	id, statusURL := postAsync(t, h, c, "/hooks/states", "key-s", "x")
	if code, r := status(t, c, statusURL); code != 200 || r.ID != id || r.State != "pending" && r.State != "dead" {
		t.Fatalf("first status: %d %+v", code, r)
	}
	dead := waitRecord(t, c, statusURL, isState("dead"))
	if dead.Attempts != 2 || len(dead.Outcomes) != 2 || dead.Outcomes[1].Status != http.StatusServiceUnavailable {
		t.Fatalf("dead record %+v", dead)
	}
	up.mu.Lock()
	up.ok = true
	up.mu.Unlock()
	if err := h.srv.QueueForTest().Replay(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	r := waitRecord(t, c, statusURL, isState("delivered"))
	if r.Response == nil || r.Response.Status != http.StatusCreated {
		t.Fatalf("delivered record %+v", r)
	}
}

// A queue that cannot take the request: 503 with Proxy-Status, never a 202.
func TestAsyncStoreUnavailable(t *testing.T) {
	up := &hookRecorder{}
	h := start(t, queueTop(t.TempDir()), routeOpts{upstream: hookUpstream(t, up), extra: asyncRoute("10ms", "50ms")})
	h.srv.QueueForTest().Close() // the store goes away under the running server
	res, err := h1Client(t).Post(h.url("/hooks/gone"), "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(res.Header.Get("Proxy-Status"), "error=destination_unavailable") {
		t.Fatalf("POST with the store down = %d %q, Proxy-Status %q; want 503 destination_unavailable",
			res.StatusCode, body, res.Header.Get("Proxy-Status"))
	}
	if res.Header.Get("Location") != "" {
		t.Errorf("a Location for something not stored: %q", res.Header.Get("Location"))
	}
	if seen := up.seen(); len(seen) != 0 {
		t.Errorf("upstream saw %+v", seen)
	}
}
