package proxy_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/hanguptest"
)

// The keep-alive race (rule R6). A Node upstream with keepAliveTimeout 1000
// advertises "Keep-Alive: timeout=1" and closes a connection idle for 1s.
// Requests come through the proxy with gaps spread over 900-1100 ms, so
// many find a pooled connection just as the upstream closes it. A 20 ms
// one-way delay link between proxy and upstream gives the race the window a
// real network has (on bare loopback the FIN arrives within microseconds).
//
// Node 20.20 itself closes only 1s after the timeout it advertises; the
// script's --exact-keep-alive closes at the advertised time, as earlier
// Node releases and most other servers do.
//
// switchboard must show zero caller-visible errors and deliver each POST
// exactly once; a plain httputil.ReverseProxy, the control, must fail,
// or the test could not tell a fix from luck.
func TestKeepAliveRace(t *testing.T) {
	const callers, rounds = 40, 11
	t.Run("switchboard", func(t *testing.T) {
		t.Parallel()
		node, seen := raceUpstream(t)
		h := start(t, "", routeOpts{upstream: "http://" + node})
		r := keepAliveLoad(t, h.url("/ok"), callers, rounds)
		if r.errors != 0 {
			t.Errorf("%d of %d requests failed: %s", r.errors, r.sent, r.firstErr)
			// The access-log records of the failures say which attempt
			// met the closed connection, and why it was not replayed.
			h.logs.mu.Lock()
			for _, rec := range h.logs.recs {
				if rec["status"] != float64(http.StatusOK) {
					t.Logf("failed: %v", rec)
				}
			}
			h.logs.mu.Unlock()
		}
		if dup := seen.postsNotOnce(r.posts); dup != "" {
			t.Errorf("upstream did not see each POST exactly once: %s", dup)
		}
		t.Logf("%d requests, %d errors", r.sent, r.errors)
	})
	t.Run("plain httputil.ReverseProxy (control)", func(t *testing.T) {
		t.Parallel()
		node, seen := raceUpstream(t)
		target, _ := url.Parse("http://" + node)
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64 // as switchboard's pool; the default 2 would hide the race
		t.Cleanup(tr.CloseIdleConnections)
		rp := &httputil.ReverseProxy{
			Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
			Transport: tr,
			ErrorLog:  nil,
		}
		rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
		srv := httptest.NewServer(rp)
		t.Cleanup(srv.Close)
		r := keepAliveLoad(t, srv.URL+"/ok", callers, rounds)
		t.Logf("%d requests, %d errors (first: %s); POSTs not seen once: %q", r.sent, r.errors, r.firstErr, seen.postsNotOnce(r.posts))
		if r.errors == 0 {
			t.Fatal("the plain proxy had no errors: this test cannot tell whether switchboard handles the race")
		}
	})
}

// raceUpstream starts the Node upstream behind a delay link and returns the
// link's address and the upstream's record of request ids.
func raceUpstream(t *testing.T) (string, *ridCounts) {
	node := hanguptest.StartNode(t, hanguptest.NodeOptions{KeepAliveTimeout: time.Second, ExactKeepAlive: true})
	seen := &ridCounts{n: map[string]int{}}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case ev, ok := <-node.Events():
				if !ok {
					return
				}
				if ev.Event == "request" && ev.RID != "" {
					seen.add(ev.RID)
				}
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return hanguptest.NewDelayLink(t, node.Addr, 20*time.Millisecond), seen
}

type ridCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *ridCounts) add(rid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[rid]++
}

// postsNotOnce describes the POSTs the upstream saw other than once; ""
// when it saw each exactly once. Node reports each request as it arrives,
// so by the time the load has its answers every count is in.
func (c *ridCounts) postsNotOnce(posts []string) string {
	deadline := time.Now().Add(wait)
	var bad []string
	for {
		c.mu.Lock()
		bad = bad[:0]
		for _, rid := range posts {
			if n := c.n[rid]; n != 1 {
				bad = append(bad, fmt.Sprintf("%s×%d", rid, n))
			}
		}
		c.mu.Unlock()
		if len(bad) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(bad) > 10 {
		bad = append(bad[:10], fmt.Sprintf("and %d more", len(bad)-10))
	}
	return strings.Join(bad, ", ")
}

type loadResult struct {
	sent, errors int
	firstErr     string
	posts        []string // ids of POSTs that got a 200
}

// keepAliveLoad sends rounds requests from each of callers keep-alive
// clients, alternating GET and POST (without Idempotency-Key). The gaps
// between a client's requests sweep 900-1100 ms from round to round, with a
// few ms of jitter per client: the clients stay roughly in step, so each
// round finds the proxy's pooled connections idle for about that round's
// gap, and some rounds land just as the upstream closes them.
func keepAliveLoad(t *testing.T, target string, callers, rounds int) loadResult {
	var mu sync.Mutex
	var res loadResult
	var sent atomic.Int64
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: wait}
			for i := range rounds {
				if i > 0 {
					gap := 900*time.Millisecond + time.Duration(i-1)*200*time.Millisecond/time.Duration(rounds-2)
					time.Sleep(gap - 3*time.Millisecond + rand.N(6*time.Millisecond))
				}
				rid := fmt.Sprintf("c%d-%d", c, i)
				method, body := "GET", io.Reader(nil)
				if (c+i)%2 == 1 {
					method, body = "POST", strings.NewReader("payload "+rid)
				}
				req, _ := http.NewRequest(method, target, body)
				req.Header.Set("X-Req-Id", rid)
				sent.Add(1)
				r, err := client.Do(req)
				var msg string
				switch {
				case err != nil:
					msg = err.Error()
				default:
					b, _ := io.ReadAll(r.Body)
					r.Body.Close()
					if r.StatusCode != http.StatusOK {
						msg = fmt.Sprintf("%s %s: %d %s", method, rid, r.StatusCode, strings.TrimSpace(string(b)))
					}
				}
				mu.Lock()
				if msg != "" {
					res.errors++
					if res.firstErr == "" {
						res.firstErr = msg
					}
				} else if method == "POST" {
					res.posts = append(res.posts, rid)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.sent = int(sent.Load())
	return res
}
