// Command suite measures what proxying costs, side by side for nginx,
// HAProxy, Caddy, a plain httputil.ReverseProxy (bench/stdproxy) and
// switchboard, against a direct baseline, in one run of alternating
// rounds.
//
// Topology on a 2-core machine: the proxy under test runs on CPU 0 with
// one core's worth of parallelism (nginx 1 worker, HAProxy nbthread 1,
// Caddy and the Go proxies GOMAXPROCS=1); this program (the constant-rate
// load generator, idle connections, hang-up trials), wrk and a fixed nginx
// upstream (13-byte body at /, 1 MiB file at /1m, keep-alive) run on
// CPU 1. Each round starts every target afresh on a new loopback port,
// in an order rotated per round, and measures:
//
//   - RSS per idle keep-alive caller connection (5,000 connections that
//     made one request each);
//   - proxy CPU µs per small request (utime+stime from /proc/PID/stat over
//     the window ÷ requests completed) and req/s at saturation (wrk);
//   - p50/p90/p99 latency at a fixed rate (open loop, measured from each
//     request's due time, so free of coordinated omission);
//   - 1 MiB bodies: MiB/s and proxy CPU µs per MiB (wrk);
//   - caller hang-up propagation: bench/abortlat's await_headers trial.
//
// Missing Debian packages (nginx, haproxy, caddy, wrk) are installed with
// apt-get; a proxy that cannot be installed or started is reported as not
// measured. Every process is started by this program and stopped by PID;
// every load is bounded in count and time, and -budget bounds the run.
//
// Run it from the module:
//
//	go run ./bench/suite
//
// It writes bench/results/suite-YYYY-MM-DD.md and copies it to
// bench/RESULTS.md, with a CPU profile of switchboard under load beside it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/switchboard-proxy/switchboard/bench/internal/benchkit"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "suite:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "suite: "+format+"\n", args...)
}

// pinnedEnv marks the re-executed, pinned process.
const pinnedEnv = "SWITCHBOARD_SUITE_PINNED"

// settings are the run's flags.
type settings struct {
	rounds    int
	targets   []string
	warmup    time.Duration
	satFor    time.Duration
	satConns  int
	rate      int
	rateFor   time.Duration
	rateConns int
	bigFor    time.Duration
	bigConns  int
	idle      int
	hangups   int
	profile   time.Duration
	proxyCPU  int
	loadCPU   int
	budget    time.Duration
	out       string
	latest    string
	keep      bool
}

func (s *settings) flags() string {
	return fmt.Sprintf("-rounds %d -warmup %v -sat %v -conns %d -rate %d -rate-for %v -rate-conns %d -big %v -big-conns %d -idle %d -hangups %d -profile %v",
		s.rounds, s.warmup, s.satFor, s.satConns, s.rate, s.rateFor, s.rateConns, s.bigFor, s.bigConns, s.idle, s.hangups, s.profile)
}

func run() error {
	var s settings
	var names string
	flag.IntVar(&s.rounds, "rounds", 3, "rounds; each measures every target once, the order rotated per round")
	flag.StringVar(&names, "targets", defaultTargets, "targets, comma-separated, in the first round's order; switchboard@COMMIT is switchboard built from another commit, to compare two side by side")
	flag.DurationVar(&s.warmup, "warmup", time.Second, "unrecorded wrk load after each start")
	flag.DurationVar(&s.satFor, "sat", 5*time.Second, "wrk run at saturation, small body (whole seconds)")
	flag.IntVar(&s.satConns, "conns", 50, "wrk connections for the small body")
	flag.IntVar(&s.rate, "rate", 2000, "fixed request rate of the latency measurement, per second")
	flag.DurationVar(&s.rateFor, "rate-for", 3*time.Second, "length of the fixed-rate schedule")
	flag.IntVar(&s.rateConns, "rate-conns", 32, "keep-alive connections of the fixed-rate load")
	flag.DurationVar(&s.bigFor, "big", 3*time.Second, "wrk run on the 1 MiB body (whole seconds)")
	flag.IntVar(&s.bigConns, "big-conns", 8, "wrk connections for the 1 MiB body")
	flag.IntVar(&s.idle, "idle", 5000, "idle keep-alive caller connections of the memory measurement (0: skip)")
	flag.IntVar(&s.hangups, "hangups", 20, "caller hang-ups of each kind (FIN, RST) per round (0: skip)")
	flag.DurationVar(&s.profile, "profile", 5*time.Second, "CPU profile of switchboard under load for this long (0: skip)")
	flag.IntVar(&s.proxyCPU, "proxy-cpu", 0, "CPU of the proxy under test")
	flag.IntVar(&s.loadCPU, "load-cpu", 1, "CPU of the load generators and the upstream")
	flag.DurationVar(&s.budget, "budget", 6*time.Minute, "bound on the whole run, installs and builds included; what was measured by then is reported")
	flag.StringVar(&s.out, "out", "", "result file (default: bench/results/suite-YYYY-MM-DD.md in the module; \"-\" for none)")
	flag.StringVar(&s.latest, "latest", "", "copy of the result (default: bench/RESULTS.md in the module; \"-\" for none)")
	flag.BoolVar(&s.keep, "keep", false, "keep the temporary directory (configs, logs) and print its path")
	flag.Parse()
	s.targets = strings.Split(names, ",")
	for _, name := range s.targets {
		if prepareOf(name) == nil {
			return fmt.Errorf("unknown target %q (known: %s, and switchboard@COMMIT)", name, defaultTargets)
		}
	}
	if s.rounds < 1 || s.rate < 1 || s.rateConns < 1 || s.satConns < 1 || s.bigConns < 1 {
		return errors.New("-rounds, -rate and the connection counts must be at least 1")
	}
	if os.Getenv(pinnedEnv) == "" {
		return pinSelf(s.loadCPU)
	}

	began := time.Now()
	ctx, stop := benchkit.RunContext(s.budget)
	defer stop()

	root, err := benchkit.ModuleRoot("suite")
	if err != nil {
		return err
	}
	date := began.UTC().Format("2006-01-02")
	if s.out == "" {
		s.out = filepath.Join(root, "bench", "results", "suite-"+date+".md")
	}
	if s.latest == "" {
		s.latest = filepath.Join(root, "bench", "RESULTS.md")
	}
	dir, err := os.MkdirTemp("", "suite-")
	if err != nil {
		return err
	}
	if s.keep {
		defer logf("kept %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	e := &env{dir: dir, root: root, commit: benchkit.GitCommit(root), install: &benchkit.Installer{Logf: logf}, proxyCPU: s.proxyCPU, loadCPU: s.loadCPU}
	rep := &report{date: began, settings: &s, env: e}
	rep.nofile, rep.nofileNote = raiseNofile(s.idle)
	if s.idle > 0 {
		e.idleConns = min(s.idle, int(rep.nofile)-1000)
		if e.idleConns < s.idle {
			rep.nofileNote += fmt.Sprintf(" Scaled down to %d idle connections.", e.idleConns)
		}
	}

	if _, err := e.install.Ensure(ctx, "wrk", "wrk"); err != nil {
		return fmt.Errorf("wrk is needed for the closed-loop loads: %w", err)
	}
	nginx, err := e.install.Ensure(ctx, "nginx", "nginx")
	if err != nil {
		return fmt.Errorf("nginx is needed as the upstream: %w", err)
	}
	logf("building switchboard and bench/stdproxy")
	if e.switchboard, err = benchkit.GoBuild(ctx, root, dir, "switchboard", "./cmd/switchboard"); err != nil {
		return err
	}
	if e.stdproxy, err = benchkit.GoBuild(ctx, root, dir, "stdproxy", "./bench/stdproxy"); err != nil {
		return err
	}

	stall, err := newStallUpstream()
	if err != nil {
		return err
	}
	defer stall.close()
	e.stall = stall.addr()
	up, err := startUpstream(ctx, e, nginx)
	if err != nil {
		return err
	}
	defer up.Stop()
	logf("upstream nginx on %s, stalling upstream on %s", e.upstream, e.stall)

	rep.targets = newTargets(ctx, e, s.targets)
	rep.loadStart = loadavg()
	m := &measurer{s: &s, e: e, stall: stall, upPID: up.PID()}
	for round := 1; round <= s.rounds && ctx.Err() == nil; round++ {
		for _, t := range rotate(rep.targets, round-1) {
			if t.skipped != "" || ctx.Err() != nil {
				continue
			}
			t.rounds = append(t.rounds, m.round(ctx, t, round))
		}
	}
	if s.profile > 0 && ctx.Err() == nil {
		rep.profile = profileSwitchboard(ctx, e, &s)
	}
	rep.elapsed = time.Since(began)
	rep.stopped = context.Cause(ctx) // nil unless the budget or a signal cut the run
	rep.loadEnd = loadavg()

	fmt.Print(rep.markdown(""))
	for _, path := range []string{s.out, s.latest} {
		if path == "-" {
			continue
		}
		// Links in the report are relative to the file's own directory.
		if err := benchkit.WriteResult(path, rep.markdown(filepath.Dir(path))); err != nil {
			return err
		}
		logf("wrote %s", path)
	}
	return nil
}

// pinSelf re-executes this program under taskset on cpu, so that the load
// it generates stays off the proxy's CPU. taskset execs the program in
// place: the PID, and so go run's wait, stay the same.
func pinSelf(cpu int) error {
	if n := benchkit.NumCPU(); n < 2 {
		return fmt.Errorf("needs at least 2 CPUs for the pinning, have %d", n)
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		return fmt.Errorf("taskset (util-linux) is required: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	argv := append([]string{"taskset", "-c", strconv.Itoa(cpu), self}, os.Args[1:]...)
	return syscall.Exec(taskset, argv, append(os.Environ(), pinnedEnv+"=1"))
}

// raiseNofile lifts the soft open-files limit to the hard one, which the
// processes this program starts inherit, and says whether idle
// connections fit: this process holds them and each proxy accepts them.
func raiseNofile(idle int) (uint64, string) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, "open-files limit unknown: " + err.Error()
	}
	want := uint64(idle) + 2000
	if lim.Max < want {
		// Raising the hard limit needs privilege; try, and scale down if
		// it is refused.
		raised := syscall.Rlimit{Cur: want, Max: want}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
			return want, fmt.Sprintf("open-files limit raised from %d to %d.", lim.Max, want)
		}
	}
	lim.Cur = lim.Max
	// Setting it explicitly (even to the value Go already raised it to at
	// start) makes os/exec pass it on to children.
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	return lim.Max, fmt.Sprintf("open-files limit (`ulimit -n`) %d for this program and the processes it starts.", lim.Max)
}

// rotate returns ts rotated left by k.
func rotate(ts []*target, k int) []*target {
	k %= len(ts)
	return append(slices.Clone(ts[k:]), ts[:k]...)
}
