package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The hang-up measurement is bench/abortlat's await_headers phase, run
// against every proxy: a caller sends GET /stall/ID; the stalling upstream
// (in this process, so one monotonic clock) reads the request head and
// never answers; the caller then closes its connection, and the figure is
// the time from the close call until the upstream's Read on its own
// connection returns, that is until the proxy let go of the upstream.

// hangupTimeout is how long a trial waits for the upstream to see the end;
// a proxy that holds on longer is counted as not propagating.
const hangupTimeout = 500 * time.Millisecond

// stallUpstream is a raw TCP peer that reads one request head per
// connection and then only waits for the connection to end.
type stallUpstream struct {
	ln     net.Listener
	trials sync.Map // id (string) → *hangupTrial
	wg     sync.WaitGroup
}

type hangupTrial struct {
	arrived chan struct{} // closed once the upstream read the request head
	ended   chan time.Time
}

func newStallUpstream() (*stallUpstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u := &stallUpstream{ln: ln}
	u.wg.Go(u.accept)
	return u, nil
}

func (u *stallUpstream) addr() string { return u.ln.Addr().String() }

func (u *stallUpstream) close() {
	u.ln.Close()
	u.wg.Wait()
}

func (u *stallUpstream) accept() {
	for {
		c, err := u.ln.Accept()
		if err != nil {
			return
		}
		u.wg.Go(func() { u.serve(c) })
	}
}

// serve reads the head, tells the trial, and waits for the end. Every
// read has a deadline, so no goroutine outlives a trial by much.
func (u *stallUpstream) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(hangupTimeout + 2*time.Second))
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return
	}
	v, ok := u.trials.Load(strings.TrimPrefix(req.URL.Path, "/stall/"))
	if !ok {
		return
	}
	t := v.(*hangupTrial)
	close(t.arrived)
	var buf [512]byte
	for {
		if _, err := c.Read(buf[:]); err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.ended <- time.Now()
			}
			return
		}
	}
}

// hangupResult is one round's trials against one target.
type hangupResult struct {
	fin, rst []time.Duration // of the trials that propagated
	held     map[string]int  // kind → trials where the upstream was still held after hangupTimeout
	failed   int             // trials that did not reach the upstream
	firstErr string
}

// measureHangups runs n FIN and n RST hang-ups, alternating, against the
// proxy at addr. It gives up on a kind after 3 trials in a row that did
// not propagate, to bound the time spent on a proxy that never does.
func measureHangups(addr string, u *stallUpstream, n int, prefix string) *hangupResult {
	r := &hangupResult{held: map[string]int{}}
	heldRun := map[string]int{}
	for i := range 2 * n {
		rst := i%2 == 1
		kind := map[bool]string{false: "fin", true: "reset"}[rst]
		if heldRun[kind] >= 3 {
			continue
		}
		d, err := hangupTrialRun(addr, u, fmt.Sprintf("%s-%d", prefix, i), rst)
		switch {
		case errors.Is(err, errHeld):
			r.held[kind]++
			heldRun[kind]++
		case err != nil:
			if r.failed++; r.firstErr == "" {
				r.firstErr = err.Error()
			}
		case rst:
			r.rst, heldRun[kind] = append(r.rst, d), 0
		default:
			r.fin, heldRun[kind] = append(r.fin, d), 0
		}
	}
	return r
}

var errHeld = errors.New("upstream connection still open")

// hangupTrialRun plays one trial: request, wait until the upstream holds
// it, close (FIN: CloseWrite+Close; RST: SetLinger(0)+Close), and time
// until the upstream's read ends.
func hangupTrialRun(addr string, u *stallUpstream, id string, rst bool) (time.Duration, error) {
	t := &hangupTrial{arrived: make(chan struct{}), ended: make(chan time.Time, 1)}
	u.trials.Store(id, t)
	defer u.trials.Delete(id)
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	tc := c.(*net.TCPConn)
	if _, err := io.WriteString(tc, "GET /stall/"+id+" HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: suite-hangup\r\n\r\n"); err != nil {
		tc.Close()
		return 0, err
	}
	select {
	case <-t.arrived:
	case <-time.After(2 * time.Second):
		tc.Close()
		return 0, errors.New("request did not reach the upstream within 2s")
	}
	var start time.Time
	if rst {
		tc.SetLinger(0)
		start = time.Now()
		tc.Close()
	} else {
		start = time.Now()
		tc.CloseWrite()
		tc.Close()
	}
	select {
	case end := <-t.ended:
		return end.Sub(start), nil
	case <-time.After(hangupTimeout):
		return 0, errHeld
	}
}
