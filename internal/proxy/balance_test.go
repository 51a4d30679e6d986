package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// An endpoint that keeps resetting is ejected after consecutive_failures,
// and traffic goes to the healthy one without a single caller-visible error
// (the failed attempts were retried there).
func TestPassiveEjection(t *testing.T) {
	bad := newScripted(t, func(int, *http.Request) string { return actReset })
	good := newScripted(t, func(int, *http.Request) string { return ok200 })
	h := start(t, "", routeOpts{upstream: bad.URL, extra: fastRetries,
		poolExtra: "      - url: " + good.URL + "\n    health:\n      passive:\n        consecutive_failures: 2\n        base_ejection: 1m\n        max_ejected_percent: 50\n"})
	c := h1Client(t)
	for i := range 20 {
		if status, _ := send(t, c, "GET", h.url(fmt.Sprintf("/e%d", i)), ""); status != 200 {
			t.Fatalf("request %d: status %d", i, status)
		}
	}
	// Round robin sends every other first attempt to the bad endpoint
	// until two failures in a row eject it.
	if n := bad.times(); len(n) != 2 {
		t.Fatalf("the resetting endpoint saw %d requests, want 2 before its ejection", len(n))
	}
	badHost := strings.TrimPrefix(bad.URL, "http://")
	if v := metricValue(t, h, "switchboard_endpoint_ejected", "endpoint", badHost); v != 1 {
		t.Errorf("switchboard_endpoint_ejected for the bad endpoint = %v, want 1", v)
	}
	if v := metricValue(t, h, "switchboard_retries_total", "reason", "reset_before_response"); v != 2 {
		t.Errorf("switchboard_retries_total{reason=reset_before_response} = %v, want 2", v)
	}
}

// metricValue returns the value of the series of name whose label has value.
func metricValue(t *testing.T, h *harness, name, label, value string) float64 {
	t.Helper()
	mfs, err := h.srv.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					if m.GetCounter() != nil {
						return m.GetCounter().GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, value)
	return 0
}

// With no endpoint available (here the only one fails its active health
// check), a request gets 503 destination_unavailable at once.
func TestNoEndpointAvailable(t *testing.T) {
	up := newScripted(t, func(_ int, r *http.Request) string {
		if r.URL.Path == "/health" {
			return response(500, "")
		}
		return ok200
	})
	h := start(t, "", routeOpts{upstream: up.URL,
		poolExtra: "    health:\n      active:\n        path: /health\n        interval: 50ms\n        timeout: 40ms\n        unhealthy_threshold: 1\n"})
	c := h1Client(t)
	deadline := time.Now().Add(wait)
	for {
		req, _ := http.NewRequest("GET", h.url("/x"), nil)
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusServiceUnavailable {
			if ps := res.Header.Get("Proxy-Status"); !strings.Contains(ps, "error=destination_unavailable") {
				t.Fatalf("Proxy-Status = %q", ps)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the unhealthy endpoint still gets requests (status %d)", res.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rec := h.logs.next(t, "/x")
	for rec["status"] != float64(503) {
		// Earlier /x records were 200s before the check failed.
		rec = lastRecord(t, h, "/x")
	}
	wantLog(t, rec, map[string]any{"side": "proxy", "phase": "queued", "action": "answered_5xx", "proxy_status": "destination_unavailable"})
}

func lastRecord(t *testing.T, h *harness, path string) map[string]any {
	t.Helper()
	h.logs.mu.Lock()
	defer h.logs.mu.Unlock()
	for i := len(h.logs.recs) - 1; i >= 0; i-- {
		if h.logs.recs[i]["path"] == path {
			return h.logs.recs[i]
		}
	}
	t.Fatalf("no record for %s", path)
	return nil
}

// With max_conns_per_endpoint reached, requests wait in a bounded queue: a
// caller who hangs up while queued leaves at once (rule R1) and never
// reaches the upstream; one who waits past queue_timeout gets 503.
func TestEndpointLimitQueue(t *testing.T) {
	release := make(chan struct{})
	up := newScripted(t, func(_ int, r *http.Request) string {
		if r.URL.Path == "/hold" {
			<-release
		}
		return ok200
	})
	defer close(release)
	h := start(t, "", routeOpts{upstream: up.URL,
		poolExtra: "    max_conns_per_endpoint: 1\n    queue_timeout: 300ms\n"})
	held := make(chan int, 1)
	go func() {
		status, _ := send(t, h1Client(t), "GET", h.url("/hold"), "")
		held <- status
	}()
	deadline := time.Now().Add(wait)
	for up.count("/hold") == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}

	t.Run("caller leaves the queue", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		req, _ := http.NewRequestWithContext(ctx, "GET", h.url("/queued"), nil)
		errc := make(chan error, 1)
		go func() {
			res, err := h1Client(t).Do(req)
			if err == nil {
				res.Body.Close()
			}
			errc <- err
		}()
		time.Sleep(50 * time.Millisecond)
		cancel()
		if err := recv(t, errc, "caller"); !errors.Is(err, context.Canceled) {
			t.Fatalf("caller error = %v", err)
		}
		rec := h.logs.next(t, "/queued")
		wantLog(t, rec, map[string]any{"status": 499, "side": "caller", "phase": "queued"})
		if d := rec["duration_ms"].(float64); d > 250 {
			t.Errorf("left the queue after %v ms, not at once", d)
		}
	})
	t.Run("queue timeout", func(t *testing.T) {
		status, body := send(t, h1Client(t), "GET", h.url("/late"), "")
		if status != http.StatusServiceUnavailable || !strings.Contains(body, "queue_timeout") {
			t.Fatalf("status %d %q, want 503 naming queue_timeout", status, body)
		}
		wantLog(t, h.logs.next(t, "/late"), map[string]any{"status": 503, "side": "proxy", "phase": "queued", "proxy_status": "destination_unavailable"})
	})
	if n := up.count("/queued") + up.count("/late"); n != 0 {
		t.Fatalf("queued requests reached the upstream %d times", n)
	}
	release <- struct{}{}
	if status := recv(t, held, "held request"); status != 200 {
		t.Fatalf("held request: %d", status)
	}
}

// A request queued for a slot gets it when the attempt holding it ends,
// and every request gives its slot back: later ones, made by attempts that
// reuse their memory, are served at once.
func TestEndpointLimitQueueServed(t *testing.T) {
	release := make(chan struct{})
	up := newScripted(t, func(_ int, r *http.Request) string {
		if r.URL.Path == "/hold" {
			<-release
		}
		return ok200
	})
	defer close(release)
	h := start(t, "", routeOpts{upstream: up.URL,
		poolExtra: "    max_conns_per_endpoint: 1\n    queue_timeout: 2s\n"})
	held := make(chan int, 1)
	go func() {
		status, _ := send(t, h1Client(t), "GET", h.url("/hold"), "")
		held <- status
	}()
	deadline := time.Now().Add(wait)
	for up.count("/hold") == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	queued := make(chan int, 1)
	go func() {
		status, _ := send(t, h1Client(t), "GET", h.url("/queued"), "")
		queued <- status
	}()
	time.Sleep(50 * time.Millisecond)
	if n := up.count("/queued"); n != 0 {
		t.Fatalf("the queued request reached the upstream %d times while the slot was held", n)
	}
	release <- struct{}{}
	if status := recv(t, held, "held request"); status != 200 {
		t.Fatalf("held request: %d", status)
	}
	if status := recv(t, queued, "queued request"); status != 200 {
		t.Fatalf("queued request: %d", status)
	}
	c := h1Client(t)
	for i := range 20 {
		// A slot not given back would queue this one into a 503.
		if status, _ := send(t, c, "GET", h.url("/after"), ""); status != 200 {
			t.Fatalf("request %d after the queue: %d", i, status)
		}
	}
}

// least_outstanding sends new requests away from an endpoint that is busy.
func TestLeastOutstanding(t *testing.T) {
	release := make(chan struct{})
	slow := newScripted(t, func(_ int, r *http.Request) string {
		if r.URL.Path == "/hold" {
			<-release
		}
		return ok200
	})
	fast := newScripted(t, func(int, *http.Request) string { return ok200 })
	h := start(t, "", routeOpts{upstream: slow.URL,
		poolExtra: "      - url: " + fast.URL + "\n    balance: least_outstanding\n"})
	var held sync.WaitGroup
	defer held.Wait()
	defer close(release)
	// Send requests that the slow endpoint holds until one is in flight
	// there (the fast one answers them at once).
	hc := h1Client(t)
	for i := 0; slow.count("/hold") == 0 && i < 50; i++ {
		held.Go(func() {
			if res, err := hc.Get(h.url("/hold")); err == nil {
				res.Body.Close()
			}
		})
		time.Sleep(10 * time.Millisecond)
	}
	if slow.count("/hold") == 0 {
		t.Fatal("could not load the slow endpoint")
	}
	c := h1Client(t)
	for i := range 20 {
		send(t, c, "GET", h.url(fmt.Sprintf("/n%d", i)), "")
	}
	sawSlow := 0
	for i := range 20 {
		sawSlow += slow.count(fmt.Sprintf("/n%d", i))
	}
	if sawSlow != 0 {
		t.Fatalf("the busy endpoint got %d of 20 new requests, want 0", sawSlow)
	}
}
