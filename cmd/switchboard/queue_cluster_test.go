package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
// delay over each; inFlight counts the deliveries it is working on.
func newKeyCounter(t *testing.T, delay time.Duration) (up *keyCounter, srv *httptest.Server, inFlight *atomic.Int64) {
	up = &keyCounter{counts: map[string]int{}, firsts: make(chan string, 1<<16)}
	inFlight = new(atomic.Int64)
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inFlight.Add(1)
		defer inFlight.Add(-1)
		time.Sleep(delay)
		up.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return up, srv, inFlight
}

// TestQueueSurvivesRepeatedKills is rule R9 under fire: while callers keep
// posting to an async route, switchboard is killed with SIGKILL at random
// moments and restarted on the same queue directory. Every request that was
// answered 202 is delivered; a key may be delivered twice (at least once),
// never a request under another key.
func TestQueueSurvivesRepeatedKills(t *testing.T) {
	const kills = 3
	up, srv, _ := newKeyCounter(t, 0)
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

// startNATSCluster starts three nats-server instances with JetStream,
// routed to each other on loopback, and waits for a JetStream meta leader.
// It returns their client URLs, comma-separated as queue.url takes them.
func startNATSCluster(t *testing.T) string {
	t.Helper()
	const n = 3
	clientAddrs, routeAddrs := make([]string, n), make([]string, n)
	var routes []string
	for i := range n {
		clientAddrs[i], routeAddrs[i] = freePort(t), freePort(t)
		routes = append(routes, "nats://"+routeAddrs[i])
	}
	servers := make([]*server.Server, n)
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       portOf(t, clientAddrs[i]),
			NoSigs:     true,
			NoLog:      true,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			SyncAlways: true,
			Cluster: server.ClusterOpts{
				Name: "switchboard-test",
				Host: "127.0.0.1",
				Port: portOf(t, routeAddrs[i]),
			},
			Routes: server.RoutesFromStr(strings.Join(routes, ",")),
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		t.Cleanup(func() {
			s.Shutdown()
			s.WaitForShutdown()
		})
		if !s.ReadyForConnections(waitLong) {
			t.Fatalf("nats-server %d not ready after %v", i+1, waitLong)
		}
		servers[i] = s
	}
	deadline := time.Now().Add(waitLong)
	for !hasMetaLeader(servers) {
		if time.Now().After(deadline) {
			t.Fatalf("no JetStream meta leader among %d servers after %v", n, waitLong)
		}
		time.Sleep(50 * time.Millisecond)
	}
	urls := make([]string, n)
	for i, a := range clientAddrs {
		urls[i] = "nats://" + a
	}
	return strings.Join(urls, ",")
}

// hasMetaLeader reports whether the servers are all current and one of
// them leads JetStream's meta group.
func hasMetaLeader(servers []*server.Server) bool {
	leader := false
	for _, s := range servers {
		if !s.JetStreamIsCurrent() {
			return false
		}
		leader = leader || s.JetStreamIsLeader()
	}
	return leader
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestQueueClusterSurvivesInstanceKill is rule R9 with an external NATS
// cluster: two switchboard instances share an R3 JetStream cluster, callers
// post to both, and one instance is killed with SIGKILL while deliveries to
// a slow upstream are in flight. The survivor delivers everything either
// accepted; a key may be delivered twice, never a request under another.
func TestQueueClusterSurvivesInstanceKill(t *testing.T) {
	natsURL := startNATSCluster(t)
	up, srv, upInFlight := newKeyCounter(t, 200*time.Millisecond)
	dir := t.TempDir()
	var procs []*proc
	var targets []string
	for _, name := range []string{"a", "b"} {
		cfg := asyncConfig(srv.URL, filepath.Join(dir, name))
		cfg = strings.Replace(cfg, "  dir: "+filepath.Join(dir, name)+"\n",
			"  url: "+natsURL+"\n  replicas: 3\n  concurrency: 32\n", 1)
		cfgPath := filepath.Join(dir, name+".yaml")
		writeFile(t, cfgPath, cfg)
		p := startSwitchboard(t, "serve", "--config", cfgPath)
		addr, _ := p.started(t)
		procs, targets = append(procs, p), append(targets, addr)
	}
	checkReplicas(t, natsURL, 3)
	var inFlight int64
	s := sendWhile(2, targets, func() {
		time.Sleep(time.Duration(600+rand.IntN(400)) * time.Millisecond)
		inFlight = upInFlight.Load()
		if err := procs[0].cmd.Process.Kill(); err != nil {
			t.Error(err)
			return
		}
		procs[0].waitExit(t, waitLong)
		time.Sleep(300 * time.Millisecond) // b alone keeps accepting
	})
	if len(s.accepted) == 0 {
		t.Fatalf("no request accepted (%d refused, %d failed)", s.refused, s.failed)
	}
	if inFlight == 0 {
		t.Errorf("no delivery in flight when instance a was killed")
	}
	dups := checkDelivered(t, up, s, 20*time.Second)
	t.Logf("R3 cluster, 2 instances, 1 killed with %d deliveries in flight at the upstream: %d requests accepted, %d refused, %d without an answer; upstream saw %d keys, %d duplicate deliveries",
		inFlight, len(s.accepted), s.refused, s.failed, len(up.snapshot()), dups)
}

// checkReplicas checks that switchboard made its stream with the
// replicas queue.replicas asked for.
func checkReplicas(t *testing.T, natsURL string, want int) {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	st, err := js.Stream(ctx, "SWITCHBOARD")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	peers := 1
	if info.Cluster != nil {
		peers += len(info.Cluster.Replicas)
	}
	if got := info.Config.Replicas; got != want || peers != want {
		t.Errorf("stream SWITCHBOARD has %d replicas configured, %d peers; want %d", got, peers, want)
	}
}
