package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/switchboard-proxy/switchboard/bench/internal/benchkit"
)

type report struct {
	date    time.Time
	elapsed time.Duration
	stopped error
	commit  string
	flags   string
	disk    string
	n       int
	accepts int
	n2      int
	callers int
	conc    int
	fsync   fsyncResult
	accept  *acceptResult
	drain   *drainResult
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

func (r *report) markdown() string {
	var b strings.Builder
	b.WriteString("# Async mode through the proxy: durable accepts, time-to-202, memory, drain\n\n")
	fmt.Fprintf(&b, "- Date: %s\n", r.date.Format(time.RFC3339))
	fmt.Fprintf(&b, "- Go: %s\n", benchkit.Toolchain())
	fmt.Fprintf(&b, "- Machine: %s, %s memory\n", benchkit.Machine(), benchkit.MemTotal())
	fmt.Fprintf(&b, "- Queue disk: %s\n", r.disk)
	fmt.Fprintf(&b, "- switchboard: %s (built from `cmd/switchboard`)\n", r.commit)
	fmt.Fprintf(&b, "- Command: `go run ./bench/queue %s` (took %.1fs)\n", r.flags, r.elapsed.Seconds())
	if r.stopped != nil {
		fmt.Fprintf(&b, "- **Stopped early** (%v): later figures are partial or missing.\n", r.stopped)
	}
	b.WriteString("\nOne switchboard process (default GOMAXPROCS, access log off, admin API on a\n" +
		"loopback port for `/metrics`), one `mode: async` route, the embedded JetStream\n" +
		"store (`sync always`: every write fsynced before the 202). The callers and\n" +
		"the counting upstream run in the benchmark process on the same 2 CPUs, which\n" +
		"are shared with other work on this machine. Bodies are 1 KiB POSTs, each with\n" +
		"a unique `Idempotency-Key`, from keep-alive Go `net/http` clients.\n\n")

	b.WriteString("## Figures\n\n| figure | value | how |\n|---|---:|---|\n")
	f := r.fsync
	fmt.Fprintf(&b, "| raw fsync rate (the ceiling) | **%.0f /s** (p50 %s, p99 %s) | 1 KiB append + `fsync` in a loop for %d ops on the queue's disk |\n",
		f.rate, ms(f.p50), ms(f.p99), f.ops)
	a := r.accept
	if a != nil && a.err == "" {
		l := a.load
		rate := float64(l.accepted) / l.elapsed.Seconds()
		fmt.Fprintf(&b, "| durable accepts/s, upstream down | **%.0f /s** (%.0f%% of raw fsync) | %d × 202 of %d sent in %.1fs, %d callers |\n",
			rate, 100*rate/f.rate, l.accepted, l.sent, l.elapsed.Seconds(), r.callers)
		fmt.Fprintf(&b, "| time-to-202 p50 / p90 / p99 / max | **%s / %s / %s** / %s | from `Do` to the end of the 202's body, per request |\n",
			ms(l.p50), ms(l.p90), ms(l.p99), ms(l.max))
		if len(l.other) > 0 {
			fmt.Fprintf(&b, "| not 202 | %s | |\n", benchkit.Counts(l.other, "–"))
		}
		fmt.Fprintf(&b, "| VmRSS before / after %d pending | %.1f MiB / %.1f MiB | `/proc/PID/status`; after = right after the last 202 |\n",
			l.accepted, mib(a.rssBefore), mib(a.rssAfter))
		if a.midAt > 0 && a.rssMid > 0 {
			fmt.Fprintf(&b, "| VmRSS after %d pending | %.1f MiB | read when the %d-th 202 arrived |\n", a.midAt, mib(a.rssMid), a.midAt)
		}
		per := float64(a.rssSettled-a.rssBefore) * 1024 / float64(max(l.accepted, 1))
		fmt.Fprintf(&b, "| VmRSS 3 s later | %.1f MiB | |\n", mib(a.rssSettled))
		fmt.Fprintf(&b, "| **memory per pending delivery** | **%.0f bytes** | (VmRSS 3 s later − before) ÷ %d |\n", per, l.accepted)
		if l.accepted < 100000 {
			fmt.Fprintf(&b, "| memory with 100k pending (**extrapolated**, not measured) | ≈ %.0f MiB | before + 100,000 × the per-delivery figure; linear growth assumed |\n",
				mib(a.rssBefore)+per*100000/(1<<20))
		}
		fmt.Fprintf(&b, "| queue directory on disk | %.1f MiB (%.0f bytes per delivery) | file sizes under `queue.dir` |\n",
			float64(a.diskAfter)/(1<<20), float64(a.diskAfter-a.diskBefore)/float64(max(l.accepted, 1)))
		fmt.Fprintf(&b, "| worker's failed attempts during the pass | %.0f | `switchboard_queue_failed_attempts_total`: the retries that competed with the accepts |\n", a.failedAttempts)
		fmt.Fprintf(&b, "| pending (metric) | %.0f | `switchboard_queue_deliveries{state=\"pending\"}` |\n", a.depth)
	} else if a != nil {
		fmt.Fprintf(&b, "| accept pass | not measured | %s |\n", benchkit.Escape(a.err))
	}
	d := r.drain
	if d != nil && d.err == "" {
		span := d.lastAfter - d.firstAfter
		fmt.Fprintf(&b, "| drain pass: accepted while down | %d in %.1fs | %d failed attempts while down |\n",
			d.load.accepted, d.load.elapsed.Seconds(), int(d.failedWhileDown))
		fmt.Fprintf(&b, "| drain: first delivery after upstream up | %s | |\n", ms(d.firstAfter))
		fmt.Fprintf(&b, "| drain: all delivered after | %.2f s%s | %d of %d unique keys |\n",
			d.lastAfter.Seconds(), map[bool]string{true: " (**timed out**)", false: ""}[d.timedOut], d.delivered, d.load.accepted)
		if span > 0 {
			fmt.Fprintf(&b, "| **delivery throughput** | **%.0f /s** (%.0f /s from upstream up) | unique keys ÷ (last − first arrival); concurrency %d |\n",
				float64(d.delivered)/span.Seconds(), float64(d.delivered)/d.lastAfter.Seconds(), r.conc)
		}
		fmt.Fprintf(&b, "| duplicates | %d keys seen twice+ (%d extra arrivals of %d) | counting upstream, 2 s after the last key |\n", d.dups, d.extra, d.arrivals)
		fmt.Fprintf(&b, "| delivered (metric) | %.0f | `switchboard_queue_delivered_total` |\n", d.metricDelivered)
	} else if d != nil {
		fmt.Fprintf(&b, "| drain pass | not measured | %s |\n", benchkit.Escape(d.err))
	}

	b.WriteString("\n## How\n\n" +
		"**Accept pass.** The pool's only endpoint is a loopback port reserved for\n" +
		"the run with nothing listening: the upstream is down for the whole pass. The\n" +
		"route's queue settings are `backoff_base: 30s`, `backoff_max: 5m`,\n" +
		"`max_attempts: 1000`, `max_age: 1h`, so after each delivery's first\n" +
		"(refused) attempt the worker waits a jittered 0–30 s before the next: its\n" +
		"retries barely interfere with the accepts (the failed-attempts row counts\n" +
		"them). Memory is VmRSS; the per-delivery figure includes whatever the\n" +
		"embedded NATS server and the worker keep per message (JetStream index,\n" +
		"KV record cache, the worker's pending state).\n\n" +
		"**Drain pass.** A fresh switchboard and queue directory with `backoff_base:\n" +
		"100ms`, `backoff_max: 1s`. A pending delivery is not retried the moment the\n" +
		"upstream returns: its next attempt comes when its backoff ends (full jitter,\n" +
		"ceiling doubling from `backoff_base` to `backoff_max`). With the accept\n" +
		"pass's 30 s / 5 m schedule most deliveries would wait minutes after the\n" +
		"upstream's return, and the drain would measure the schedule, not the\n" +
		"worker; with a 1 s cap every pending delivery is due within about 1 s of the\n" +
		"upstream coming back (plus passive-health ejection of the refused endpoint,\n" +
		"if any), and the rest is the worker's rate. The upstream is Go `net/http`\n" +
		"answering `200` to everything, counting each `Idempotency-Key`.\n")
	if d != nil && len(d.perSecond) > 0 {
		b.WriteString("\nUnique deliveries per second after the upstream came up: ")
		parts := make([]string, len(d.perSecond))
		for i, v := range d.perSecond {
			parts[i] = fmt.Sprint(v)
		}
		b.WriteString(strings.Join(parts, " · ") + "\n")
	}
	if a != nil && a.config != "" {
		b.WriteString("\n## Accept pass config\n\n```yaml\n" + a.config + "```\n")
	}
	if d != nil && d.config != "" {
		b.WriteString("\nThe drain pass differs in `backoff_base: 100ms`, `backoff_max: 1s` (and its ports and directory).\n")
	}
	return b.String()
}

func mib(kib int64) float64 { return float64(kib) / 1024 }
