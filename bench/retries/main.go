// Command retries measures the error rate callers see when an upstream
// resets a share of requests before sending any response byte, straight to
// the upstream and through nginx, HAProxy and switchboard, each configured
// for retries as its documentation advises.
//
// The upstream runs in this process behind two loopback endpoints that
// share one ledger: for every request it reads the head and body, counts
// the request's X-Req-Id, and then either resets the connection
// (SetLinger(0)+Close) or answers 200. Which arrivals are reset is a seeded
// draw per (X-Req-Id, arrival number), 10% by default, so every attempt of
// every request is reset with the same probability and the run is
// reproducible. The ledger shows how often each request arrived: a POST
// without an Idempotency-Key that arrived twice is a replay the proxy
// should not have made.
//
// The proxies are the Debian nginx and haproxy packages (installed with
// apt-get if missing) and the switchboard binary built from cmd/switchboard,
// each started with a temporary config on a loopback port and stopped by
// PID after its turn. Callers are raw HTTP/1.1 keep-alive clients with no
// retries of their own; a caller-visible error is a failed connection, a
// connection closed or reset before a complete response, or a 5xx status.
//
// Run it from the module:
//
//	go run ./bench/retries
//
// It prints a Markdown report and writes it to bench/results/retries.md.
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
		fmt.Fprintln(os.Stderr, "retries:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "retries: "+format+"\n", args...)
}

func run() error {
	n := flag.Int("n", 2000, "requests per target and class")
	callers := flag.Int("c", 8, "concurrent keep-alive callers")
	rate := flag.Float64("reset", 0.10, "share of arrivals the upstream resets")
	seed := flag.Uint64("seed", 1, "seed of the upstream's reset draws")
	names := flag.String("targets", defaultTargets, "targets to measure, in order (comma-separated)")
	bin := flag.String("proxy", "", "switchboard binary (default: build cmd/switchboard)")
	out := flag.String("out", "", "result file (default: bench/results/retries.md in the module; \"-\" for none)")
	budget := flag.Duration("budget", 120*time.Second, "bound on the whole run, installs and build included; what was measured by then is reported")
	timeout := flag.Duration("timeout", 5*time.Second, "bound on each request, from dial or write to the end of the response")
	keep := flag.Bool("keep", false, "keep the temporary directory (configs, proxy logs) and print its path")
	flag.Parse()
	for _, name := range strings.Split(*names, ",") {
		if setups[name] == nil {
			return fmt.Errorf("unknown target %q (known: %s)", name, defaultTargets)
		}
	}

	began := time.Now()
	ctx, stop := benchkit.RunContext(*budget)
	defer stop()

	root, err := benchkit.ModuleRoot("retries")
	if err != nil {
		return err
	}
	if *out == "" {
		*out = filepath.Join(root, "bench", "results", "retries.md")
	}
	dir, err := os.MkdirTemp("", "retries-")
	if err != nil {
		return err
	}
	if *keep {
		defer logf("kept %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	u, err := newUpstream(*seed, *rate)
	if err != nil {
		return err
	}
	defer u.close()
	e := &env{dir: dir, ups: u.addrs(), switchboard: *bin, commit: benchkit.GitCommit(root), install: &benchkit.Installer{Logf: logf}}
	logf("upstream endpoints %s, reset share %.2f, seed %d", strings.Join(e.ups, " "), *rate, *seed)

	var targets []*target
	for _, name := range strings.Split(*names, ",") {
		if ctx.Err() != nil {
			targets = append(targets, &target{name: name, skipped: fmt.Sprintf("not reached: %v", context.Cause(ctx))})
			continue
		}
		if name == "switchboard" && e.switchboard == "" {
			if e.switchboard, err = benchkit.GoBuild(ctx, root, dir, "switchboard", "./cmd/switchboard"); err != nil {
				targets = append(targets, &target{name: name, skipped: err.Error()})
				continue
			}
		}
		l := load{n: *n, callers: *callers, timeout: *timeout}
		targets = append(targets, measure(ctx, e, name, l, u))
	}

	rep := report{
		date:    time.Now(),
		elapsed: time.Since(began),
		stopped: context.Cause(ctx), // nil unless the budget or a signal cut the run
		flags: fmt.Sprintf("-n %d -c %d -reset %.2f -seed %d -timeout %v -budget %v",
			*n, *callers, *rate, *seed, *timeout, *budget),
		rate:    *rate,
		n:       *n,
		callers: *callers,
		targets: targets,
	}
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

// measure starts the target, runs every class against it, and stops it.
// l carries the load settings; measure fills in the rest.
func measure(ctx context.Context, e *env, name string, l load, u *upstream) *target {
	t := setups[name](ctx, e)
	defer t.proc.Stop()
	if t.skipped != "" {
		logf("skipping %s: %s", name, t.skipped)
		return t
	}
	for _, cl := range classes {
		if ctx.Err() != nil {
			break
		}
		l.addrs, l.class, l.prefix = t.addrs, cl, name+"."+cl.id
		if d, ok := ctx.Deadline(); ok {
			l.deadline = d
		}
		tl := l.run(ctx)
		r := classResult{class: cl, tally: tl}
		for id, seen := range u.ledger(l.prefix + "-") {
			r.arrivals += seen
			if seen > 1 {
				r.dups++
			}
			for k := 1; k <= seen; k++ {
				if u.shouldReset(id, k) {
					r.resets++
				}
			}
		}
		logf("%-15s %-22s %5d requests, %4d errors, %5d arrivals, %4d resets, %4d seen more than once (%.1fs)",
			name, cl.name, tl.requests, tl.errors(), r.arrivals, r.resets, r.dups, tl.elapsed.Seconds())
		t.results = append(t.results, r)
	}
	return t
}
