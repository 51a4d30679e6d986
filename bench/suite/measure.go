package main

import (
	"context"
	"fmt"
	"time"
)

// clockTick is the unit of /proc/PID/stat's utime and stime: USER_HZ,
// 100 on every Linux that runs this.
const clockTick = 10 * time.Millisecond

// roundResult is one target measured in one round. A nil part was not
// measured (see err).
type roundResult struct {
	round int
	err   string // the first thing that went wrong, if anything did

	idle *idleResult

	sat      wrkResult
	satCPU   float64 // proxy CPU µs per request
	satUpCPU float64 // upstream CPU µs per request
	satOther float64 // % of the proxy CPU's time busy with other work
	satDone  bool

	rate    *rateResult
	rateCPU float64 // proxy CPU µs per request at the fixed rate

	big     wrkResult
	bigCPU  float64 // proxy CPU µs per MiB
	bigDone bool

	hang *hangupResult
}

func (r *roundResult) fail(what string, err error) {
	if r.err == "" {
		r.err = fmt.Sprintf("%s: %v", what, err)
	}
	logf("round %d: %s: %v", r.round, what, err)
}

// measurer runs the rounds.
type measurer struct {
	s     *settings
	e     *env
	stall *stallUpstream
	upPID int
}

// round starts t afresh and takes every measurement once.
func (m *measurer) round(ctx context.Context, t *target, round int) *roundResult {
	r := &roundResult{round: round}
	p, addr, err := t.launch(ctx, m.e, round)
	if err != nil {
		r.fail("start", err)
		return r
	}
	defer p.Stop()
	pid := 0
	if p != nil {
		pid = p.PID()
	}
	small, big := "http://"+addr+pathSmall, "http://"+addr+pathBig
	if _, err := runWrk(ctx, m.e.loadCPU, small, m.s.satConns, m.s.warmup); err != nil {
		r.fail("warm-up", err)
		return r
	}

	if pid != 0 && m.e.idleConns > 0 && ctx.Err() == nil {
		if r.idle, err = measureIdle(ctx, pid, addr, m.e.idleConns, 64); err != nil {
			r.fail("idle connections", err)
		} else {
			logf("round %d %-11s idle: %d conns (%d still open), RSS %.1f → %.1f MiB, %.0f B/conn",
				round, t.name, r.idle.conns, r.idle.open, mib(r.idle.before), mib(r.idle.after), r.idle.perConn)
		}
	}

	if ctx.Err() == nil {
		w := m.openWindow(pid)
		res, err := runWrk(ctx, m.e.loadCPU, small, m.s.satConns, m.s.satFor)
		if err != nil {
			r.fail("saturation", err)
		} else {
			r.sat, r.satDone = res, true
			pt, ut, other := w.close()
			r.satCPU, r.satUpCPU, r.satOther = perUnit(pt, res.requests), perUnit(ut, res.requests), other
			logf("round %d %-11s small: %.0f req/s, proxy %.1f µs/req, upstream %.1f µs/req, other work on CPU %d %.0f%% %s",
				round, t.name, res.rps, r.satCPU, r.satUpCPU, m.e.proxyCPU, other, res.errors)
		}
	}

	if ctx.Err() == nil {
		l := &rateLoad{addr: addr, path: pathSmall, rate: m.s.rate, conns: m.s.rateConns,
			n: int(float64(m.s.rate) * m.s.rateFor.Seconds()), timeout: 2 * time.Second}
		w := m.openWindow(pid)
		res, err := l.run(ctx)
		if err != nil {
			r.fail("fixed rate", err)
		} else {
			r.rate = res
			pt, _, _ := w.close()
			r.rateCPU = perUnit(pt, int64(len(res.latencies)))
			logf("round %d %-11s rate %d/s: p50 %v p90 %v p99 %v, send lag p99 %v, %d errors",
				round, t.name, m.s.rate, quantile(res.latencies, .5), quantile(res.latencies, .9),
				quantile(res.latencies, .99), quantile(res.lags, .99), res.sent-len(res.latencies))
		}
	}

	if ctx.Err() == nil {
		w := m.openWindow(pid)
		res, err := runWrk(ctx, m.e.loadCPU, big, m.s.bigConns, m.s.bigFor)
		if err != nil {
			r.fail("1 MiB", err)
		} else {
			r.big, r.bigDone = res, true
			pt, _, _ := w.close()
			r.bigCPU = perUnit(pt, res.requests)
			logf("round %d %-11s 1 MiB: %.0f MiB/s, proxy %.0f µs/MiB %s",
				round, t.name, float64(res.requests)/res.seconds, r.bigCPU, res.errors)
		}
	}

	if pid != 0 && m.s.hangups > 0 && ctx.Err() == nil {
		r.hang = measureHangups(addr, m.stall, m.s.hangups, fmt.Sprintf("%s-%d", t.name, round))
		logf("round %d %-11s hang-ups: fin median %v, reset median %v, held %v, failed %d",
			round, t.name, median(r.hang.fin), median(r.hang.rst), r.hang.held, r.hang.failed)
	}
	return r
}

// window is a measured interval: CPU ticks of the proxy and the upstream,
// and of the proxy's CPU as a whole.
type window struct {
	m          *measurer
	pid        int
	p0, u0     int64
	busy0, tt0 int64
}

func (m *measurer) openWindow(pid int) *window {
	w := &window{m: m, pid: pid}
	if pid != 0 {
		w.p0, _ = cpuTicks(pid)
	}
	w.u0, _ = cpuTicks(m.upPID)
	w.busy0, w.tt0, _ = cpuBusy(m.e.proxyCPU)
	return w
}

// close returns the proxy's and the upstream's CPU time in the window,
// and the share of the proxy CPU's time that was busy with anything but
// the proxy (other processes on the machine, interrupts), in percent.
func (w *window) close() (proxy, upstream time.Duration, otherPct float64) {
	var p1 int64
	if w.pid != 0 {
		p1, _ = cpuTicks(w.pid)
	}
	u1, _ := cpuTicks(w.m.upPID)
	busy1, tt1, _ := cpuBusy(w.m.e.proxyCPU)
	proxy = time.Duration(p1-w.p0) * clockTick
	upstream = time.Duration(u1-w.u0) * clockTick
	if tt1 > w.tt0 {
		otherPct = max(0, float64(busy1-w.busy0-(p1-w.p0))*100/float64(tt1-w.tt0))
	}
	return proxy, upstream, otherPct
}

// perUnit is d in µs divided by n.
func perUnit(d time.Duration, n int64) float64 {
	if n <= 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(n)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
