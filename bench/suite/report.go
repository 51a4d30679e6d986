package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-proxy/switchboard/bench/internal/benchkit"
)

type report struct {
	date       time.Time
	elapsed    time.Duration
	stopped    error // why the run ended early, if it did
	settings   *settings
	env        *env
	targets    []*target
	profile    *profileResult
	nofile     uint64
	nofileNote string
	loadStart  string
	loadEnd    string
	dir        string // where the report being rendered goes; links are relative to it
}

// link is path relative to the report's directory (to the module root
// for a report on stdout).
func (r *report) link(path string) string {
	base := r.dir
	if base == "" {
		base = r.env.root
	}
	if rel, err := filepath.Rel(base, path); err == nil {
		return filepath.ToSlash(rel)
	}
	return path
}

// metric is one column of the summary: a figure per round.
type metric struct {
	head   string
	format string
	get    func(r *roundResult) (float64, bool)
}

func (r *report) metrics() []metric {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	rateQ := func(q float64) func(*roundResult) (float64, bool) {
		return func(x *roundResult) (float64, bool) {
			if x.rate == nil || len(x.rate.latencies) == 0 {
				return 0, false
			}
			return ms(quantile(x.rate.latencies, q)), true
		}
	}
	return []metric{
		{"proxy CPU µs/req", "%.1f", func(x *roundResult) (float64, bool) { return x.satCPU, x.satDone && x.satCPU > 0 }},
		{"req/s", "%.0f", func(x *roundResult) (float64, bool) { return x.sat.rps, x.satDone }},
		{fmt.Sprintf("p50 ms @%d/s", r.settings.rate), "%.3f", rateQ(.5)},
		{"p90 ms", "%.3f", rateQ(.9)},
		{"p99 ms", "%.3f", rateQ(.99)},
		{"1 MiB: MiB/s", "%.0f", func(x *roundResult) (float64, bool) {
			return float64(x.big.requests) / x.big.seconds, x.bigDone && x.big.seconds > 0
		}},
		{"proxy CPU µs/MiB", "%.0f", func(x *roundResult) (float64, bool) { return x.bigCPU, x.bigDone && x.bigCPU > 0 }},
		{"RSS bytes/idle conn", "%.0f", func(x *roundResult) (float64, bool) {
			if x.idle == nil || x.idle.conns == 0 {
				return 0, false
			}
			return x.idle.perConn, true
		}},
		{"hang-up → upstream ms", "%.3f", func(x *roundResult) (float64, bool) {
			if x.hang == nil {
				return 0, false
			}
			// A held trial counts as longer than any that ended, so the
			// median says "held" when most were.
			all := slices.Concat(x.hang.fin, x.hang.rst)
			for range x.hang.held["fin"] + x.hang.held["reset"] {
				all = append(all, math.MaxInt64)
			}
			slices.Sort(all)
			if len(all) == 0 {
				return 0, false
			}
			if m := median(all); m < math.MaxInt64 {
				return ms(m), true
			}
			return math.Inf(1), true
		}},
	}
}

// fmt formats a value; +Inf is a hang-up the proxy held on to.
func (m metric) fmt(v float64) string {
	if math.IsInf(v, 1) {
		return fmt.Sprintf("held > %v", hangupTimeout)
	}
	return fmt.Sprintf(m.format, v)
}

// values is the metric over t's rounds, sorted.
func (m metric) values(t *target) []float64 {
	var vs []float64
	for _, x := range t.rounds {
		if v, ok := m.get(x); ok {
			vs = append(vs, v)
		}
	}
	slices.Sort(vs)
	return vs
}

// markdown renders the report for a file in dir ("" for stdout).
func (r *report) markdown(dir string) string {
	r.dir = dir
	var b strings.Builder
	s, e := r.settings, r.env
	b.WriteString("# Benchmark suite: what proxying costs, per core\n\n")
	fmt.Fprintf(&b, "- Date: %s\n", r.date.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "- Go: %s\n", benchkit.Toolchain())
	fmt.Fprintf(&b, "- Machine: %s, %s RAM\n", benchkit.Machine(), benchkit.MemTotal())
	fmt.Fprintf(&b, "- Load average (1/5/15 min) at the start of the rounds: %s; at the end: %s (other work on this machine skews the figures)\n", r.loadStart, r.loadEnd)
	for _, t := range r.targets {
		if t.isProxy() && t.skipped == "" {
			fmt.Fprintf(&b, "- %s: %s\n", t.name, t.version)
		}
	}
	fmt.Fprintf(&b, "- Upstream: %s; load: %s and this program\n", versionOf("nginx"), versionOf("wrk"))
	fmt.Fprintf(&b, "- Command: `go run ./bench/suite %s` (took %.0fs)\n", s.flags(), r.elapsed.Seconds())
	fmt.Fprintf(&b, "- %s\n", r.nofileNote)
	if len(e.install.Installed) > 0 {
		fmt.Fprintf(&b, "- Installed by this run with apt-get: %s\n", strings.Join(e.install.Installed, ", "))
	}
	for _, t := range r.targets {
		if t.skipped != "" {
			fmt.Fprintf(&b, "- **%s not measured**: %s\n", t.name, benchkit.Escape(t.skipped))
		}
	}
	if r.stopped != nil {
		fmt.Fprintf(&b, "- **Stopped early** (%v): later rounds are partial or missing.\n", r.stopped)
	}

	fmt.Fprintf(&b, "\nThe proxy under test runs alone on CPU %d with one core's worth of parallelism "+
		"(nginx 1 worker, HAProxy `nbthread 1`, Caddy and the Go proxies `GOMAXPROCS=1`); the load "+
		"generators (wrk, and this program for the fixed-rate load, the idle connections and the "+
		"hang-ups) and a fixed nginx upstream (1 worker; 13-byte body at `/`, 1 MiB file at `/1m` "+
		"with sendfile; keep-alive) share CPU %d. %d rounds; each round starts every target afresh "+
		"on a new loopback port, in an order rotated per round, warms it with %v of wrk, and measures "+
		"in this order: idle connections, saturation, fixed rate, 1 MiB bodies, hang-ups.\n",
		s.proxyCPU, s.loadCPU, s.rounds, s.warmup)

	ms := r.metrics()
	nginx := r.find("nginx")
	fmt.Fprintf(&b, "\n## Summary\n\nMedians over the rounds; in brackets the ratio to nginx's median "+
		"(lower is better except for req/s and MiB/s). Ranges and per-round figures follow.\n\n")
	r.table(&b, ms, func(m metric, t *target) string {
		vs := m.values(t)
		if len(vs) == 0 {
			return "–"
		}
		v := medianF(vs)
		cell := m.fmt(v)
		if nginx != nil && t != nginx && !math.IsInf(v, 0) {
			if nv := m.values(nginx); len(nv) > 0 && medianF(nv) > 0 && !math.IsInf(medianF(nv), 0) {
				cell += fmt.Sprintf(" (%.2f×)", v/medianF(nv))
			}
		}
		return cell
	})
	b.WriteString("\n### Ranges (min–max over the rounds)\n\n")
	r.table(&b, ms, func(m metric, t *target) string {
		vs := m.values(t)
		if len(vs) == 0 {
			return "–"
		}
		lo, hi := m.fmt(vs[0]), m.fmt(vs[len(vs)-1])
		if lo == hi {
			return lo
		}
		return lo + "–" + hi
	})
	r.method(&b)
	r.perRound(&b)
	r.writeConfigs(&b)
	r.writeProfile(&b)
	return b.String()
}

func (r *report) find(name string) *target {
	for _, t := range r.targets {
		if t.name == name && t.skipped == "" && len(t.rounds) > 0 {
			return t
		}
	}
	return nil
}

// table writes one row per target and one column per metric.
func (r *report) table(b *strings.Builder, ms []metric, cell func(metric, *target) string) {
	b.WriteString("| target |")
	for _, m := range ms {
		fmt.Fprintf(b, " %s |", m.head)
	}
	b.WriteString("\n|---|" + strings.Repeat("---:|", len(ms)) + "\n")
	for _, t := range r.targets {
		if t.skipped != "" {
			fmt.Fprintf(b, "| %s |%s\n", t.name, strings.Repeat(" not measured |", len(ms)))
			continue
		}
		fmt.Fprintf(b, "| %s |", t.name)
		for _, m := range ms {
			fmt.Fprintf(b, " %s |", cell(m, t))
		}
		b.WriteString("\n")
	}
}

func (r *report) method(b *strings.Builder) {
	s, e := r.settings, r.env
	fmt.Fprintf(b, "\n## What each figure is\n\n"+
		"- **proxy CPU µs/req, req/s**: `wrk -t1 -c%d -d%v` on the 13-byte body. CPU is the proxy "+
		"process's utime+stime delta (`/proc/PID/stat`, all threads, %v ticks) over the wrk run divided "+
		"by the requests wrk completed; it moves far less than req/s or latency when other work "+
		"competes for the core (though time-slicing still costs a little), so it is the figure to compare. req/s is wrk's: at saturation the proxy's core or CPU %d "+
		"(wrk and the upstream) is the limit, whichever comes first, and it moves with other load.\n"+
		"- **p50/p90/p99 @%d/s**: an open-loop load from this program: %d requests due at fixed "+
		"intervals (%d/s for %v) over a pool of %d keep-alive connections, each request's latency "+
		"taken from its due time to the end of its response, so a stall is charged to every request "+
		"queued behind it (no coordinated omission). The rate is below every target's saturation.\n"+
		"- **1 MiB: MiB/s, proxy CPU µs/MiB**: `wrk -t1 -c%d -d%v` on `/1m`; MiB/s is responses × 1 MiB "+
		"÷ wrk's duration.\n"+
		"- **RSS bytes/idle conn**: (VmRSS with the connections idle − VmRSS before) ÷ connections, "+
		"with %d caller connections that each made one request and then stayed open (opened 64 at a "+
		"time, RSS read 1 s after the last); the per-round table shows how many were still open when "+
		"it was read.\n"+
		"- **hang-up → upstream ms**: bench/abortlat's `await_headers` trial run against every proxy: "+
		"a caller sends `GET /stall/ID`, an upstream in this program reads the head and never answers, "+
		"the caller closes (FIN: `CloseWrite`+`Close`, RST: `SetLinger(0)`+`Close`, %d of each per "+
		"round, alternating), and the figure is the time until the upstream's `Read` returns, one "+
		"monotonic clock. A trial still held after %v counts as *held*; after 3 held in a row a kind "+
		"is not tried again that round. The full phase set for switchboard is bench/abortlat's "+
		"([`abort-propagation.md`](%s)).\n",
		s.satConns, s.satFor, clockTick, s.loadCPU,
		s.rate, int(float64(s.rate)*s.rateFor.Seconds()), s.rate, s.rateFor, s.rateConns,
		s.bigConns, s.bigFor, e.idleConns, s.hangups, hangupTimeout,
		r.link(filepath.Join(e.root, "bench", "results", "abort-propagation.md")))
}

func (r *report) perRound(b *strings.Builder) {
	s := r.settings
	fmt.Fprintf(b, "\n## Per round\n\n### Small body at saturation\n\n"+
		"*other work on CPU %d*: busy time of the proxy's CPU (`/proc/stat`) not charged to the proxy, "+
		"as a share of the window: other processes competing with it, plus interrupts.\n\n", s.proxyCPU)
	b.WriteString("| target | round | req/s | requests | proxy CPU µs/req | upstream CPU µs/req | other work on CPU " +
		fmt.Sprint(s.proxyCPU) + " | wrk errors | problems |\n|---|---:|---:|---:|---:|---:|---:|---|---|\n")
	r.rows(b, func(t *target, x *roundResult) string {
		if !x.satDone {
			return fmt.Sprintf("| %s | %d | – | – | – | – | – | – | %s |", t.name, x.round, benchkit.Escape(x.err))
		}
		pc := fmt.Sprintf("%.1f", x.satCPU)
		if !t.isProxy() {
			pc = "–"
		}
		return fmt.Sprintf("| %s | %d | %.0f | %d | %s | %.1f | %.0f%% | %s | %s |", t.name, x.round, x.sat.rps,
			x.sat.requests, pc, x.satUpCPU, x.satOther, orNone(x.sat.errors), benchkit.Escape(x.err))
	})

	fmt.Fprintf(b, "\n### Fixed rate, %d/s\n\n*send lag*: due time → the request's write, the load "+
		"generator's own delay (timer wake-up, or every pooled connection busy); it is part of the latency.\n\n", s.rate)
	b.WriteString("| target | round | sent | errors | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | send lag p50 ms | send lag p99 ms | proxy CPU µs/req |\n" +
		"|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	r.rows(b, func(t *target, x *roundResult) string {
		if x.rate == nil {
			return fmt.Sprintf("| %s | %d | – | – | – | – | – | – | – | – | – | – |", t.name, x.round)
		}
		l := x.rate.latencies
		pc := fmt.Sprintf("%.1f", x.rateCPU)
		if !t.isProxy() {
			pc = "–"
		}
		return fmt.Sprintf("| %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |", t.name, x.round, x.rate.sent,
			benchkit.Counts(x.rate.errors, "none"), msf(quantile(l, .5)), msf(quantile(l, .9)), msf(quantile(l, .99)), msf(quantile(l, .999)),
			msf(quantile(l, 1)), msf(quantile(x.rate.lags, .5)), msf(quantile(x.rate.lags, .99)), pc)
	})

	b.WriteString("\n### 1 MiB bodies\n\n| target | round | responses | MiB/s | proxy CPU µs/MiB | wrk errors |\n|---|---:|---:|---:|---:|---|\n")
	r.rows(b, func(t *target, x *roundResult) string {
		if !x.bigDone {
			return fmt.Sprintf("| %s | %d | – | – | – | – |", t.name, x.round)
		}
		pc := fmt.Sprintf("%.0f", x.bigCPU)
		if !t.isProxy() {
			pc = "–"
		}
		return fmt.Sprintf("| %s | %d | %d | %.0f | %s | %s |", t.name, x.round, x.big.requests,
			float64(x.big.requests)/x.big.seconds, pc, orNone(x.big.errors))
	})

	b.WriteString("\n### Idle keep-alive caller connections\n\n| target | round | connections | still open | failed | RSS before MiB | RSS with them MiB | bytes/conn |\n|---|---:|---:|---:|---|---:|---:|---:|\n")
	r.rows(b, func(t *target, x *roundResult) string {
		if !t.isProxy() {
			return ""
		}
		if x.idle == nil {
			return fmt.Sprintf("| %s | %d | – | – | – | – | – | – |", t.name, x.round)
		}
		i := x.idle
		failed := fmt.Sprint(i.failed)
		if i.firstError != "" {
			failed += ": " + benchkit.Escape(i.firstError)
		}
		return fmt.Sprintf("| %s | %d | %d | %d | %s | %.1f | %.1f | %.0f |", t.name, x.round, i.conns, i.open, failed,
			mib(i.before), mib(i.after), i.perConn)
	})

	fmt.Fprintf(b, "\n### Caller hang-ups\n\n| target | round | FIN median ms | FIN max ms | RST median ms | RST max ms | held > %v | failed |\n|---|---:|---:|---:|---:|---:|---|---|\n", hangupTimeout)
	r.rows(b, func(t *target, x *roundResult) string {
		if !t.isProxy() {
			return ""
		}
		h := x.hang
		if h == nil {
			return fmt.Sprintf("| %s | %d | – | – | – | – | – | – |", t.name, x.round)
		}
		slices.Sort(h.fin)
		slices.Sort(h.rst)
		failed := fmt.Sprint(h.failed)
		if h.firstErr != "" {
			failed += ": " + benchkit.Escape(h.firstErr)
		}
		return fmt.Sprintf("| %s | %d | %s | %s | %s | %s | %s | %s |", t.name, x.round,
			msOrDash(h.fin, .5), msOrDash(h.fin, 1), msOrDash(h.rst, .5), msOrDash(h.rst, 1), benchkit.Counts(h.held, "none"), failed)
	})
}

// rows writes row(t, x) for every round of every measured target, by
// target; an empty row is left out.
func (r *report) rows(b *strings.Builder, row func(*target, *roundResult) string) {
	for _, t := range r.targets {
		for _, x := range t.rounds {
			if line := row(t, x); line != "" {
				b.WriteString(line + "\n")
			}
		}
	}
}

// writeConfigs explains each target's setup and shows its configuration.
func (r *report) writeConfigs(b *strings.Builder) {
	b.WriteString("\n## How each is configured\n\nAddresses are filled in per start: `$LISTEN` the " +
		"target's loopback port, `$UP` the nginx upstream, `$STALL` the stalling upstream of the " +
		"hang-up trials, `$TMP` the run's temporary directory.\n")
	for _, t := range r.targets {
		fmt.Fprintf(b, "\n### %s\n\n%s\n", t.name, t.why)
		if t.template != "" {
			fmt.Fprintf(b, "\n```%s\n%s```\n", t.lang, t.template)
		}
	}
	fmt.Fprintf(b, "\n### upstream\n\nDebian `nginx`, one process on CPU %d, the same for every target.\n\n```nginx\n%s```\n",
		r.settings.loadCPU, upstreamConf)
}

func (r *report) writeProfile(b *strings.Builder) {
	b.WriteString("\n## CPU profile of switchboard\n\n")
	p := r.profile
	switch {
	case p == nil:
		b.WriteString("Not taken (`-profile 0`, or the run was stopped before it).\n")
		return
	case p.err != "":
		fmt.Fprintf(b, "Not taken: %s\n", benchkit.Escape(p.err))
		return
	}
	fmt.Fprintf(b, "switchboard has no profiling endpoint, so the suite builds it once more with a "+
		"file added through `go build -overlay` (the source tree is untouched) that records a CPU "+
		"profile from start-up, and runs it on CPU %d with `GOMAXPROCS=1` under `wrk -t1 -c%d -d%v` "+
		"on the small body (%.0f req/s while profiling). Profile: [`%s`](%s); read it with "+
		"`go tool pprof -top` or `-http`.\n\n%s\n",
		r.settings.proxyCPU, r.settings.satConns, r.settings.profile, p.wrk.rps, filepath.Base(p.file), r.link(p.file), p.top)
}

func median(ds []time.Duration) time.Duration { return quantile(ds, .5) }

// medianF is the median of sorted vs.
func medianF(vs []float64) float64 {
	n := len(vs)
	if n%2 == 1 {
		return vs[n/2]
	}
	return (vs[n/2-1] + vs[n/2]) / 2
}

func msf(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)) }

func msOrDash(ds []time.Duration, q float64) string {
	if len(ds) == 0 {
		return "–"
	}
	return msf(quantile(ds, q))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return benchkit.Escape(s)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// versionOf is the version line of a load tool or the upstream.
func versionOf(bin string) string {
	path, err := benchkit.LookSbin(bin)
	if err != nil {
		return bin + " (not found)"
	}
	switch bin {
	case "nginx":
		return strings.TrimPrefix(benchkit.VersionLine(path, "-v"), "nginx version: ")
	case "wrk":
		f := strings.Fields(benchkit.VersionLine(path, "--version"))
		if len(f) >= 2 {
			return "wrk " + f[1]
		}
	}
	return bin
}
