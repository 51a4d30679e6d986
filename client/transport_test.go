package client_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-proxy/switchboard/client"
	"github.com/switchboard-proxy/switchboard/hangup"
	"github.com/switchboard-proxy/switchboard/internal/hanguptest"
)

// fast keeps backoffs short so the table runs quickly.
var fast = client.Options{BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond}

// sendBoth means a phase that races between the last byte written and the
// server's hang-up: a request with a body is "sent" only once the transport
// reports it written, which may come after the server has already reset.
var sendBoth = []hangup.Phase{hangup.SendRequest, hangup.AwaitHeaders}

func isCause(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

func isTimeout(err error) bool {
	var te *hangup.TimeoutError
	return errors.As(err, &te)
}

func isDial(err error) bool {
	var de *hangup.DialError
	return errors.As(err, &de) && errors.Is(err, syscall.ECONNREFUSED)
}

// unknownLength hides a reader's type from http.NewRequest, so the request
// has no GetBody and no ContentLength: the Transport must keep the body
// itself to replay it.
func unknownLength(s string) io.Reader { return struct{ io.Reader }{strings.NewReader(s)} }

// TestHangUps sends requests to real loopback servers that reset, close,
// refuse, stall and answer with retryable statuses, and checks what the
// caller got, how often the server saw the request, and the error.
func TestHangUps(t *testing.T) {
	withOpts := func(f func(o *client.Options)) client.Options { o := fast; f(&o); return o }
	cases := []struct {
		name    string
		steps   []step
		refused bool // send to a port where nothing listens
		method  string
		body    func() io.Reader
		key     bool // the request carries an Idempotency-Key
		opts    client.Options

		status   int // the response the caller gets; 0: an error
		arrivals int // requests the server read
		bodyLen  int64
		// For an error:
		side     hangup.Side
		phases   []hangup.Phase
		kind     hangup.Kind
		attempts int
		noRetry  string
		cause    func(error) bool
		// refusal is the reason the last attempt was not retried, for a
		// response as for an error ("" for none).
		refusal string
		// unbuffered counts bodies too long to keep for a replay.
		unbuffered int64
	}{
		{name: "GET reset every time", steps: []step{reset}, method: "GET", opts: fast,
			arrivals: 3, side: hangup.Upstream, phases: []hangup.Phase{hangup.AwaitHeaders}, kind: hangup.Reset,
			attempts: 3, noRetry: "attempts_exhausted", cause: isCause(syscall.ECONNRESET), refusal: "attempts_exhausted"},
		{name: "GET reset then answered", steps: []step{reset, respond(200, "ok")}, method: "GET", opts: fast,
			status: 200, arrivals: 2},
		{name: "GET closed (FIN) every time", steps: []step{fin}, method: "GET", opts: fast,
			arrivals: 3, side: hangup.Upstream, phases: []hangup.Phase{hangup.AwaitHeaders}, kind: hangup.FIN,
			attempts: 3, noRetry: "attempts_exhausted", cause: isCause(io.EOF), refusal: "attempts_exhausted"},
		{name: "GET reset, one attempt allowed", steps: []step{reset}, method: "GET",
			opts:     withOpts(func(o *client.Options) { o.MaxAttempts = 1 }),
			arrivals: 1, side: hangup.Upstream, phases: []hangup.Phase{hangup.AwaitHeaders}, kind: hangup.Reset,
			attempts: 1, noRetry: "attempts_exhausted", cause: isCause(syscall.ECONNRESET), refusal: "attempts_exhausted"},
		{name: "POST reset is not retried", steps: []step{reset}, method: "POST", body: func() io.Reader { return strings.NewReader("x") }, opts: fast,
			arrivals: 1, bodyLen: 1, side: hangup.Upstream, phases: sendBoth, kind: hangup.Reset,
			attempts: 1, noRetry: "not_idempotent", cause: isCause(syscall.ECONNRESET), refusal: "not_idempotent"},
		{name: "POST with Idempotency-Key reset", steps: []step{reset}, method: "POST", body: func() io.Reader { return strings.NewReader("x") }, key: true, opts: fast,
			arrivals: 3, bodyLen: 1, side: hangup.Upstream, phases: sendBoth, kind: hangup.Reset,
			attempts: 3, noRetry: "attempts_exhausted", cause: isCause(syscall.ECONNRESET), refusal: "attempts_exhausted"},
		{name: "POST unknown length, keyed, reset then answered", steps: []step{reset, respond(201, "made")}, method: "POST",
			body: func() io.Reader { return unknownLength("hello") }, key: true, opts: fast,
			status: 201, arrivals: 2, bodyLen: 5},
		{name: "PUT body too long to keep", steps: []step{reset}, method: "PUT",
			body:     func() io.Reader { return unknownLength(strings.Repeat("b", 2048)) },
			opts:     withOpts(func(o *client.Options) { o.BufferBody = 1024 }),
			arrivals: 1, bodyLen: 2048, side: hangup.Upstream, phases: sendBoth, kind: hangup.Reset,
			attempts: 1, noRetry: "body_not_replayable", cause: isCause(syscall.ECONNRESET), refusal: "body_not_replayable", unbuffered: 1},
		{name: "POST refused: nothing written, retried", refused: true, method: "POST", body: func() io.Reader { return strings.NewReader("x") }, opts: fast,
			arrivals: 0, side: hangup.Upstream, phases: []hangup.Phase{hangup.Connect}, kind: hangup.Refused,
			attempts: 3, noRetry: "attempts_exhausted", cause: isDial, refusal: "attempts_exhausted"},
		{name: "GET stalls past the per-try timeout", steps: []step{stall}, method: "GET",
			opts:     withOpts(func(o *client.Options) { o.PerTryTimeout = 50 * time.Millisecond }),
			arrivals: 3, side: hangup.Upstream, phases: []hangup.Phase{hangup.AwaitHeaders}, kind: hangup.Timeout,
			attempts: 3, noRetry: "attempts_exhausted", cause: isTimeout, refusal: "attempts_exhausted"},
		{name: "GET stalls once, then answered", steps: []step{stall, respond(200, "ok")}, method: "GET",
			opts:   withOpts(func(o *client.Options) { o.PerTryTimeout = 50 * time.Millisecond }),
			status: 200, arrivals: 2},
		{name: "POST stalls past the per-try timeout", steps: []step{stall}, method: "POST", body: func() io.Reader { return strings.NewReader("x") },
			opts:     withOpts(func(o *client.Options) { o.PerTryTimeout = 50 * time.Millisecond }),
			arrivals: 1, bodyLen: 1, side: hangup.Upstream, phases: []hangup.Phase{hangup.AwaitHeaders}, kind: hangup.Timeout,
			attempts: 1, noRetry: "not_idempotent", cause: isTimeout, refusal: "not_idempotent"},
		{name: "GET 503 then answered", steps: []step{respond(503, "busy"), respond(200, "ok")}, method: "GET", opts: fast,
			status: 200, arrivals: 2},
		{name: "GET 503 every time", steps: []step{respond(503, "busy")}, method: "GET", opts: fast,
			status: 503, arrivals: 3, refusal: "attempts_exhausted"},
		{name: "GET 503 with a Retry-After too long", steps: []step{respond(503, "busy", "Retry-After: 60")}, method: "GET", opts: fast,
			status: 503, arrivals: 1, refusal: "retry_after_too_long"},
		{name: "POST 503 is not retried", steps: []step{respond(503, "busy")}, method: "POST", body: func() io.Reader { return strings.NewReader("x") }, opts: fast,
			status: 503, arrivals: 1, bodyLen: 1, refusal: "not_idempotent"},
		{name: "GET 500 is not a retry status", steps: []step{respond(500, "oops")}, method: "GET", opts: fast,
			status: 500, arrivals: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newScript(t, tc.steps...)
			url := s.URL
			if tc.refused {
				url = "http://" + refusedAddr(t)
			}
			tr, attempts := newTransport(t, tc.opts)
			var body io.Reader
			if tc.body != nil {
				body = tc.body()
			}
			req, err := http.NewRequestWithContext(t.Context(), tc.method, url+"/x", body)
			if err != nil {
				t.Fatal(err)
			}
			if tc.key {
				req.Header.Set("Idempotency-Key", "k-1")
			}
			res, err := (&http.Client{Transport: tr}).Do(req)
			if res != nil {
				drainClose(t, res)
			}

			checkArrivals(t, s.seen(), tc.arrivals, tc.method, tc.bodyLen)
			if got := collect(attempts); len(got) != max(tc.attempts, tc.arrivals, 1) || got[len(got)-1].Retry {
				t.Errorf("OnAttempt calls: %+v", got)
			}
			checkRefusal(t, tr.Stats(), tc.refusal)
			if st := tr.Stats(); st.Unbuffered != tc.unbuffered {
				t.Errorf("%d bodies counted unbuffered, want %d", st.Unbuffered, tc.unbuffered)
			}
			if tc.status != 0 {
				if err != nil || res.StatusCode != tc.status {
					t.Fatalf("got %v, %v; want status %d", res, err, tc.status)
				}
				return
			}
			checkError(t, err, tc.side, tc.phases, tc.kind, tc.attempts, tc.noRetry)
			if !tc.cause(err) {
				t.Errorf("error %v does not wrap the expected cause", err)
			}
		})
	}
}

func drainClose(t *testing.T, res *http.Response) {
	t.Helper()
	if _, err := io.Copy(io.Discard, res.Body); err != nil {
		t.Errorf("read response body: %v", err)
	}
	res.Body.Close()
}

// checkArrivals checks that the server read n requests, each with bodyLen
// body bytes.
func checkArrivals(t *testing.T, seen []arrival, n int, method string, bodyLen int64) {
	t.Helper()
	if len(seen) != n {
		t.Errorf("server saw %d requests, want %d", len(seen), n)
	}
	for i, a := range seen {
		if a.method != method || a.body != bodyLen {
			t.Errorf("arrival %d: %s with %d body bytes, want %s with %d", i+1, a.method, a.body, method, bodyLen)
		}
	}
}

// checkRefusal checks that exactly the given refusal was counted, if any.
func checkRefusal(t *testing.T, st client.Stats, refusal string) {
	t.Helper()
	want := map[string]int64{}
	if refusal != "" {
		want[refusal] = 1
	}
	if fmt.Sprint(st.Refusals) != fmt.Sprint(want) {
		t.Errorf("refusals %v, want %v", st.Refusals, want)
	}
}

// checkError checks that err wraps a *hangup.Error with these facts.
func checkError(t *testing.T, err error, side hangup.Side, phases []hangup.Phase, kind hangup.Kind, attempts int, noRetry string) {
	t.Helper()
	var he *hangup.Error
	if !errors.As(err, &he) {
		t.Fatalf("error %v (%T) does not wrap a *hangup.Error", err, err)
	}
	if he.Side != side || !slices.Contains(phases, he.Phase) || he.Kind != kind || he.Attempts != attempts || he.NoRetry != noRetry {
		t.Errorf("got %s/%s/%s, %d attempts, no retry %q; want %s/%v/%s, %d, %q\nerror: %v",
			he.Side, he.Phase, he.Kind, he.Attempts, he.NoRetry, side, phases, kind, attempts, noRetry, err)
	}
	if attempts > 1 && !strings.Contains(err.Error(), fmt.Sprintf("(after %d attempts over ", attempts)) {
		t.Errorf("message %q does not say how often the request was tried", err)
	}
}

// TestRetryAfter checks that a 503 with Retry-After: 1 is tried again no
// sooner than a second later, and that the caller gets the answer.
func TestRetryAfter(t *testing.T) {
	s := newScript(t, respond(503, "busy", "Retry-After: 1"), respond(200, "ok"))
	tr, attempts := newTransport(t, fast)
	req, _ := http.NewRequestWithContext(t.Context(), "GET", s.URL, nil)
	res, err := tr.RoundTrip(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("got %v, %v; want 200", res, err)
	}
	drainClose(t, res)
	seen := s.seen()
	if len(seen) != 2 {
		t.Fatalf("server saw %d requests, want 2", len(seen))
	}
	if gap := seen[1].at.Sub(seen[0].at); gap < time.Second {
		t.Errorf("retried after %v, before the Retry-After of 1s", gap)
	}
	if a := collect(attempts); len(a) != 2 || a[0].Delay != time.Second || a[0].Reason != "status_503" {
		t.Errorf("attempts %+v, want a first retried after 1s for status_503", a)
	}
	if st := tr.Stats(); st.Retries["status_503"] != 1 || st.Requests != 1 || st.Attempts != 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestAddIdempotencyKey checks that an unsafe request gets one key, the same
// on every attempt, and a safe or already keyed one gets none added.
func TestAddIdempotencyKey(t *testing.T) {
	cases := []struct {
		name, method, key string
		arrivals          int
		added             bool
	}{
		{"POST gets a key and is retried", "POST", "", 3, true},
		{"PATCH gets a key and is retried", "PATCH", "", 3, true},
		{"POST keeps its own key", "POST", "mine", 3, false},
		{"GET gets none", "GET", "", 3, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newScript(t, reset)
			opts := fast
			opts.AddIdempotencyKey = true
			tr, _ := newTransport(t, opts)
			req, _ := http.NewRequestWithContext(t.Context(), tc.method, s.URL, strings.NewReader("x"))
			if tc.key != "" {
				req.Header.Set("Idempotency-Key", tc.key)
			}
			if _, err := tr.RoundTrip(req); err == nil {
				t.Fatal("no error from a server that always resets")
			}
			if req.Header.Get("Idempotency-Key") != tc.key {
				t.Error("RoundTrip modified the caller's request headers")
			}
			seen := s.seen()
			if len(seen) != tc.arrivals {
				t.Fatalf("server saw %d requests, want %d", len(seen), tc.arrivals)
			}
			for _, a := range seen {
				if a.key != seen[0].key {
					t.Errorf("keys differ between attempts: %q, %q", seen[0].key, a.key)
				}
			}
			if added := seen[0].key != tc.key; added != tc.added || tc.added && len(seen[0].key) != 36 {
				t.Errorf("key %q; want added=%v", seen[0].key, tc.added)
			}
		})
	}
}

// TestBudget checks that retries stop at the budget: with a ratio of 0.5
// and no floor, every other request may be retried.
func TestBudget(t *testing.T) {
	s := newScript(t, respond(503, "busy"))
	opts := fast
	opts.MaxAttempts = 2
	opts.BudgetRatio = 0.5
	opts.BudgetMinPerSecond = -1
	tr, _ := newTransport(t, opts)
	for range 4 {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", s.URL, nil)
		res, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		drainClose(t, res)
	}
	st := tr.Stats()
	if st.Retries["status_503"] != 2 || st.BudgetExhausted != 2 || st.Refusals["budget_exhausted"] != 2 || st.Refusals["attempts_exhausted"] != 2 {
		t.Errorf("stats %+v; want 2 retries, 2 refused by the budget", st)
	}
	if n := len(s.seen()); n != 6 {
		t.Errorf("server saw %d requests, want 6", n)
	}
}

// TestMidBody checks that a response cut short in the middle of its body is
// not retried (the caller already has it) and that reading the body fails
// with a *hangup.Error in the stream_response phase wrapping the cause.
func TestMidBody(t *testing.T) {
	cases := []struct {
		name         string
		chunked, rst bool
		kind         hangup.Kind
	}{
		{"Content-Length, FIN", false, false, hangup.FIN},
		{"Content-Length, RST", false, true, hangup.Reset},
		{"chunked, FIN", true, false, hangup.FIN},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := hanguptest.NewUpstream(t, hanguptest.HangUpMidBody(tc.chunked, tc.rst))
			tr, attempts := newTransport(t, fast)
			req, _ := http.NewRequestWithContext(t.Context(), "GET", u.URL, nil)
			res, err := tr.RoundTrip(req)
			if err != nil || res.StatusCode != 200 {
				t.Fatalf("got %v, %v; want the 200", res, err)
			}
			_, err = io.ReadAll(res.Body)
			res.Body.Close()
			checkError(t, err, hangup.Upstream, []hangup.Phase{hangup.StreamResponse}, tc.kind, 1, "")
			if hangup.Classify(errors.Unwrap(err)) != tc.kind {
				t.Errorf("cause %v is not a %s", errors.Unwrap(err), tc.kind)
			}
			if n := u.Accepted(); n != 1 || len(collect(attempts)) != 1 {
				t.Errorf("%d connections; want one attempt", n)
			}
		})
	}
}
