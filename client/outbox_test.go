package client_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-proxy/switchboard/client"
)

// quick spaces an outbox's attempts a few milliseconds apart.
var quick = client.OutboxOptions{BackoffBase: time.Millisecond, BackoffMax: 10 * time.Millisecond, MaxAttempts: 1000}

// freeAddr returns a loopback address where nothing listens (until a
// test starts a server there with serveAt).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// serveAt starts an HTTP server for h on addr.
func serveAt(t *testing.T, addr string, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// openOutbox opens an outbox in a temporary file whose outcomes arrive on
// the returned channel, and closes it when the test ends.
func openOutbox(t *testing.T, opts client.OutboxOptions) (*client.Outbox, <-chan client.Entry) {
	t.Helper()
	ch := make(chan client.Entry)
	opts.Outcomes = ch
	ob, err := client.OpenOutbox(filepath.Join(t.TempDir(), "outbox.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ob.Close(); err != nil {
			t.Error(err)
		}
	})
	return ob, ch
}

func awaitOutcome(t *testing.T, ch <-chan client.Entry) client.Entry {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no outcome within 10s")
		return client.Entry{}
	}
}

func post(t *testing.T, url, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestOutboxSendNow: a request the server answers is not queued, whatever
// the status, unless the status is one later delivery may mend.
func TestOutboxSendNow(t *testing.T) {
	cases := []struct {
		name   string
		status int
		queued bool
	}{
		{"200 answered", 200, false},
		{"400 answered", 400, false},
		{"500 answered", 500, false},
		{"503 queued", 503, true},
		{"429 queued", 429, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "3600") // keep the queued one off the sender
				w.WriteHeader(tc.status)
			}))
			defer srv.Close()
			ob, _ := openOutbox(t, client.OutboxOptions{})
			rc, err := ob.Send(t.Context(), post(t, srv.URL, "x"))
			if err != nil {
				t.Fatal(err)
			}
			if rc.Queued != tc.queued {
				t.Fatalf("queued = %v, want %v", rc.Queued, tc.queued)
			}
			if rc.Queued {
				e, err := ob.Get(rc.ID)
				if err != nil || e.State != client.Pending || len(e.Attempts) != 1 || e.Attempts[0].Status != tc.status {
					t.Fatalf("entry %+v, %v", e, err)
				}
				return
			}
			rc.Response.Body.Close()
			if rc.Response.StatusCode != tc.status {
				t.Fatalf("status %d", rc.Response.StatusCode)
			}
		})
	}
}

// TestOutboxDeliversWhenServerReturns: a request sent while nothing listens
// is queued, and delivered, with its body and Idempotency-Key, once the
// server is up.
func TestOutboxDeliversWhenServerReturns(t *testing.T) {
	addr := freeAddr(t)
	ob, outcomes := openOutbox(t, quick)
	rc, err := ob.Send(t.Context(), post(t, "http://"+addr+"/orders", "hello"))
	if err != nil {
		t.Fatal(err)
	}
	if !rc.Queued || rc.Err == nil {
		t.Fatalf("receipt %+v: want queued after an error", rc)
	}
	e, err := ob.Get(rc.ID)
	if err != nil {
		t.Fatal(err)
	}
	key := e.Header.Get("Idempotency-Key")
	if e.State != client.Pending || key == "" || len(e.Attempts) != 1 || e.Attempts[0].Err == "" {
		t.Fatalf("queued entry %+v", e)
	}

	type arrival struct{ key, body string }
	got := make(chan arrival, 1)
	serveAt(t, addr, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case got <- arrival{r.Header.Get("Idempotency-Key"), string(b)}:
		default:
		}
		fmt.Fprint(w, "ok")
	})
	done := awaitOutcome(t, outcomes)
	if done.ID != rc.ID || done.State != client.Delivered || done.Status != 200 || string(done.Response) != "ok" {
		t.Fatalf("outcome %+v", done)
	}
	if a := <-got; a.key != key || a.body != "hello" {
		t.Fatalf("server got %+v, want key %s and body hello", a, key)
	}
	if l, _ := ob.List(client.Delivered); len(l) != 1 {
		t.Fatalf("delivered list %v", l)
	}
}

// TestOutboxRetryAfter: a 503 with Retry-After: 1 is tried again no sooner
// than a second later.
func TestOutboxRetryAfter(t *testing.T) {
	var mu sync.Mutex
	var at []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		at = append(at, time.Now())
		n := len(at)
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(503)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	ob, outcomes := openOutbox(t, quick)
	rc, err := ob.Send(t.Context(), post(t, srv.URL, "x"))
	if err != nil || !rc.Queued {
		t.Fatalf("receipt %+v, %v", rc, err)
	}
	e := awaitOutcome(t, outcomes)
	if e.State != client.Delivered {
		t.Fatalf("outcome %+v", e)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(at) != 2 {
		t.Fatalf("%d arrivals, want 2", len(at))
	}
	if d := at[1].Sub(at[0]); d < time.Second {
		t.Fatalf("second attempt %v after the first, want ≥ 1s", d)
	}
}

// TestOutboxDeadAndReplay: an entry that runs out of attempts is dead, with
// every attempt recorded; replayed, it is delivered.
func TestOutboxDeadAndReplay(t *testing.T) {
	var mu sync.Mutex
	healthy := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ok := healthy
		mu.Unlock()
		if !ok {
			w.WriteHeader(502)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	opts := quick
	opts.MaxAttempts = 3
	ob, outcomes := openOutbox(t, opts)
	rc, err := ob.Send(t.Context(), post(t, srv.URL, "x"))
	if err != nil || !rc.Queued {
		t.Fatalf("receipt %+v, %v", rc, err)
	}
	e := awaitOutcome(t, outcomes)
	if e.State != client.Dead || e.Reason != "attempts_exhausted" || len(e.Attempts) != 3 {
		t.Fatalf("outcome %+v", e)
	}
	for i, a := range e.Attempts {
		if a.Status != 502 {
			t.Errorf("attempt %d: %+v", i, a)
		}
	}
	if l, _ := ob.List(client.Dead); len(l) != 1 || l[0].ID != rc.ID {
		t.Fatalf("dead list %v", l)
	}
	if err := ob.Replay(12345); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("replay of a missing entry: %v", err)
	}

	mu.Lock()
	healthy = true
	mu.Unlock()
	if err := ob.Replay(rc.ID); err != nil {
		t.Fatal(err)
	}
	e = awaitOutcome(t, outcomes)
	if e.State != client.Delivered || len(e.Attempts) != 4 {
		t.Fatalf("outcome after replay %+v", e)
	}
	if l, _ := ob.List(client.Dead); len(l) != 0 {
		t.Fatalf("dead list after replay %v", l)
	}
}

// TestOutboxRejected: a status later delivery would not mend ends the entry
// dead at once.
func TestOutboxRejected(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(422)
	}))
	defer srv.Close()
	ob, outcomes := openOutbox(t, quick)
	if _, err := ob.Enqueue(post(t, srv.URL, "x")); err != nil {
		t.Fatal(err)
	}
	if e := awaitOutcome(t, outcomes); e.State != client.Dead || e.Reason != "status_422" || len(e.Attempts) != 1 {
		t.Fatalf("outcome %+v", e)
	}
}

// TestOutboxDrop: a dropped entry is gone and never delivered.
func TestOutboxDrop(t *testing.T) {
	addr := freeAddr(t)
	ob, _ := openOutbox(t, quick)
	rc, err := ob.Send(t.Context(), post(t, "http://"+addr, "x"))
	if err != nil || !rc.Queued {
		t.Fatalf("receipt %+v, %v", rc, err)
	}
	if err := ob.Drop(rc.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := ob.Get(rc.ID); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("get after drop: %v", err)
	}
	if err := ob.Drop(rc.ID); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("second drop: %v", err)
	}
	if l, _ := ob.List(client.Pending); len(l) != 0 {
		t.Fatalf("pending after drop: %v", l)
	}
}

// TestOutboxLimits: a body over MaxBody, a cancelled caller and a closed
// outbox queue nothing.
func TestOutboxLimits(t *testing.T) {
	addr := freeAddr(t)
	opts := quick
	opts.MaxBody = 4
	ob, _ := openOutbox(t, opts)
	if _, err := ob.Send(t.Context(), post(t, "http://"+addr, "12345")); !errors.Is(err, client.ErrBodyTooLarge) {
		t.Fatalf("long body: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	rc, err := ob.Send(ctx, post(t, "http://"+addr, "1"))
	if err == nil || rc.Queued {
		t.Fatalf("cancelled caller: %+v, %v", rc, err)
	}
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ob.Send(t.Context(), post(t, "http://"+addr, "1")); !errors.Is(err, client.ErrOutboxClosed) {
		t.Fatalf("send after close: %v", err)
	}
}

// crashEntries is how many entries the child of TestOutboxSurvivesKill
// queues before it is killed.
const crashEntries = 50

// TestOutboxSurvivesKill queues entries in a child process while the server
// is down, kills the child with SIGKILL, then reopens the outbox and checks
// that every entry reaches a server that applies each Idempotency-Key once
// — and whose first answer to each is lost, so that every entry is
// delivered twice and applied once.
func TestOutboxSurvivesKill(t *testing.T) {
	if os.Getenv("OUTBOX_CRASH_PATH") != "" {
		crashChild(t)
		return
	}
	path := filepath.Join(t.TempDir(), "outbox.db")
	addr := freeAddr(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestOutboxSurvivesKill$")
	cmd.Env = append(os.Environ(), "OUTBOX_CRASH_PATH="+path, "OUTBOX_CRASH_ADDR="+addr)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "queued "+strconv.Itoa(crashEntries)+"\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child said %q, %v", line, err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // "signal: killed"

	var mu sync.Mutex
	deliveries := map[string]int{} // by Idempotency-Key
	applied := map[string]int{}    // by body: the effect of a request
	serveAt(t, addr, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		k := r.Header.Get("Idempotency-Key")
		mu.Lock()
		deliveries[k]++
		first := deliveries[k] == 1
		if first {
			applied[string(b)]++
		}
		mu.Unlock()
		if first {
			resetConn(w) // applied, but the answer is lost
			return
		}
		fmt.Fprint(w, "already applied")
	})
	ob, outcomes := openOutboxAt(t, path, quick)
	for range crashEntries {
		if e := awaitOutcome(t, outcomes); e.State != client.Delivered {
			t.Fatalf("outcome %+v", e)
		}
	}
	if l, _ := ob.List(client.Pending); len(l) != 0 {
		t.Errorf("%d still pending", len(l))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(deliveries) != crashEntries || len(applied) != crashEntries {
		t.Fatalf("%d keys delivered, %d bodies applied; want %d", len(deliveries), len(applied), crashEntries)
	}
	for i := range crashEntries {
		if n := applied["entry "+strconv.Itoa(i)]; n != 1 {
			t.Errorf("entry %d applied %d times", i, n)
		}
	}
	for k, n := range deliveries {
		if n < 2 {
			t.Errorf("key %s delivered %d times, want ≥ 2 (first answer lost)", k, n)
		}
	}
}

// crashChild is the child of TestOutboxSurvivesKill: it queues the entries,
// says so, and waits to be killed.
func crashChild(t *testing.T) {
	opts := quick
	opts.MaxAttempts = 1 << 30
	ob, err := client.OpenOutbox(os.Getenv("OUTBOX_CRASH_PATH"), opts)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + os.Getenv("OUTBOX_CRASH_ADDR")
	for i := range crashEntries {
		rc, err := ob.Send(t.Context(), post(t, url, "entry "+strconv.Itoa(i)))
		if err != nil || !rc.Queued {
			t.Fatalf("entry %d: %+v, %v", i, rc, err)
		}
	}
	fmt.Printf("queued %d\n", crashEntries)
	select {} // until SIGKILL
}

func openOutboxAt(t *testing.T, path string, opts client.OutboxOptions) (*client.Outbox, <-chan client.Entry) {
	t.Helper()
	ch := make(chan client.Entry)
	opts.Outcomes = ch
	ob, err := client.OpenOutbox(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ob.Close() })
	return ob, ch
}

// answer503 answers every request at once, from memory, with a 503 asking
// for an hour's wait: Send queues each request and the sender leaves it.
type answer503 struct{}

func (answer503) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	return &http.Response{StatusCode: 503, Header: http.Header{"Retry-After": {"3600"}},
		Body: http.NoBody, Request: r}, nil
}

// BenchmarkOutboxQueue measures how many entries a second Send writes to
// disk (one fsynced bbolt transaction each) for 1 KiB POSTs the server
// turned away.
func BenchmarkOutboxQueue(b *testing.B) {
	ob, err := client.OpenOutbox(filepath.Join(b.TempDir(), "outbox.db"), client.OutboxOptions{Transport: answer503{}})
	if err != nil {
		b.Fatal(err)
	}
	defer ob.Close()
	body := strings.Repeat("x", 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		req, _ := http.NewRequest("POST", "http://orders.invalid/v1/orders", strings.NewReader(body))
		rc, err := ob.Send(b.Context(), req)
		if err != nil || !rc.Queued {
			b.Fatalf("%+v, %v", rc, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// TestOutboxExpires: an entry still undelivered at MaxAge is dead.
func TestOutboxExpires(t *testing.T) {
	addr := freeAddr(t)
	opts := quick
	opts.MaxAge = 50 * time.Millisecond
	ob, outcomes := openOutbox(t, opts)
	rc, err := ob.Send(t.Context(), post(t, "http://"+addr, "x"))
	if err != nil || !rc.Queued {
		t.Fatalf("receipt %+v, %v", rc, err)
	}
	e := awaitOutcome(t, outcomes)
	if e.State != client.Dead || e.Reason != "expired" || e.Ended.Before(e.Created) {
		t.Fatalf("outcome %+v", e)
	}
	if l, _ := ob.List(client.Dead); len(l) != 1 {
		t.Fatalf("dead list %v", l)
	}
}
