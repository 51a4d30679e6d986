// Command queue measures switchboard's async mode (rule R9) through the
// real binary: durable accepts per second and time-to-202 for 1 KiB POST
// bodies next to the raw fsync rate of the disk the queue lives on, the
// memory each pending delivery costs, and how fast the queue drains once
// the upstream returns.
//
// The switchboard binary is built from cmd/switchboard and started with a
// temporary config: one async route to a pool whose single endpoint is a
// reserved loopback port with nothing listening (the upstream is down),
// access log off, admin API on a free loopback port for /metrics. Two
// passes, each with a fresh switchboard and queue directory:
//
//   - accept: N requests (-n, or -pending if larger) from C keep-alive
//     callers while the upstream stays down. The route's backoff is large
//     (backoff_base 30s, backoff_max 5m, max_attempts 1000, max_age 1h) so
//     the worker's retries barely compete with the accepts. VmRSS is read
//     before and after.
//   - drain: N2 requests accepted while the upstream is down, with a small
//     backoff (backoff_base 100ms, backoff_max 1s); then a counting
//     upstream (Go net/http, 200 to everything, counting Idempotency-Key)
//     starts on the reserved port and the time until every key arrived is
//     measured.
//
// Run it from the module:
//
//	go run ./bench/queue
//
// It prints a Markdown report and writes it to
// bench/results/queue-proxy.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/switchboard-proxy/switchboard/bench/internal/benchkit"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "queue:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "queue: "+format+"\n", args...)
}

func run() error {
	n := flag.Int("n", 20000, "requests accepted in the accept pass (upstream down)")
	callers := flag.Int("c", 16, "concurrent keep-alive callers")
	pending := flag.Int("pending", 0, "pending deliveries for the memory figure; if larger than -n the accept pass runs this many (e.g. 100000)")
	n2 := flag.Int("n2", 5000, "requests accepted, then delivered, in the drain pass")
	conc := flag.Int("concurrency", 4, "queue.concurrency: deliveries switchboard makes at once")
	fsyncFor := flag.Duration("fsync", 2*time.Second, "how long to measure the raw write+fsync rate")
	drainTimeout := flag.Duration("drain-timeout", 120*time.Second, "bound on the drain once the upstream is up")
	bin := flag.String("proxy", "", "switchboard binary (default: build cmd/switchboard)")
	out := flag.String("out", "", "result file (default: bench/results/queue-proxy.md in the module; \"-\" for none)")
	budget := flag.Duration("budget", 6*time.Minute, "bound on the whole run, build included; what was measured by then is reported")
	timeout := flag.Duration("timeout", 10*time.Second, "bound on each request")
	keep := flag.Bool("keep", false, "keep the temporary directory (configs, queue data, logs) and print its path")
	flag.Parse()
	if *n < 1 || *n2 < 1 || *callers < 1 {
		return fmt.Errorf("-n, -n2 and -c must be positive")
	}
	accepts := max(*n, *pending)

	began := time.Now()
	ctx, stop := benchkit.RunContext(*budget)
	defer stop()

	root, err := benchkit.ModuleRoot("queue")
	if err != nil {
		return err
	}
	if *out == "" {
		*out = filepath.Join(root, "bench", "results", "queue-proxy.md")
	}
	dir, err := os.MkdirTemp("", "queuebench-")
	if err != nil {
		return err
	}
	if *keep {
		defer logf("kept %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	rep := &report{
		date:    time.Now(),
		commit:  benchkit.GitCommit(root),
		n:       *n,
		accepts: accepts,
		n2:      *n2,
		callers: *callers,
		conc:    *conc,
		disk:    diskOf(dir),
		flags: fmt.Sprintf("-n %d -c %d -pending %d -n2 %d -concurrency %d -fsync %v -drain-timeout %v -timeout %v -budget %v",
			*n, *callers, *pending, *n2, *conc, *fsyncFor, *drainTimeout, *timeout, *budget),
	}

	logf("raw fsync rate in %s for %v", dir, *fsyncFor)
	rep.fsync, err = fsyncRate(filepath.Join(dir, "fsync.dat"), *fsyncFor)
	if err != nil {
		return err
	}
	logf("fsync: %.0f/s, p50 %v, p99 %v", rep.fsync.rate, rep.fsync.p50, rep.fsync.p99)

	if *bin == "" {
		if *bin, err = benchkit.GoBuild(ctx, root, dir, "switchboard", "./cmd/switchboard"); err != nil {
			return err
		}
	}

	rep.accept = acceptPass(ctx, &pass{
		name: "accept", dir: dir, bin: *bin, conc: *conc,
		backoffBase: "30s", backoffMax: "5m",
		n: accepts, callers: *callers, timeout: *timeout, rssAt: *n,
	})
	if ctx.Err() == nil {
		rep.drain = drainPass(ctx, &pass{
			name: "drain", dir: dir, bin: *bin, conc: *conc,
			backoffBase: "100ms", backoffMax: "1s",
			n: *n2, callers: *callers, timeout: *timeout,
		}, *drainTimeout)
	}

	rep.elapsed = time.Since(began)
	rep.stopped = context.Cause(ctx)
	md := rep.markdown()
	fmt.Print(md)
	if *out == "-" {
		return nil
	}
	if err := benchkit.WriteResult(*out, md); err != nil {
		return err
	}
	logf("wrote %s", *out)
	return nil
}

// pass is one switchboard instance with its own queue directory.
type pass struct {
	name        string
	dir         string // the run's temporary directory
	bin         string
	conc        int
	backoffBase string
	backoffMax  string
	n           int
	callers     int
	timeout     time.Duration
	rssAt       int // read VmRSS also after this many accepts (0: only at the end)

	listen, admin, up string
	config            string
	proc              *benchkit.Proc
}

const confTemplate = `listeners:
  - address: $LISTEN
admin:
  address: $ADMIN
access_log:
  path: "off"
drain_timeout: 2s
queue:
  dir: $QDIR
  concurrency: $CONC
pools:
  - name: up
    endpoints:
      - url: http://$UP
routes:
  - name: async
    match:
      path_prefix: /
    pool: up
    mode: async
    queue:
      max_attempts: 1000
      max_age: 1h
      backoff_base: $BASE
      backoff_max: $BMAX
`

// start writes the pass's config, reserves the upstream's port (nothing
// listens on it) and starts switchboard.
func (p *pass) start(ctx context.Context) error {
	var err error
	for _, a := range []*string{&p.listen, &p.admin, &p.up} {
		if *a, err = benchkit.FreeAddr(); err != nil {
			return err
		}
	}
	qdir := filepath.Join(p.dir, p.name+"-queue")
	p.config = strings.NewReplacer("$LISTEN", p.listen, "$ADMIN", p.admin, "$UP", p.up,
		"$QDIR", qdir, "$CONC", fmt.Sprint(p.conc), "$BASE", p.backoffBase, "$BMAX", p.backoffMax).Replace(confTemplate)
	conf := filepath.Join(p.dir, p.name+".yaml")
	if err := os.WriteFile(conf, []byte(p.config), 0o644); err != nil {
		return err
	}
	p.proc, err = benchkit.Start("switchboard", filepath.Join(p.dir, p.name+".log"), nil, p.bin, "serve", "--config", conf)
	if err != nil {
		return err
	}
	if err := p.proc.WaitListening(ctx, p.listen); err != nil {
		p.proc.Stop()
		return err
	}
	return p.proc.WaitListening(ctx, p.admin)
}
