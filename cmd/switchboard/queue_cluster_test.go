package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// sender POSTs to an async route in a loop, each request with a fresh
// Idempotency-Key, and records the keys that were answered 202.
type sender struct {
	mu       sync.Mutex
	accepted []string // guarded by mu
	refused  int      // guarded by mu; answered, but not 202
	failed   int      // guarded by mu; no answer (the process was killed)
}

// run sends until ctx is done, spreading its requests over targets.
func (s *sender) run(ctx context.Context, id int, targets []string) {
	c := &http.Client{Timeout: 3 * time.Second}
	defer c.CloseIdleConnections()
	for i := 0; ctx.Err() == nil; i++ {
		key := fmt.Sprintf("s%d-%05d", id, i)
		code, err := post(ctx, c, "http://"+targets[i%len(targets)]+"/hook", key)
		s.mu.Lock()
		switch {
		case err != nil:
			s.failed++
		case code == http.StatusAccepted:
			s.accepted = append(s.accepted, key)
		default:
			s.refused++
		}
		s.mu.Unlock()
		if err != nil {
			work(ctx, 10*time.Millisecond) // the process is restarting
		}
	}
}

func post(ctx context.Context, c *http.Client, url, key string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(`{"key":"`+key+`"}`))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Idempotency-Key", key)
	res, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, nil
}

// sendWhile runs callers senders against targets until during returns,
// then stops them and returns what they saw.
func sendWhile(callers int, targets []string, during func()) *sender {
	s := &sender{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for id := range callers {
		wg.Go(func() { s.run(ctx, id, targets) })
	}
	defer wg.Wait() // also when during fails the test
	defer cancel()
	during()
	return s
}

// checkDelivered waits up to d for every accepted key to reach up, then
// reports how many keys were delivered more than once.
func checkDelivered(t *testing.T, up *keyCounter, s *sender, d time.Duration) (dups int) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		counts := up.snapshot()
		var missing []string
		for _, k := range s.accepted {
			if counts[k] == 0 {
				missing = append(missing, k)
			}
		}
		if len(missing) == 0 {
			for _, n := range counts {
				dups += n - 1
			}
			return dups
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted requests not delivered after %v, e.g. %q", len(missing), len(s.accepted), d, missing[:min(5, len(missing))])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// newKeyCounter starts an upstream that counts deliveries by key, taking
// delay over each.
func newKeyCounter(t *testing.T, delay time.Duration) (*keyCounter, *httptest.Server) {
	up := &keyCounter{counts: map[string]int{}, firsts: make(chan string, 1<<16)}
	h := http.Handler(up)
	if delay > 0 {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(delay)
			up.ServeHTTP(w, r)
		})
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return up, srv
}

// TestQueueSurvivesRepeatedKills is rule R9 under fire: while callers keep
// posting to an async route, switchboard is killed with SIGKILL at random
// moments and restarted on the same queue directory. Every request that was
// answered 202 is delivered; a key may be delivered twice (at least once),
// never a request under another key.
func TestQueueSurvivesRepeatedKills(t *testing.T) {
	const kills = 3
	up, srv := newKeyCounter(t, 0)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "switchboard.yaml")
	listen := freePort(t)
	cfg := strings.Replace(asyncConfig(srv.URL, filepath.Join(dir, "queue")), "127.0.0.1:0", listen, 1)
	writeFile(t, cfgPath, cfg)

	p := startSwitchboard(t, "serve", "--config", cfgPath)
	p.started(t)
	s := sendWhile(4, []string{listen}, func() {
		for range kills {
			time.Sleep(time.Duration(100+rand.IntN(500)) * time.Millisecond)
			if err := p.cmd.Process.Kill(); err != nil {
				t.Error(err)
				return
			}
			p.waitExit(t, waitLong)
			p = startSwitchboard(t, "serve", "--config", cfgPath)
			p.started(t)
		}
		time.Sleep(300 * time.Millisecond)
	})
	if len(s.accepted) == 0 {
		t.Fatalf("no request accepted (%d refused, %d failed)", s.refused, s.failed)
	}
	dups := checkDelivered(t, up, s, 15*time.Second)
	t.Logf("%d kills: %d requests accepted, %d refused, %d without an answer; upstream saw %d keys, %d duplicate deliveries",
		kills, len(s.accepted), s.refused, s.failed, len(up.snapshot()), dups)
}
