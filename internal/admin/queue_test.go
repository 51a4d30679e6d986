package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/attempt"
	"github.com/switchboard-proxy/switchboard/internal/queue"
)

// TestQueueNotEnabled: without a queue every queue path is 404.
func TestQueueNotEnabled(t *testing.T) {
	h := Handler(Options{})
	for _, req := range []string{"GET /queue/deliveries", "GET /queue/deliveries/x", "POST /queue/replay", "POST /queue/purge?state=dead"} {
		method, path, _ := strings.Cut(req, " ")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
		if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "queue not enabled") {
			t.Errorf("%s = %d %q; want 404 queue not enabled", req, w.Code, w.Body.String())
		}
	}
}

// upstream is a delivery function that fails with 503 until up is set.
type upstream struct{ up atomic.Bool }

func (u *upstream) deliver(ctx context.Context, m queue.Message) queue.Outcome {
	if u.up.Load() {
		return queue.Outcome{Status: http.StatusOK}
	}
	return queue.Outcome{Status: http.StatusServiceUnavailable}
}

// TestQueueAPI drives every queue endpoint against a real embedded queue:
// one delivery goes dead, one stays pending (no worker takes it while it
// waits), and the API lists, shows, replays, drops and purges them.
func TestQueueAPI(t *testing.T) {
	q, err := queue.Open(t.Context(), queue.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	up := &upstream{}
	w, err := q.NewWorker(t.Context(), queue.WorkerConfig{
		Deliver: up.deliver,
		Policy:  &attempt.Policy{MaxAttempts: 1, RetryOnStatus: []int{503}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	put := func(route string) string {
		id, err := q.Put(t.Context(), queue.Message{Route: route, Method: "POST", Target: "/hook", Body: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	dead := put("hooks")
	waitFor(t, q, dead, queue.Dead)

	h := Handler(Options{Token: "s3cret", Queue: q})
	do := func(method, path string) (int, string) {
		r := httptest.NewRequest(method, path, nil)
		r.Header.Set("Authorization", "Bearer s3cret")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" && rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: Content-Type %q", method, path, ct)
		}
		return rec.Code, rec.Body.String()
	}
	cases := []struct {
		name, method, path string
		status             int
		body               string
	}{
		{"list all", "GET", "/queue/deliveries", 200, dead},
		{"list dead of route", "GET", "/queue/deliveries?route=hooks&state=dead", 200, dead},
		{"list other route", "GET", "/queue/deliveries?route=other", 200, `"deliveries": []`},
		{"list bad state", "GET", "/queue/deliveries?state=zombie", 400, "want pending, delivered, dead or cancelled"},
		{"show", "GET", "/queue/deliveries/" + dead, 200, `"reason": "attempts_exhausted"`},
		{"show unknown", "GET", "/queue/deliveries/nope", 404, "no such delivery"},
		{"show bad id", "GET", "/queue/deliveries/a.b*", 404, "no such delivery"},
		{"replay unknown", "POST", "/queue/deliveries/nope/replay", 404, "no such delivery"},
		{"purge pending", "POST", "/queue/purge?state=pending", 400, "cannot be purged"},
		{"purge no state", "POST", "/queue/purge", 400, "state="},
		{"purge bad before", "POST", "/queue/purge?state=dead&before=yesterday", 400, "want a duration"},
		{"purge recent dead", "POST", "/queue/purge?state=dead&before=1h", 200, `"purged": 0`},
		{"wrong method", "PUT", "/queue/deliveries/" + dead, 405, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(tc.method, tc.path)
			if code != tc.status || !strings.Contains(body, tc.body) {
				t.Errorf("%s %s = %d %q; want %d containing %q", tc.method, tc.path, code, body, tc.status, tc.body)
			}
		})
	}

	// Replay one dead letter: it fails again and is dead again.
	if code, body := do("POST", "/queue/deliveries/"+dead+"/replay"); code != 200 || !strings.Contains(body, dead) {
		t.Fatalf("replay = %d %q", code, body)
	}
	waitFor(t, q, dead, queue.Dead)
	// Replay all dead of the route once the upstream is back.
	up.up.Store(true)
	code, body := do("POST", "/queue/replay?route=hooks")
	var rr ReplayResponse
	if err := json.Unmarshal([]byte(body), &rr); code != 200 || err != nil || len(rr.Replayed) != 1 || rr.Replayed[0] != dead {
		t.Fatalf("replay all = %d %q", code, body)
	}
	waitFor(t, q, dead, queue.Delivered)
	if code, body := do("POST", "/queue/deliveries/"+dead+"/replay"); code != 409 || !strings.Contains(body, "it is delivered") {
		t.Errorf("replay delivered = %d %q; want 409", code, body)
	}
	if code, body := do("DELETE", "/queue/deliveries/"+dead); code != 409 {
		t.Errorf("drop delivered = %d %q; want 409", code, body)
	}
	if code, body := do("POST", "/queue/purge?state=delivered"); code != 200 || !strings.Contains(body, `"purged": 1`) {
		t.Errorf("purge delivered = %d %q", code, body)
	}
	if code, _ := do("GET", "/queue/deliveries/"+dead); code != 404 {
		t.Errorf("show purged = %d; want 404", code)
	}

	// Drop a dead letter: it is removed.
	up.up.Store(false)
	dead2 := put("hooks")
	waitFor(t, q, dead2, queue.Dead)
	if code, body := do("DELETE", "/queue/deliveries/"+dead2); code != 200 || !strings.Contains(body, `"result": "removed"`) {
		t.Errorf("drop dead = %d %q", code, body)
	}
	if code, _ := do("DELETE", "/queue/deliveries/"+dead2); code != 404 {
		t.Errorf("drop again = %d; want 404", code)
	}
}

func waitFor(t *testing.T, q *queue.Queue, id string, state queue.State) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := q.Get(t.Context(), id)
		if err == nil && r.State == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery %s: %+v, %v; want %s", id, r, err, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
