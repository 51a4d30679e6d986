package queue

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/switchboard-proxy/switchboard/hangup"
	"github.com/switchboard-proxy/switchboard/internal/attempt"
)

func openQueue(t testing.TB, dir string) *Queue {
	t.Helper()
	q, err := Open(t.Context(), Options{Dir: dir, MaxBody: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func testPolicy() *attempt.Policy {
	return &attempt.Policy{
		MaxAttempts:   3,
		RetryOnStatus: []int{502, 503, 504},
		BackoffBase:   20 * time.Millisecond,
		BackoffMax:    200 * time.Millisecond,
		RetryAfterMax: time.Minute,
		Rand:          func() float64 { return 0.999 },
	}
}

// runWorker runs a worker until the test ends.
func runWorker(t *testing.T, q *Queue, cfg WorkerConfig) *Worker {
	t.Helper()
	if cfg.Policy == nil {
		cfg.Policy = testPolicy()
	}
	w, err := q.NewWorker(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// waitState waits until delivery id is in state.
func waitState(t *testing.T, q *Queue, id string, state State) *Record {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(20 * time.Second)
	for {
		r, err := q.Get(t.Context(), id)
		if err == nil && r.State == state {
			return r
		}
		select {
		case <-tick.C:
		case <-timeout:
			t.Fatalf("delivery %s: still %+v (err %v), want %s", id, r, err, state)
		}
	}
}

func post(route string, body string) Message {
	return Message{
		Route: route, Method: "POST", Target: "http://upstream.test/hook",
		Header: http.Header{"Content-Type": {"application/json"}},
		Body:   []byte(body),
	}
}

func workDepth(t *testing.T, q *Queue) uint64 {
	t.Helper()
	info, err := q.work.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// waitDepth waits until the work stream holds want messages. A worker acks
// after it has written the record, so a test that saw the record's final
// state may still see the message for a moment.
func waitDepth(t *testing.T, q *Queue, want uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := workDepth(t, q)
		if d == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages left in the work stream, want %d", d, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPutGetList(t *testing.T) {
	q := openQueue(t, t.TempDir())
	ctx := t.Context()
	m := post("hooks", `{"a":1}`)
	m.Header.Set("Connection", "X-Hop")
	m.Header.Set("X-Hop", "1")
	m.Header.Set("Keep-Alive", "timeout=5")
	m.Header.Set("Idempotency-Key", "caller-key")
	id1, err := q.Put(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := q.Put(ctx, post("hooks", "{}"))
	if err != nil {
		t.Fatal(err)
	}
	id3, err := q.Put(ctx, post("jobs", "{}"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := q.Get(ctx, id1)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != Pending || r.Route != "hooks" || r.Method != "POST" || r.IdempotencyKey != "caller-key" || r.Size != 7 {
		t.Errorf("record %+v", r)
	}
	if r, _ := q.Get(ctx, id2); r.IdempotencyKey != id2 {
		t.Errorf("generated Idempotency-Key %q, want the id %q", r.IdempotencyKey, id2)
	}

	hooks, err := q.List(ctx, "hooks", Pending)
	if err != nil {
		t.Fatal(err)
	}
	if len(hooks) != 2 || hooks[0].ID != id1 || hooks[1].ID != id2 {
		t.Errorf("List(hooks, pending) = %v", ids(hooks))
	}
	all, _ := q.List(ctx, "", "")
	if len(all) != 3 || all[2].ID != id3 {
		t.Errorf("List(all) = %v", ids(all))
	}
	if dead, _ := q.List(ctx, "", Dead); len(dead) != 0 {
		t.Errorf("List(dead) = %v", ids(dead))
	}
	if _, err := q.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := q.Get(ctx, "bad.key*"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(invalid key) = %v, want ErrNotFound", err)
	}

	// The stored request lost its hop-by-hop headers.
	got := deliverAll(t, q, 3)
	h := got[id1].Header
	for _, k := range []string{"Connection", "X-Hop", "Keep-Alive"} {
		if h.Get(k) != "" {
			t.Errorf("hop-by-hop %s was stored: %q", k, h.Get(k))
		}
	}
	if h.Get("Content-Type") != "application/json" || h.Get("Idempotency-Key") != "caller-key" {
		t.Errorf("stored header %v", h)
	}
	if string(got[id1].Body) != `{"a":1}` {
		t.Errorf("stored body %q", got[id1].Body)
	}
}

func ids(rs []*Record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

// deliverAll runs a worker that answers 200 until n messages were
// delivered, and returns them by id.
func deliverAll(t *testing.T, q *Queue, n int) map[string]Message {
	t.Helper()
	got := make(chan Message, n)
	runWorker(t, q, WorkerConfig{Deliver: func(ctx context.Context, m Message) Outcome {
		got <- m
		return Outcome{Status: 200}
	}})
	out := map[string]Message{}
	for range n {
		m := <-got
		out[m.ID] = m
	}
	return out
}

func TestTooLarge(t *testing.T) {
	q := openQueue(t, t.TempDir())
	m := post("hooks", strings.Repeat("x", 4<<10+1))
	_, err := q.Put(t.Context(), m)
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Limit != 4<<10 || tl.Size != 4<<10+1 {
		t.Fatalf("Put(oversized) = %v, want a TooLargeError", err)
	}
	if all, _ := q.List(t.Context(), "", ""); len(all) != 0 || workDepth(t, q) != 0 {
		t.Fatalf("something was stored: %v", ids(all))
	}
}

func TestDeliveredOnce(t *testing.T) {
	q := openQueue(t, t.TempDir())
	id, err := q.Put(t.Context(), post("hooks", "payload"))
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	runWorker(t, q, WorkerConfig{Deliver: func(ctx context.Context, m Message) Outcome {
		calls.Add(1)
		return Outcome{Status: 201, Header: http.Header{"X-Up": {"yes"}}, Body: []byte("created")}
	}})
	r := waitState(t, q, id, Delivered)
	if r.Attempts != 1 || len(r.Outcomes) != 1 || r.Outcomes[0].Status != 201 {
		t.Errorf("record %+v", r)
	}
	if r.Response == nil || r.Response.Status != 201 || string(r.Response.Body) != "created" || r.Response.Header.Get("X-Up") != "yes" {
		t.Errorf("response %+v", r.Response)
	}
	// Acked: nothing is left in the stream to deliver again.
	waitDepth(t, q, 0)
	if n := calls.Load(); n != 1 {
		t.Errorf("Deliver called %d times", n)
	}
}

// flaky answers 503 while failing is set, 200 otherwise, and records every
// call.
type flaky struct {
	failing    atomic.Bool
	retryAfter string
	mu         sync.Mutex
	calls      []call // guarded by mu
}

type call struct {
	at  time.Time
	key string
}

func (f *flaky) deliver(ctx context.Context, m Message) Outcome {
	f.mu.Lock()
	f.calls = append(f.calls, call{time.Now(), m.Header.Get("Idempotency-Key")})
	f.mu.Unlock()
	if f.failing.Load() {
		h := http.Header{}
		if f.retryAfter != "" {
			h.Set("Retry-After", f.retryAfter)
		}
		return Outcome{Status: 503, Header: h}
	}
	return Outcome{Status: 200}
}

func (f *flaky) snapshot() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

func TestRetryDeadReplay(t *testing.T) {
	q := openQueue(t, t.TempDir())
	f := &flaky{}
	f.failing.Store(true)
	runWorker(t, q, WorkerConfig{Deliver: f.deliver})
	m := post("hooks", "x")
	m.Header.Set("Idempotency-Key", "k1")
	id, err := q.Put(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	r := waitState(t, q, id, Dead)
	if r.Reason != attempt.ReasonAttempts || r.Attempts != 3 || len(r.Outcomes) != 3 {
		t.Fatalf("dead record %+v", r)
	}
	calls := f.snapshot()
	// Backoff ceilings 20ms then 40ms, drawn at 0.999.
	for i, min := range []time.Duration{19 * time.Millisecond, 39 * time.Millisecond} {
		if gap := calls[i+1].at.Sub(calls[i].at); gap < min {
			t.Errorf("gap before attempt %d: %v, want at least %v", i+2, gap, min)
		}
	}
	if v := r.Outcomes[2].Verdict; v != attempt.ReasonAttempts {
		t.Errorf("last verdict %q", v)
	}
	if err := q.Cancel(t.Context(), id); !errors.As(err, new(*StateError)) {
		t.Errorf("Cancel(dead) = %v, want a StateError", err)
	}

	f.failing.Store(false)
	if err := q.Replay(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	r = waitState(t, q, id, Delivered)
	if r.Attempts != 1 || len(r.Outcomes) != 4 || r.Generation != 1 || r.Response.Status != 200 {
		t.Errorf("replayed record %+v", r)
	}
	for i, c := range f.snapshot() {
		if c.key != "k1" {
			t.Errorf("attempt %d carried Idempotency-Key %q", i+1, c.key)
		}
	}
	if err := q.Replay(t.Context(), id); !errors.As(err, new(*StateError)) {
		t.Errorf("Replay(delivered) = %v, want a StateError", err)
	}
	n, err := q.Purge(t.Context(), Delivered, time.Time{})
	if err != nil || n != 1 {
		t.Errorf("Purge(delivered) = %d, %v", n, err)
	}
	if _, err := q.Get(t.Context(), id); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after purge: %v", err)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	q := openQueue(t, t.TempDir())
	f := &flaky{retryAfter: "1"}
	f.failing.Store(true)
	p := testPolicy()
	p.MaxAttempts = 2
	runWorker(t, q, WorkerConfig{Deliver: f.deliver, Policy: p})
	id, err := q.Put(t.Context(), post("hooks", "x"))
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, q, id, Dead)
	calls := f.snapshot()
	if gap := calls[1].at.Sub(calls[0].at); gap < time.Second {
		t.Errorf("second attempt %v after the first, want Retry-After's 1s", gap)
	}
}

func TestNotRetryableFailureIsDead(t *testing.T) {
	q := openQueue(t, t.TempDir())
	runWorker(t, q, WorkerConfig{Deliver: func(ctx context.Context, m Message) Outcome {
		return Outcome{Failure: &attempt.Failure{Side: hangup.Upstream, Phase: hangup.StreamResponse, Kind: hangup.Reset, Err: syscall.ECONNRESET}}
	}})
	id, err := q.Put(t.Context(), post("hooks", "x"))
	if err != nil {
		t.Fatal(err)
	}
	r := waitState(t, q, id, Dead)
	if r.Reason != reasonNotRetryable || r.Attempts != 1 || r.Outcomes[0].Error == "" {
		t.Errorf("record %+v", r)
	}
}

func TestMaxAge(t *testing.T) {
	q := openQueue(t, t.TempDir())
	var calls atomic.Int32
	runWorker(t, q, WorkerConfig{MaxAge: time.Hour, Deliver: func(ctx context.Context, m Message) Outcome {
		calls.Add(1)
		return Outcome{Status: 200}
	}})
	m := post("hooks", "x")
	m.Arrived = time.Now().Add(-2 * time.Hour)
	id, err := q.Put(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	r := waitState(t, q, id, Dead)
	if r.Reason != reasonMaxAge || r.Attempts != 0 || calls.Load() != 0 {
		t.Errorf("record %+v after %d calls", r, calls.Load())
	}
}

func TestCancel(t *testing.T) {
	q := openQueue(t, t.TempDir())
	id, err := q.Put(t.Context(), post("hooks", "x"))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Cancel(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	r, _ := q.Get(t.Context(), id)
	if r.State != Cancelled {
		t.Errorf("state %s", r.State)
	}
	if d := workDepth(t, q); d != 0 {
		t.Errorf("cancelled message still in the stream (%d)", d)
	}
	if err := q.Cancel(t.Context(), id); !errors.As(err, new(*StateError)) {
		t.Errorf("second Cancel = %v, want a StateError", err)
	}
	if err := q.Cancel(t.Context(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Cancel(unknown) = %v", err)
	}
	if _, err := q.Purge(t.Context(), Pending, time.Time{}); err == nil {
		t.Error("Purge(pending) succeeded")
	}
	if n, err := q.Purge(t.Context(), Cancelled, time.Time{}); n != 1 || err != nil {
		t.Errorf("Purge(cancelled) = %d, %v", n, err)
	}
}

// TestRedelivery takes a message the way a worker does and never acks it,
// as an instance that died would; another worker gets it after AckWait.
func TestRedelivery(t *testing.T) {
	q := openQueue(t, t.TempDir())
	const ackWait = 300 * time.Millisecond
	dead, err := q.NewWorker(t.Context(), WorkerConfig{Deliver: func(context.Context, Message) Outcome { panic("unused") }, Policy: testPolicy(), AckWait: ackWait})
	if err != nil {
		t.Fatal(err)
	}
	id, err := q.Put(t.Context(), post("hooks", "x"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := dead.fetch(t.Context(), 1, func(jetstream.Msg) {})
	if err != nil || n != 1 {
		t.Fatalf("fetch: %d messages, %v", n, err)
	}
	taken := time.Now()

	got := make(chan time.Time, 1)
	runWorker(t, q, WorkerConfig{AckWait: ackWait, Deliver: func(ctx context.Context, m Message) Outcome {
		got <- time.Now()
		return Outcome{Status: 200}
	}})
	if at := <-got; at.Sub(taken) < ackWait*9/10 {
		t.Errorf("redelivered %v after it was taken, before AckWait %v", at.Sub(taken), ackWait)
	}
	waitState(t, q, id, Delivered)
}

// TestOneDeliveryAtATime runs an attempt lasting several AckWaits while a
// second worker waits for work: the first keeps the message in progress,
// so the second never gets it.
func TestOneDeliveryAtATime(t *testing.T) {
	q := openQueue(t, t.TempDir())
	const ackWait = 200 * time.Millisecond
	var calls, running atomic.Int32
	deliver := func(ctx context.Context, m Message) Outcome {
		calls.Add(1)
		if running.Add(1) > 1 {
			t.Error("two deliveries of one message at once")
		}
		defer running.Add(-1)
		select {
		case <-time.After(4 * ackWait): // a long upstream call
		case <-ctx.Done():
		}
		return Outcome{Status: 200}
	}
	runWorker(t, q, WorkerConfig{AckWait: ackWait, Deliver: deliver})
	runWorker(t, q, WorkerConfig{AckWait: ackWait, Deliver: deliver})
	id, err := q.Put(t.Context(), post("hooks", "x"))
	if err != nil {
		t.Fatal(err)
	}
	r := waitState(t, q, id, Delivered)
	if n := calls.Load(); n != 1 || r.Attempts != 1 {
		t.Errorf("%d deliveries, %d attempts recorded; want 1", n, r.Attempts)
	}
}

// TestExternalURL reaches a second nats-server over loopback TCP through
// Options.URL, the path an external cluster takes.
func TestExternalURL(t *testing.T) {
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		JetStream: true, StoreDir: t.TempDir(), SyncAlways: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	q, err := Open(t.Context(), Options{URL: srv.ClientURL(), Stream: "EXT"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	id, err := q.Put(t.Context(), post("hooks", "over tcp"))
	if err != nil {
		t.Fatal(err)
	}
	got := deliverAll(t, q, 1)
	if !bytes.Equal(got[id].Body, []byte("over tcp")) {
		t.Errorf("delivered %q", got[id].Body)
	}
	waitState(t, q, id, Delivered)
}

// TestMessageWithoutRecord stores a message as Put does and stops before
// the record, as a crash between the two writes would: the worker writes
// the record from the message and delivers it.
func TestMessageWithoutRecord(t *testing.T) {
	q := openQueue(t, t.TempDir())
	m := post("hooks", "orphan")
	m.ID, m.IdempotencyKey, m.Arrived = "orphan1", "orphan1", time.Now()
	data, err := m.encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.js.Publish(t.Context(), q.workSubject(), data); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Get(t.Context(), m.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get before delivery: %v", err)
	}
	got := deliverAll(t, q, 1)
	if string(got[m.ID].Body) != "orphan" {
		t.Fatalf("delivered %v", got)
	}
	r := waitState(t, q, m.ID, Delivered)
	if r.Route != "hooks" || r.Attempts != 1 {
		t.Errorf("record %+v", r)
	}
}

// TestRoutePolicy checks that a route's own policy decides its retries,
// and that other routes fall back to Policy.
func TestRoutePolicy(t *testing.T) {
	q := openQueue(t, t.TempDir())
	f := &flaky{}
	f.failing.Store(true)
	once := testPolicy()
	once.MaxAttempts = 1
	runWorker(t, q, WorkerConfig{Deliver: f.deliver, RoutePolicy: func(route string) *attempt.Policy {
		if route == "once" {
			return once
		}
		return nil
	}})
	idOnce, err := q.Put(t.Context(), post("once", "x"))
	if err != nil {
		t.Fatal(err)
	}
	idOther, err := q.Put(t.Context(), post("other", "x"))
	if err != nil {
		t.Fatal(err)
	}
	if r := waitState(t, q, idOnce, Dead); r.Attempts != 1 {
		t.Errorf("route with its own policy: %d attempts, want 1", r.Attempts)
	}
	if r := waitState(t, q, idOther, Dead); r.Attempts != 3 {
		t.Errorf("route without: %d attempts, want Policy's 3", r.Attempts)
	}
}

// TestDeliveryNotHeldByBatch: with room for several deliveries, a single
// message is delivered as soon as it arrives, not when the fetch's batch
// fills or its wait ends (5s).
func TestDeliveryNotHeldByBatch(t *testing.T) {
	q := openQueue(t, t.TempDir())
	got := make(chan struct{}, 1)
	runWorker(t, q, WorkerConfig{Concurrency: 4, Deliver: func(context.Context, Message) Outcome {
		got <- struct{}{}
		return Outcome{Status: 200}
	}})
	if _, err := q.Put(t.Context(), post("hooks", "x")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(4 * time.Second):
		t.Fatal("a lone message waited for the batch to fill")
	}
}

// TestNotBefore: the first attempt waits for Message.NotBefore, which the
// record shows as next_attempt meanwhile.
func TestNotBefore(t *testing.T) {
	q := openQueue(t, t.TempDir())
	f := &flaky{}
	runWorker(t, q, WorkerConfig{Deliver: f.deliver})
	m := post("hooks", "x")
	m.NotBefore = time.Now().Add(300 * time.Millisecond)
	id, err := q.Put(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := q.Get(t.Context(), id); err != nil || !r.NextAttempt.Equal(m.NotBefore) {
		t.Errorf("record %+v, %v; want next_attempt %v", r, err, m.NotBefore)
	}
	waitState(t, q, id, Delivered)
	if calls := f.snapshot(); len(calls) != 1 || calls[0].at.Before(m.NotBefore) {
		t.Errorf("calls %+v; want one at or after %v", calls, m.NotBefore)
	}
}
