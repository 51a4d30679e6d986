package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// fsyncResult is the raw write+fsync rate of a disk.
type fsyncResult struct {
	ops      int
	rate     float64
	p50, p99 time.Duration
}

// fsyncRate appends 1 KiB to path and fsyncs it, in a loop for d.
func fsyncRate(path string, d time.Duration) (fsyncResult, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fsyncResult{}, err
	}
	defer os.Remove(path)
	defer f.Close()
	buf := bytes.Repeat([]byte("x"), 1024)
	var lat []time.Duration
	start := time.Now()
	for time.Since(start) < d {
		t := time.Now()
		if _, err := f.Write(buf); err != nil {
			return fsyncResult{}, err
		}
		if err := f.Sync(); err != nil {
			return fsyncResult{}, err
		}
		lat = append(lat, time.Since(t))
	}
	el := time.Since(start)
	slices.Sort(lat)
	return fsyncResult{ops: len(lat), rate: float64(len(lat)) / el.Seconds(), p50: pct(lat, 50), p99: pct(lat, 99)}, nil
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

// diskOf names the mount holding dir: "ext4 on /dev/vda (mounted at /)".
func diskOf(dir string) string {
	f, err := os.Open("/proc/mounts")
	if err != nil {
		return "?"
	}
	defer f.Close()
	best, desc := "", "?"
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 3 {
			continue
		}
		mp := fs[1]
		if (dir == mp || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best, desc = mp, fmt.Sprintf("%s on %s (mounted at %s)", fs[2], fs[0], mp)
		}
	}
	return desc
}

// rssKiB is VmRSS of pid in KiB.
func rssKiB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			k, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return k
		}
	}
	return 0
}

// dirBytes is the disk usage of the files under dir.
func dirBytes(dir string) int64 {
	var sum int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			sum += fi.Size()
		}
		return nil
	})
	return sum
}

// metric sums every sample of the Prometheus metric name on the admin API
// at addr.
func metric(addr, name string) float64 {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		fs := strings.Fields(line)
		v, _ := strconv.ParseFloat(fs[len(fs)-1], 64)
		sum += v
	}
	return sum
}

// loadResult is what the callers saw.
type loadResult struct {
	sent, accepted int
	other          map[string]int // non-202 outcomes
	elapsed        time.Duration
	p50, p90, p99  time.Duration
	max            time.Duration
}

// load sends n POSTs with 1 KiB bodies and unique Idempotency-Keys from c
// keep-alive callers; at == k calls mid once the k-th 202 arrived.
func load(ctx context.Context, addr, prefix string, n, c int, timeout time.Duration, at int, mid func()) loadResult {
	tr := &http.Transport{MaxIdleConnsPerHost: c, MaxConnsPerHost: c, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: timeout}
	body := bytes.Repeat([]byte("q"), 1024)
	var next, acc atomic.Int64
	lats := make([]time.Duration, n)
	ok := make([]bool, n)
	var mu sync.Mutex
	other := map[string]int{}
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/hook", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Idempotency-Key", fmt.Sprintf("%s-%d", prefix, i))
				t := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				lats[i] = time.Since(t)
				switch {
				case err != nil:
					mu.Lock()
					other[shortErr(err)]++
					mu.Unlock()
				case resp.StatusCode != http.StatusAccepted:
					mu.Lock()
					other[resp.Status]++
					mu.Unlock()
				default:
					ok[i] = true
					if k := acc.Add(1); int(k) == at && mid != nil {
						mid()
					}
				}
			}
		})
	}
	wg.Wait()
	r := loadResult{elapsed: time.Since(start), other: other}
	var okl []time.Duration
	for i := range min(n, int(next.Load())) {
		r.sent++
		if ok[i] {
			okl = append(okl, lats[i])
		}
	}
	r.accepted = len(okl)
	slices.Sort(okl)
	r.p50, r.p90, r.p99 = pct(okl, 50), pct(okl, 90), pct(okl, 99)
	if len(okl) > 0 {
		r.max = okl[len(okl)-1]
	}
	return r
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// acceptResult is the accept pass's figures.
type acceptResult struct {
	err                   string
	load                  loadResult
	rssBefore, rssMid     int64 // KiB
	rssAfter, rssSettled  int64
	midAt                 int
	diskBefore, diskAfter int64
	failedAttempts, depth float64
	config                string
}

func acceptPass(ctx context.Context, p *pass) *acceptResult {
	r := &acceptResult{}
	if err := p.start(ctx); err != nil {
		r.err = err.Error()
		return r
	}
	defer p.proc.Stop()
	r.config = p.config
	qdir := filepath.Join(p.dir, p.name+"-queue")
	time.Sleep(500 * time.Millisecond)
	r.rssBefore, r.diskBefore = rssKiB(p.proc.PID()), dirBytes(qdir)
	logf("accept pass: %d requests, %d callers, upstream %s down; VmRSS before %d KiB", p.n, p.callers, p.up, r.rssBefore)
	var mid func()
	if p.rssAt > 0 && p.rssAt < p.n {
		r.midAt = p.rssAt
		mid = func() { r.rssMid = rssKiB(p.proc.PID()) }
	}
	r.load = load(ctx, p.listen, "a", p.n, p.callers, p.timeout, p.rssAt, mid)
	r.rssAfter = rssKiB(p.proc.PID())
	logf("accept pass: %d/%d accepted in %.1fs (%.0f/s), p50 %v p99 %v; VmRSS after %d KiB",
		r.load.accepted, r.load.sent, r.load.elapsed.Seconds(), float64(r.load.accepted)/r.load.elapsed.Seconds(), r.load.p50, r.load.p99, r.rssAfter)
	time.Sleep(3 * time.Second)
	r.rssSettled = rssKiB(p.proc.PID())
	r.diskAfter = dirBytes(qdir)
	r.failedAttempts = metric(p.admin, "switchboard_queue_failed_attempts_total")
	r.depth = metric(p.admin, `switchboard_queue_deliveries{route="async",state="pending"}`)
	logf("accept pass: settled VmRSS %d KiB, failed attempts so far %.0f, pending %.0f", r.rssSettled, r.failedAttempts, r.depth)
	return r
}

// drainResult is the drain pass's figures.
type drainResult struct {
	err                    string
	load                   loadResult
	failedWhileDown        float64
	firstAfter, lastAfter  time.Duration // from the upstream listening
	delivered, dups, extra int           // unique keys, keys seen more than once, arrivals beyond the first
	arrivals               int
	timedOut               bool
	metricDelivered        float64
	config                 string
	perSecond              []int // unique keys first seen in each second after the upstream came up
}

// counter is the counting upstream.
type counter struct {
	mu    sync.Mutex
	start time.Time
	seen  map[string]int
	first []time.Duration // first arrival of each key, from start
	total int
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	k := r.Header.Get("Idempotency-Key")
	c.mu.Lock()
	c.total++
	c.seen[k]++
	if c.seen[k] == 1 {
		c.first = append(c.first, time.Since(c.start))
	}
	c.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func drainPass(ctx context.Context, p *pass, bound time.Duration) *drainResult {
	r := &drainResult{}
	if err := p.start(ctx); err != nil {
		r.err = err.Error()
		return r
	}
	defer p.proc.Stop()
	r.config = p.config
	logf("drain pass: accepting %d requests with upstream %s down", p.n, p.up)
	r.load = load(ctx, p.listen, "d", p.n, p.callers, p.timeout, 0, nil)
	time.Sleep(2 * time.Second) // let the worker settle into its backoff
	r.failedWhileDown = metric(p.admin, "switchboard_queue_failed_attempts_total")
	logf("drain pass: %d accepted in %.1fs; %.0f failed attempts while down; starting the upstream", r.load.accepted, r.load.elapsed.Seconds(), r.failedWhileDown)

	ln, err := net.Listen("tcp", p.up)
	if err != nil {
		r.err = "upstream could not bind the reserved port: " + err.Error()
		return r
	}
	c := &counter{seen: map[string]int{}, start: time.Now()}
	srv := &http.Server{Handler: c, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	want := r.load.accepted
	deadline := time.Now().Add(bound)
	for {
		c.mu.Lock()
		got := len(c.first)
		c.mu.Unlock()
		if got >= want {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.timedOut = true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // late duplicates
	c.mu.Lock()
	defer c.mu.Unlock()
	r.delivered, r.arrivals = len(c.first), c.total
	for _, v := range c.seen {
		if v > 1 {
			r.dups++
			r.extra += v - 1
		}
	}
	if len(c.first) > 0 {
		r.firstAfter, r.lastAfter = c.first[0], c.first[len(c.first)-1]
		r.perSecond = make([]int, int(r.lastAfter/time.Second)+1)
		for _, t := range c.first {
			r.perSecond[int(t/time.Second)]++
		}
	}
	r.metricDelivered = metric(p.admin, "switchboard_queue_delivered_total")
	logf("drain pass: %d/%d delivered, first after %v, last after %v, %d keys seen twice+, %d arrivals",
		r.delivered, want, r.firstAfter, r.lastAfter, r.dups, r.arrivals)
	return r
}
