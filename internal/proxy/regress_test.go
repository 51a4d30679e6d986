package proxy_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// A hedge that could not be sent (no free slot) must not use up an attempt
// or the budget: the request that then fails before any response byte is
// still retried.
func TestHedgeNotSentCostsNothing(t *testing.T) {
	var n atomic.Int32
	up := newScripted(t, func(int, *http.Request) string {
		if n.Add(1) == 1 {
			time.Sleep(150 * time.Millisecond) // past the hedge delay
			return actFIN
		}
		return ok200
	})
	h := start(t, "", routeOpts{upstream: up.URL,
		extra:     "    retries:\n      max_attempts: 2\n      backoff_base: 1ms\n      backoff_max: 5ms\n    hedge:\n      delay: 20ms\n",
		poolExtra: "    max_conns_per_endpoint: 1\n"})
	status, _ := send(t, h1Client(t), "GET", h.url("/h"), "")
	rec := h.logs.next(t, "/h")
	t.Logf("log: %v", rec)
	if status != 200 {
		t.Fatalf("status = %d, want 200 after one retry (only 1 attempt was ever sent; upstream saw %d)", status, up.count("/h"))
	}
}

// A request waiting out a Retry-After holds no endpoint slot: another
// request to the same endpoint meanwhile is served, not queued.
func TestBackoffHoldsNoSlot(t *testing.T) {
	up := newScripted(t, func(_ int, r *http.Request) string {
		if r.URL.Path == "/a" {
			return response(503, "Retry-After: 2\r\n")
		}
		return ok200
	})
	h := start(t, "", routeOpts{upstream: up.URL,
		extra:     "    retries:\n      max_attempts: 2\n      retry_on_status: [503]\n      backoff_base: 1ms\n      backoff_max: 5ms\n",
		poolExtra: "    max_conns_per_endpoint: 1\n    queue_timeout: 300ms\n"})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", h.url("/a"), nil)
		if res, err := h1Client(t).Do(req); err == nil {
			res.Body.Close()
		}
	}()
	deadline := time.Now().Add(wait)
	for up.count("/a") == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // /a is now in its 2 s backoff, nothing in flight
	status, body := send(t, h1Client(t), "GET", h.url("/b"), "")
	cancel()
	if status != 200 {
		t.Fatalf("/b status = %d (%q), want 200: the endpoint had nothing in flight", status, body)
	}
}

// The attempts array lists the attempts made: a caller who hangs up during
// the backoff after one attempt made one attempt, not two.
func TestAttemptsLogOnlyAttemptsMade(t *testing.T) {
	up := newScripted(t, func(int, *http.Request) string { return response(503, "Retry-After: 3\r\n") })
	h := start(t, "", routeOpts{upstream: up.URL, extra: fastRetries + "      retry_on_status: [503]\n"})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", h.url("/b"), nil)
	errc := make(chan error, 1)
	go func() {
		res, err := h1Client(t).Do(req)
		if err == nil {
			res.Body.Close()
		}
		errc <- err
	}()
	deadline := time.Now().Add(wait)
	for up.count("/b") == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	<-errc
	rec := h.logs.next(t, "/b")
	tries := attempts(t, rec)
	t.Logf("upstream saw %d; retries=%v attempts=%v", up.count("/b"), rec["retries"], tries)
	if len(tries) != up.count("/b") {
		t.Fatalf("access log lists %d attempts, upstream saw %d", len(tries), up.count("/b"))
	}
}
