package proxy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// notification is the callback body as a receiver reads it.
type notification struct {
	ID        string `json:"id"`
	Route     string `json:"route"`
	State     string `json:"state"`
	Attempts  int    `json:"attempts"`
	Status    int    `json:"status"`
	Reason    string `json:"reason"`
	StatusURL string `json:"status_url"`
	// Not in the body: what the request looked like.
	target, key, contentType string
}

// callbackRecorder is a callback receiver that records every notification
// and passes it on.
type callbackRecorder struct {
	got chan notification
	mu  sync.Mutex
	all []notification
}

func (c *callbackRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var n notification
	if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	n.target, n.key, n.contentType = r.URL.RequestURI(), r.Header.Get("Idempotency-Key"), r.Header.Get("Content-Type")
	c.mu.Lock()
	c.all = append(c.all, n)
	c.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	select {
	case c.got <- n:
	default: // one too many: count shows it
	}
}

func (c *callbackRecorder) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.all)
}

// callbackRoute is the YAML of an async route with short backoffs, two
// attempts at most, and a callback URL.
func callbackRoute(url string) string {
	return asyncRoute("10ms", "50ms") + "      max_attempts: 2\n      callback_url: " + url + "\n"
}

// TestQueueCallback: a delivery that ends, delivered or dead, is notified
// once to its route's callback URL, path and query kept.
func TestQueueCallback(t *testing.T) {
	cb := &callbackRecorder{got: make(chan notification, 2)}
	cbURL := hookUpstream(t, cb) + "/done?team=a"
	down := hookUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	h := start(t, queueTop(t.TempDir()),
		routeOpts{prefix: "/ok/", upstream: hookUpstream(t, &hookRecorder{}), extra: callbackRoute(cbURL)},
		routeOpts{prefix: "/down/", upstream: down, extra: callbackRoute(cbURL)})
	c := h1Client(t)
	okID, _ := postAsync(t, h, c, "/ok/a", "", "{}")
	deadID, _ := postAsync(t, h, c, "/down/a", "", "{}")

	got := map[string]notification{}
	for range 2 {
		n := recv(t, cb.got, "callback")
		got[n.ID] = n
	}
	want := map[string]notification{
		okID: {ID: okID, Route: "r0", State: "delivered", Attempts: 1, Status: http.StatusCreated,
			StatusURL: "/_switchboard/deliveries/" + okID,
			target:    "/done?team=a", key: okID + ".delivered", contentType: "application/json"},
		deadID: {ID: deadID, Route: "r1", State: "dead", Attempts: 2, Reason: "attempts_exhausted",
			StatusURL: "/_switchboard/deliveries/" + deadID,
			target:    "/done?team=a", key: deadID + ".dead", contentType: "application/json"},
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("notification of %s:\n got %+v\nwant %+v", id, got[id], w)
		}
	}
	// Close waits for the worker and the senders: anything else they
	// were to send has been sent.
	h.srv.Close()
	if n := cb.count(); n != 2 {
		t.Errorf("callback server got %d notifications, want 2", n)
	}
}

// TestQueueCallbackDoesNotDelayDeliveries: with the callback server
// holding every notification unanswered, deliveries go on.
func TestQueueCallbackDoesNotDelayDeliveries(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-release
	}))
	t.Cleanup(stall.Close)
	t.Cleanup(func() { close(release) }) // before stall.Close, which waits for handlers
	up := &hookRecorder{}
	h := start(t, queueTop(t.TempDir()), routeOpts{upstream: hookUpstream(t, up), extra: callbackRoute(stall.URL)})
	c := h1Client(t)
	const n = 12 // more than the senders and the worker's concurrency
	var urls []string
	for i := range n {
		_, u := postAsync(t, h, c, fmt.Sprintf("/hooks/%d", i), "", "{}")
		urls = append(urls, u)
	}
	recv(t, arrived, "first callback")
	for _, u := range urls {
		waitRecord(t, c, u, isState("delivered"))
	}
	if got := len(up.seen()); got != n {
		t.Errorf("upstream saw %d deliveries, want %d", got, n)
	}
}

// TestQueueRetention: delivered and dead records older than their
// retention are purged.
func TestQueueRetention(t *testing.T) {
	down := hookUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	top := queueTop(t.TempDir()) + "  retention: 1s\n  dead_retention: 1s\n"
	h := start(t, top,
		routeOpts{prefix: "/ok/", upstream: hookUpstream(t, &hookRecorder{}), extra: asyncRoute("10ms", "50ms")},
		routeOpts{prefix: "/down/", upstream: down, extra: asyncRoute("10ms", "50ms") + "      max_attempts: 1\n"})
	c := h1Client(t)
	_, okURL := postAsync(t, h, c, "/ok/a", "", "{}")
	_, deadURL := postAsync(t, h, c, "/down/a", "", "{}")
	waitRecord(t, c, okURL, isState("delivered"))
	waitRecord(t, c, deadURL, isState("dead"))
	waitGone(t, c, okURL)
	waitGone(t, c, deadURL)
}

// waitGone polls a status URL until it answers 404.
func waitGone(t *testing.T, c *http.Client, url string) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(4 * wait)
	for {
		code, r := status(t, c, url)
		if code == http.StatusNotFound {
			return
		}
		select {
		case <-tick.C:
		case <-timeout:
			t.Fatalf("%s: still %d %+v, want 404 after the retention", url, code, r)
		}
	}
}
