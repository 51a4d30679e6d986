package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// rateLoad is an open-loop (constant-rate) load: request i is due at
// start + i/rate whatever happened to the ones before it, and its latency
// is measured from that due time, not from when it was actually sent. A
// slow response therefore delays the requests queued behind it and they
// are charged for the wait, as real callers arriving on their own
// schedule would be; a closed-loop generator such as wrk sends less while
// the target stalls and hides that (coordinated omission).
//
// The schedule is a periodic timerfd: Go's own timers wake up to a
// millisecond late on Linux (the netpoller's epoll timeout has millisecond
// resolution), which would dwarf a loopback round trip, whereas a timerfd
// expiry wakes the netpoller at once. A dispatcher hands each due request
// to a pool of keep-alive connections, one worker each; when every worker
// is busy the request waits, and the wait is part of its latency. A
// connection that fails is redialed for the next request.
type rateLoad struct {
	addr    string
	path    string
	rate    int           // requests per second
	n       int           // requests in all
	conns   int           // pool size: the most requests in flight at once
	timeout time.Duration // per request, from its due time to the end of the response
}

// rateResult is what one rateLoad measured.
type rateResult struct {
	latencies []time.Duration // of the successful requests, sorted
	lags      []time.Duration // due time → write, all requests, sorted
	errors    map[string]int
	sent      int
	elapsed   time.Duration // first due time → last response
}

// rateWorker's fields are owned by its goroutine; the results are merged
// once every worker has returned.
type rateWorker struct {
	l         *rateLoad
	c         net.Conn
	br        *bufio.Reader
	req       []byte
	latencies []time.Duration
	lags      []time.Duration
	errors    map[string]int
}

// run sends l.n requests at l.rate over l.conns connections. It stops
// early if ctx ends; requests not yet due then are not sent.
func (l *rateLoad) run(ctx context.Context) (*rateResult, error) {
	workers := make([]*rateWorker, l.conns)
	defer func() {
		for _, w := range workers {
			if w != nil && w.c != nil {
				w.c.Close()
			}
		}
	}()
	for i := range workers {
		w := &rateWorker{l: l, errors: map[string]int{},
			req: fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: suite-rate\r\n\r\n", l.path)}
		// Dial the pool before the clock starts, so the first requests
		// do not pay for connection setup.
		if err := w.dial(); err != nil {
			return nil, fmt.Errorf("dial %s: %w", l.addr, err)
		}
		workers[i] = w
	}
	interval := time.Second / time.Duration(l.rate)
	tick, start, err := newTicker(interval, 20*time.Millisecond)
	if err != nil {
		return nil, err
	}
	defer tick.Close()

	// Unbuffered: a due request waits here until a worker is free.
	jobs := make(chan time.Time)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() { w.serve(jobs) })
	}
	err = dispatch(ctx, tick, jobs, start, interval, l.n, l.timeout)
	close(jobs)
	wg.Wait()
	if err != nil {
		return nil, err
	}

	r := &rateResult{errors: map[string]int{}, elapsed: time.Since(start)}
	for _, w := range workers {
		r.latencies = append(r.latencies, w.latencies...)
		r.lags = append(r.lags, w.lags...)
		for k, v := range w.errors {
			r.errors[k] += v
		}
	}
	r.sent = len(r.lags)
	slices.Sort(r.latencies)
	slices.Sort(r.lags)
	return r, nil
}

// dispatch sends the due time of each of n requests to jobs as the ticker
// expires, until n were sent or ctx ends (not an error: what was sent is
// measured).
func dispatch(ctx context.Context, tick *os.File, jobs chan<- time.Time, start time.Time, interval time.Duration, n int, timeout time.Duration) error {
	var buf [8]byte
	for i := 0; i < n; {
		// The ticker expires every interval; a read that waits longer
		// than the request timeout means something is wrong.
		tick.SetReadDeadline(time.Now().Add(interval + timeout))
		if _, err := io.ReadFull(tick, buf[:]); err != nil {
			return fmt.Errorf("timerfd: %w", err)
		}
		// The number of expiries since the last read: more than one when
		// the dispatcher was held up, by busy workers or the scheduler.
		k := binary.NativeEndian.Uint64(buf[:])
		for ; k > 0 && i < n; k-- {
			select {
			case jobs <- start.Add(time.Duration(i) * interval):
				i++
			case <-ctx.Done():
				return nil
			}
		}
	}
	return nil
}

// newTicker is a non-blocking periodic CLOCK_MONOTONIC timerfd that first
// expires after first and then every interval, registered with Go's
// netpoller; start is its first expiry on Go's monotonic clock (which is
// CLOCK_MONOTONIC too), to a syscall's duration.
func newTicker(interval, first time.Duration) (*os.File, time.Time, error) {
	const clockMonotonic = 1
	fd, _, errno := syscall.Syscall(syscall.SYS_TIMERFD_CREATE, clockMonotonic, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if errno != 0 {
		return nil, time.Time{}, fmt.Errorf("timerfd_create: %w", errno)
	}
	f := os.NewFile(fd, "timerfd")
	spec := struct{ interval, value syscall.Timespec }{
		syscall.NsecToTimespec(int64(interval)), syscall.NsecToTimespec(int64(first))}
	start := time.Now().Add(first)
	if _, _, errno := syscall.Syscall6(syscall.SYS_TIMERFD_SETTIME, fd, 0, uintptr(unsafe.Pointer(&spec)), 0, 0, 0); errno != 0 {
		f.Close()
		return nil, time.Time{}, fmt.Errorf("timerfd_settime: %w", errno)
	}
	return f, start, nil
}

// serve sends one request per due time received until jobs is closed.
func (w *rateWorker) serve(jobs <-chan time.Time) {
	for due := range jobs {
		w.lags = append(w.lags, time.Since(due))
		if err := w.do(due); err != nil {
			w.errors[errKind(err)]++
			if w.c != nil {
				w.c.Close()
				w.c = nil
			}
			continue
		}
		w.latencies = append(w.latencies, time.Since(due))
	}
}

func (w *rateWorker) dial() error {
	c, err := net.DialTimeout("tcp", w.l.addr, w.l.timeout)
	if err != nil {
		return err
	}
	w.c, w.br = c, bufio.NewReaderSize(c, 64<<10)
	return nil
}

// do sends one request and reads its whole response.
func (w *rateWorker) do(due time.Time) error {
	if w.c == nil {
		if err := w.dial(); err != nil {
			return err
		}
	}
	w.c.SetDeadline(due.Add(w.l.timeout))
	if _, err := w.c.Write(w.req); err != nil {
		return err
	}
	resp, err := http.ReadResponse(w.br, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	if resp.Close {
		return errConnClose
	}
	return nil
}

// errConnClose marks a response that closed its connection: counted as
// an error, since every target is meant to keep callers alive.
var errConnClose = errors.New("response closed the connection")

// errKind is a short name for a load error, for the report.
func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	}
	return err.Error()
}

// quantile is the q-quantile of sorted ds (nearest rank), 0 if empty.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(q*float64(len(ds))+0.5) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}
