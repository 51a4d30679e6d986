package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// keyCounter is an upstream that counts deliveries by Idempotency-Key and
// reports each key's first one on firsts.
type keyCounter struct {
	mu     sync.Mutex
	counts map[string]int // guarded by mu
	firsts chan string    // sized for every key the test sends
}

func (k *keyCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	key := r.Header.Get("Idempotency-Key")
	k.mu.Lock()
	k.counts[key]++
	first := k.counts[key] == 1
	k.mu.Unlock()
	if first {
		k.firsts <- key
	}
	w.WriteHeader(http.StatusCreated)
}

func (k *keyCounter) snapshot() map[string]int {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make(map[string]int, len(k.counts))
	for key, n := range k.counts {
		out[key] = n
	}
	return out
}

// asyncConfig is a config with one async route, "hooks", to upstream.
func asyncConfig(upstream, queueDir string) string {
	return fmt.Sprintf(`listeners:
  - address: 127.0.0.1:0
admin:
  address: 127.0.0.1:0
access_log:
  path: "off"
queue:
  dir: %s
  ack_wait: 1s
pools:
  - name: app
    endpoints:
      - url: %s
routes:
  - name: hooks
    match:
      path_prefix: /
    pool: app
    mode: async
    queue:
      max_attempts: 1000
      backoff_base: 20ms
      backoff_max: 200ms
`, queueDir, upstream)
}

// TestQueueSurvivesKill is rule R9 from the outside: N requests to an
// async route whose upstream is down are each acknowledged with 202; the
// process is killed with SIGKILL; the upstream comes up and switchboard
// restarts on the same queue directory; every request is delivered, none
// twice, and "switchboard queue" reports them delivered.
func TestQueueSurvivesKill(t *testing.T) {
	const n = 50
	upAddr := freePort(t) // nothing listens here until the kill
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "switchboard.yaml")
	writeFile(t, cfgPath, asyncConfig("http://"+upAddr, filepath.Join(dir, "queue")))

	p := startSwitchboard(t, "serve", "--config", cfgPath)
	addr, _ := p.started(t)
	c := &http.Client{Timeout: waitLong}
	for i := range n {
		req, err := http.NewRequest("POST", "http://"+addr+"/hook", strings.NewReader(fmt.Sprintf(`{"n":%d}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Idempotency-Key", fmt.Sprintf("key-%02d", i))
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusAccepted {
			t.Fatalf("POST %d: %d, want 202", i, res.StatusCode)
		}
	}
	c.CloseIdleConnections()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.waitExit(t, waitLong)

	up := &keyCounter{counts: map[string]int{}, firsts: make(chan string, n)}
	ln, err := net.Listen("tcp", upAddr)
	if err != nil {
		t.Fatalf("upstream cannot take its port back: %v", err)
	}
	srv := httptest.NewUnstartedServer(up)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	defer srv.Close()

	p2 := startSwitchboard(t, "serve", "--config", cfgPath)
	_, adminAddr := p2.started(t)
	timeout := time.After(30 * time.Second)
	for i := range n {
		select {
		case <-up.firsts:
		case <-timeout:
			t.Fatalf("%d of %d acknowledged requests delivered after the restart", i, n)
		}
	}

	code, stdout, stderr := runBinary(t, "queue", "list", "--admin", adminAddr, "--state", "delivered", "--json")
	var list struct {
		Deliveries []struct {
			IdempotencyKey string `json:"idempotency_key"`
			State          string `json:"state"`
		} `json:"deliveries"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &list) != nil || len(list.Deliveries) != n {
		t.Fatalf("queue list --state delivered: exit %d, %d deliveries; stderr %q", code, len(list.Deliveries), stderr)
	}
	// Every record is delivered: no attempt can follow, so the counts are
	// final.
	counts := up.snapshot()
	for i := range n {
		if k := fmt.Sprintf("key-%02d", i); counts[k] != 1 {
			t.Errorf("%s delivered %d times, want once", k, counts[k])
		}
	}
	if len(counts) != n {
		t.Errorf("upstream saw %d keys, want %d", len(counts), n)
	}
	code, stdout, _ = runBinary(t, "queue", "list", "--admin", adminAddr)
	if code != 0 || strings.Count(stdout, " delivered ") != n || !strings.HasPrefix(stdout, "ID ") {
		t.Errorf("queue list: exit %d, output:\n%s", code, stdout)
	}
	t.Logf("queue list after the restart:\n%s", stdout[:min(len(stdout), 400)])
	checkQueueMetrics(t, adminAddr, n)
	checkQueueCLIErrors(t, adminAddr)
}

// checkQueueMetrics scrapes the restarted process's queue metrics.
func checkQueueMetrics(t *testing.T, adminAddr string, n int) {
	t.Helper()
	res, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{
		fmt.Sprintf(`switchboard_queue_deliveries{route="hooks",state="delivered"} %d`, n),
		fmt.Sprintf(`switchboard_queue_delivered_total{code="201",route="hooks"} %d`, n),
		"switchboard_queue_up 1",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// checkQueueCLIErrors covers the CLI's exit statuses against a live
// admin API.
func checkQueueCLIErrors(t *testing.T, adminAddr string) {
	t.Helper()
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"unknown id", []string{"show", "nope"}, 3, "404 Not Found: no such delivery"},
		{"bad state", []string{"list", "--state", "zombie"}, 2, "want pending, delivered, dead or cancelled"},
		{"purge pending", []string{"purge", "--state", "pending"}, 2, "cannot be purged"},
		{"replay nothing", []string{"replay"}, 2, "give delivery IDs, or --all"},
		{"replay all, none dead", []string{"replay", "--all"}, 0, ""},
		{"no admin", []string{"list", "--admin", "127.0.0.1:1"}, 1, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"queue"}, tt.args...)
			if !strings.Contains(strings.Join(tt.args, " "), "--admin") {
				args = append(args, "--admin", adminAddr)
			}
			code, _, stderr := runBinary(t, args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("exit %d, stderr %q; want %d containing %q", code, stderr, tt.code, tt.stderr)
			}
		})
	}
}
