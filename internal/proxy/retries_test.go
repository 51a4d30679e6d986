package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/hanguptest"
)

// What a scripted upstream does with a request.
const (
	actReset = "reset" // RST before any response byte
	actFIN   = "fin"   // FIN before any response byte
	actStall = "stall" // read the request, answer nothing
	// actPartial sends a head promising 100 bytes, 9 of them, then a FIN.
	actPartial = "partial"
)

// scripted is an upstream that misbehaves on cue: act says, for the n-th
// request it sees (0-based, over all connections), either one of the act*
// values or a raw HTTP response to send.
type scripted struct {
	act  func(n int, r *http.Request) string
	mu   sync.Mutex
	n    int
	at   []time.Time
	seen map[string]int // requests by path
	URL  string
	// aborted counts stalled requests whose connection the proxy closed.
	aborted atomic.Int32
}

func newScripted(t *testing.T, act func(n int, r *http.Request) string) *scripted {
	s := &scripted{act: act, seen: map[string]int{}}
	s.URL = hanguptest.NewUpstream(t, s.handle).URL
	return s
}

func (s *scripted) handle(c *hanguptest.ServerConn) {
	for {
		req, err := c.ReadRequest()
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		s.mu.Lock()
		n := s.n
		s.n++
		s.at = append(s.at, time.Now())
		s.seen[req.URL.Path]++
		s.mu.Unlock()
		switch a := s.act(n, req); a {
		case actReset:
			c.Reset()
			return
		case actFIN:
			c.CloseFIN()
			return
		case actStall:
			if _, _, err := c.WaitPeerClose(hanguptest.Timeout); err == nil {
				s.aborted.Add(1)
			}
			return
		case actPartial:
			c.Write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
			c.CloseFIN()
			return
		default:
			if c.Write(a) != nil {
				return
			}
		}
	}
}

// count returns how many requests for path the upstream saw.
func (s *scripted) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[path]
}

func (s *scripted) times() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.at...)
}

func response(status int, extra string) string {
	body := http.StatusText(status)
	return fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Length: %d\r\n%s\r\n%s", status, body, len(body), extra, body)
}

var ok200 = response(200, "")

// firstThen acts with first on the first request and answers 200 after.
func firstThen(first string) func(int, *http.Request) string {
	return func(n int, _ *http.Request) string {
		if n == 0 {
			return first
		}
		return ok200
	}
}

// attempts returns the access log's list of attempts.
func attempts(t *testing.T, rec map[string]any) []map[string]any {
	t.Helper()
	raw, _ := rec["attempts"].([]any)
	var out []map[string]any
	for _, a := range raw {
		out = append(out, a.(map[string]any))
	}
	return out
}

func send(t *testing.T, c *http.Client, method, url, body string, hdr ...string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

const fastRetries = "    retries:\n      max_attempts: 3\n      backoff_base: 1ms\n      backoff_max: 5ms\n"

// An upstream that hangs up before any response byte is retried when the
// request is safe to replay, and only then (rule R3).
func TestRetrySafety(t *testing.T) {
	cases := []struct {
		name     string
		act      string
		method   string
		hdr      []string
		status   int
		seen     int
		noRetry  string
		tryKind  string
		tryPhase string
	}{
		{"GET after RST", actReset, "GET", nil, 200, 2, "", "reset", "await_headers"},
		{"GET after FIN", actFIN, "GET", nil, 200, 2, "", "fin", "await_headers"},
		{"PUT after RST", actReset, "PUT", nil, 200, 2, "", "reset", "await_headers"},
		{"POST with Idempotency-Key", actReset, "POST", []string{"Idempotency-Key", "k-1"}, 200, 2, "", "reset", "await_headers"},
		{"POST without key", actReset, "POST", nil, 502, 1, "not_idempotent", "", ""},
		{"PATCH without key", actFIN, "PATCH", nil, 502, 1, "not_idempotent", "", ""},
	}
	for _, tc := range cases {
		run(t, func(t *testing.T, m mode) {
			t.Run(tc.name, func(t *testing.T) {
				up := newScripted(t, firstThen(tc.act))
				h := start(t, "", routeOpts{upstream: up.URL, extra: fastRetries})
				body := ""
				if tc.method != "GET" {
					body = "payload"
				}
				status, _ := send(t, m.client(t), tc.method, h.url("/r"), body, tc.hdr...)
				if status != tc.status {
					t.Fatalf("status = %d, want %d", status, tc.status)
				}
				rec := h.logs.next(t, "/r")
				if got := up.count("/r"); got != tc.seen {
					t.Fatalf("upstream saw the request %d times, want %d", got, tc.seen)
				}
				wantLog(t, rec, map[string]any{"status": tc.status})
				if tc.noRetry != "" {
					wantLog(t, rec, map[string]any{"no_retry": tc.noRetry, "side": "upstream", "action": "answered_5xx"})
					return
				}
				tries := attempts(t, rec)
				if len(tries) != 2 {
					t.Fatalf("access log lists %d attempts, want 2: %v", len(tries), rec)
				}
				wantLog(t, tries[0], map[string]any{"kind": tc.tryKind, "phase": tc.tryPhase, "retry": "reset_before_response", "side": "upstream"})
				wantLog(t, tries[1], map[string]any{"status": 200})
				wantLog(t, rec, map[string]any{"side": "none", "action": "ok", "retries": 1})
			})
		})
	}
}

// A request that provably never reached the upstream is retried whatever
// its method: here the first endpoint refuses the connection.
func TestRetryRefusedOnAnotherEndpoint(t *testing.T) {
	up := newScripted(t, func(int, *http.Request) string { return ok200 })
	dead := "http://" + refusedAddr(t)
	h := start(t, "", routeOpts{upstream: dead, extra: fastRetries,
		poolExtra: "      - url: " + up.URL + "\n"})
	c := h1Client(t)
	for i := range 4 {
		path := fmt.Sprintf("/post%d", i)
		if status, _ := send(t, c, "POST", h.url(path), "payload"); status != 200 {
			t.Fatalf("POST %d: status %d, want 200", i, status)
		}
		if n := up.count(path); n != 1 {
			t.Fatalf("POST %d reached the upstream %d times, want 1", i, n)
		}
	}
}

// Statuses in retry_on_status are retried for safe requests; a 503's
// Retry-After is honoured up to retry_after_max, and a longer one is
// relayed to the caller at once.
func TestRetryOnStatus(t *testing.T) {
	t.Run("502 then 200", func(t *testing.T) {
		up := newScripted(t, firstThen(response(502, "")))
		h := start(t, "", routeOpts{upstream: up.URL, extra: fastRetries})
		if status, _ := send(t, h1Client(t), "GET", h.url("/s"), ""); status != 200 {
			t.Fatalf("status = %d, want 200", status)
		}
		rec := h.logs.next(t, "/s")
		tries := attempts(t, rec)
		if len(tries) != 2 || up.count("/s") != 2 {
			t.Fatalf("attempts %v, upstream saw %d", tries, up.count("/s"))
		}
		wantLog(t, tries[0], map[string]any{"status": 502, "retry": "status_502"})
	})
	t.Run("503 to POST is relayed", func(t *testing.T) {
		up := newScripted(t, firstThen(response(503, "")))
		h := start(t, "", routeOpts{upstream: up.URL, extra: fastRetries})
		if status, _ := send(t, h1Client(t), "POST", h.url("/s"), "x"); status != 503 {
			t.Fatalf("status = %d, want 503", status)
		}
		wantLog(t, h.logs.next(t, "/s"), map[string]any{"status": 503, "no_retry": "not_idempotent"})
	})
	t.Run("Retry-After honoured", func(t *testing.T) {
		up := newScripted(t, firstThen(response(503, "Retry-After: 1\r\n")))
		h := start(t, "", routeOpts{upstream: up.URL, extra: fastRetries})
		if status, _ := send(t, h1Client(t), "GET", h.url("/s"), ""); status != 200 {
			t.Fatalf("status = %d, want 200", status)
		}
		at := up.times()
		if len(at) != 2 {
			t.Fatalf("upstream saw %d requests, want 2", len(at))
		}
		// A lower bound only: the retry cannot come before the
		// upstream asked, however busy the machine.
		if gap := at[1].Sub(at[0]); gap < 990*time.Millisecond {
			t.Fatalf("retried after %v, before Retry-After: 1", gap)
		}
	})
	t.Run("Retry-After too long", func(t *testing.T) {
		up := newScripted(t, firstThen(response(503, "Retry-After: 120\r\n")))
		h := start(t, "", routeOpts{upstream: up.URL, extra: fastRetries})
		if status, _ := send(t, h1Client(t), "GET", h.url("/s"), ""); status != 503 {
			t.Fatalf("status = %d, want the upstream's 503", status)
		}
		wantLog(t, h.logs.next(t, "/s"), map[string]any{"status": 503, "no_retry": "retry_after_too_long"})
		if n := up.count("/s"); n != 1 {
			t.Fatalf("upstream saw %d requests, want 1", n)
		}
	})
}

// Rule R1 between attempts: a caller who hangs up while switchboard waits
// to retry cancels the wait, and no further attempt starts.
func TestCallerHangsUpDuringBackoff(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		up := newScripted(t, func(int, *http.Request) string { return response(503, "Retry-After: 3\r\n") })
		h := start(t, "", routeOpts{upstream: up.URL, extra: fastRetries})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", h.url("/b"), nil)
		errc := make(chan error, 1)
		go func() {
			res, err := m.client(t).Do(req)
			if err == nil {
				res.Body.Close()
			}
			errc <- err
		}()
		deadline := time.Now().Add(wait)
		for up.count("/b") == 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond) // into the 3 s backoff
		cancel()
		if err := recv(t, errc, "the caller's error"); !errors.Is(err, context.Canceled) {
			t.Fatalf("caller error = %v", err)
		}
		rec := h.logs.next(t, "/b")
		wantLog(t, rec, map[string]any{"status": 499, "side": "caller", "phase": "backoff", "action": "aborted_upstream"})
		if d := rec["duration_ms"].(float64); d > 2500 {
			t.Errorf("the exchange lasted %v ms: the backoff was not cancelled", d)
		}
		if n := up.count("/b"); n != 1 {
			t.Fatalf("upstream saw %d attempts, want 1", n)
		}
	})
}

// A body longer than buffer_body streams through and is not replayed.
func TestRetryBodyTooLargeToReplay(t *testing.T) {
	up := newScripted(t, firstThen(actReset))
	h := start(t, "", routeOpts{upstream: up.URL, extra: fastRetries + "      buffer_body: 1KiB\n"})
	if status, _ := send(t, h1Client(t), "PUT", h.url("/big"), strings.Repeat("x", 4096)); status != 502 {
		t.Fatalf("status = %d, want 502", status)
	}
	wantLog(t, h.logs.next(t, "/big"), map[string]any{"status": 502, "no_retry": "body_not_replayable", "bytes_in": 4096})
	if n := up.count("/big"); n != 1 {
		t.Fatalf("upstream saw %d requests, want 1", n)
	}
	// A small body on the same route is replayed whole.
	body := strings.Repeat("y", 512)
	up2 := newScripted(t, func(n int, r *http.Request) string {
		if n == 0 {
			return actReset
		}
		return ok200
	})
	h2 := start(t, "", routeOpts{upstream: up2.URL, extra: fastRetries + "      buffer_body: 1KiB\n"})
	if status, _ := send(t, h1Client(t), "PUT", h2.url("/small"), body); status != 200 {
		t.Fatalf("small body: status %d, want 200", status)
	}
}

// The replayed body is byte for byte the caller's.
func TestRetryReplaysBodyWhole(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	u := hanguptest.NewUpstream(t, func(c *hanguptest.ServerConn) {
		for {
			req, err := c.ReadRequest()
			if err != nil {
				return
			}
			b, _ := io.ReadAll(req.Body)
			mu.Lock()
			bodies = append(bodies, string(b))
			n := len(bodies)
			mu.Unlock()
			if n == 1 {
				c.Reset()
				return
			}
			if c.Write(ok200) != nil {
				return
			}
		}
	})
	h := start(t, "", routeOpts{upstream: u.URL, extra: fastRetries})
	body := strings.Repeat("0123456789", 10000)
	if status, _ := send(t, h1Client(t), "PUT", h.url("/replay"), body); status != 200 {
		t.Fatalf("status = %d", status)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 2 || bodies[0] != body || bodies[1] != body {
		t.Fatalf("upstream got %d bodies; equal to the caller's: %v", len(bodies), len(bodies) == 2 && bodies[1] == body)
	}
}

// per_try_timeout ends a stalled attempt and the next one answers.
func TestPerTryTimeout(t *testing.T) {
	up := newScripted(t, firstThen(actStall))
	h := start(t, "", routeOpts{upstream: up.URL, extra: fastRetries + "      per_try_timeout: 200ms\n"})
	if status, _ := send(t, h1Client(t), "GET", h.url("/slow"), ""); status != 200 {
		t.Fatalf("status = %d, want 200", status)
	}
	tries := attempts(t, h.logs.next(t, "/slow"))
	if len(tries) != 2 {
		t.Fatalf("attempts = %v", tries)
	}
	wantLog(t, tries[0], map[string]any{"kind": "timeout", "retry": "timeout"})
}

// The retry budget stops retries once they would add more than the allowed
// share of traffic, so an outage cannot become a retry storm. With a floor
// of 1 per second (10 per 10-second window) and 1% of requests, 15 requests
// to a dead upstream get 11 retries: 10 from the floor, one from the ratio.
func TestRetryBudget(t *testing.T) {
	up := newScripted(t, func(int, *http.Request) string { return actReset })
	h := start(t, "", routeOpts{upstream: up.URL,
		extra: "    retries:\n      max_attempts: 2\n      backoff_base: 1ms\n      backoff_max: 1ms\n      budget:\n        ratio: 0.01\n        min_per_second: 1\n"})
	c := h1Client(t)
	reasons := map[string]int{}
	for i := range 15 {
		path := fmt.Sprintf("/b%d", i)
		if status, _ := send(t, c, "GET", h.url(path), ""); status != 502 {
			t.Fatalf("status = %d, want 502", status)
		}
		reason, _ := h.logs.next(t, path)["no_retry"].(string)
		reasons[reason]++
	}
	if reasons["attempts_exhausted"] != 11 || reasons["budget_exhausted"] != 4 {
		t.Fatalf("no_retry reasons = %v, want 11 attempts_exhausted and 4 budget_exhausted", reasons)
	}
}

// A response that dies mid-body is never retried, even for a GET: its
// headers already went to the caller, who sees the abort (rule R4).
func TestMidBodyNotRetried(t *testing.T) {
	up := newScripted(t, func(int, *http.Request) string { return actPartial })
	h := start(t, "", routeOpts{upstream: up.URL, extra: fastRetries})
	res, err := h1Client(t).Get(h.url("/mid"))
	if err == nil {
		_, err = io.ReadAll(res.Body)
		res.Body.Close()
	}
	if err == nil {
		t.Fatal("a truncated response looked complete")
	}
	if n := up.count("/mid"); n != 1 {
		t.Fatalf("upstream saw %d requests, want 1", n)
	}
	wantLog(t, h.logs.next(t, "/mid"), map[string]any{"side": "upstream", "phase": "stream_response", "action": "reset_caller"})
}

// An endpoint that restarts: while it is down its connections are refused
// and the requests go to the other endpoint without a caller-visible error;
// it is ejected, and after the ejection it serves again.
func TestEndpointRestart(t *testing.T) {
	other := newScripted(t, func(int, *http.Request) string { return ok200 })
	var served sync.Map
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Store(r.URL.Path, true)
		io.WriteString(w, "restarted\n")
	})
	first := httptestServer(t, "127.0.0.1:0", handler)
	addr := first.Addr
	h := start(t, "", routeOpts{upstream: "http://" + addr, extra: fastRetries,
		poolExtra: "      - url: " + other.URL + "\n    health:\n      passive:\n        consecutive_failures: 1\n        base_ejection: 300ms\n"})
	c := h1Client(t)
	for i := range 4 {
		if status, _ := send(t, c, "GET", h.url(fmt.Sprintf("/up%d", i)), ""); status != 200 {
			t.Fatalf("status %d", status)
		}
	}
	first.Close() // the endpoint goes down: FIN on its connections, then refused
	// A GET may meet a pooled connection whose FIN is still in flight and
	// is retried; a POST without a key, once the pool knows, finds the
	// endpoint refusing (nothing written) or ejected, and goes elsewhere.
	for i := range 10 {
		method := "GET"
		if i >= 3 {
			method = "POST"
		}
		if status, _ := send(t, c, method, h.url(fmt.Sprintf("/down%d", i)), "x"); status != 200 {
			t.Fatalf("while down: %s status %d", method, status)
		}
	}
	httptestServer(t, addr, handler) // back on the same port
	deadline := time.Now().Add(wait)
	for i := 0; ; i++ {
		path := fmt.Sprintf("/back%d", i)
		if status, _ := send(t, c, "GET", h.url(path), ""); status != 200 {
			t.Fatalf("after restart: status %d", status)
		}
		if _, ok := served.Load(path); ok {
			break // the restarted endpoint serves again
		}
		if time.Now().After(deadline) {
			t.Fatal("the restarted endpoint never got traffic back")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// httptestServer serves handler on addr (port 0 for any) until the test
// ends or Close is called.
func httptestServer(t *testing.T, addr string, handler http.Handler) *http.Server {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler, Addr: ln.Addr().String()}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return srv
}

// Hedging: an idempotent request with no answer after hedge.delay gets a
// second attempt on the other endpoint; the first answer wins and the
// stalled attempt's connection is closed at once.
func TestHedging(t *testing.T) {
	var n atomic.Int32
	act := func(int, *http.Request) string {
		if n.Add(1) == 1 {
			return actStall
		}
		return ok200
	}
	a, b := newScripted(t, act), newScripted(t, act)
	h := start(t, "", routeOpts{upstream: a.URL, extra: fastRetries + "    hedge:\n      delay: 50ms\n",
		poolExtra: "      - url: " + b.URL + "\n"})
	if status, _ := send(t, h1Client(t), "GET", h.url("/hedge"), ""); status != 200 {
		t.Fatalf("status = %d", status)
	}
	rec := h.logs.next(t, "/hedge")
	tries := attempts(t, rec)
	if len(tries) != 2 {
		t.Fatalf("attempts = %v", tries)
	}
	wantLog(t, tries[0], map[string]any{"abandoned": "other_attempt_answered"})
	wantLog(t, tries[1], map[string]any{"hedge": true, "status": 200})
	deadline := time.Now().Add(wait)
	for a.aborted.Load()+b.aborted.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the abandoned attempt's connection was not closed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A POST without a key is never hedged: it waits for its one attempt.
	n.Store(0)
	done := make(chan int, 1)
	go func() {
		res, err := h1Client(t).Post(h.url("/nohedge"), "text/plain", strings.NewReader("x"))
		if err != nil {
			done <- 0
			return
		}
		res.Body.Close()
		done <- res.StatusCode
	}()
	time.Sleep(200 * time.Millisecond)
	if got := a.count("/nohedge") + b.count("/nohedge"); got != 1 {
		t.Fatalf("a POST was sent %d times", got)
	}
	h.srv.Close() // ends the stalled POST
	<-done
}
