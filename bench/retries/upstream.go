package main

import (
	"bufio"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// okResponse is what the upstream answers when it does not reset.
const okResponse = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"

// upstream is a raw TCP HTTP/1.1 origin behind two listeners (two
// endpoints) that share one ledger. For every request it reads the head
// and the whole body, records the X-Req-Id, then either resets the
// connection (SetLinger(0)+Close, before any response byte) or answers 200.
//
// Whether an arrival is reset is a pure function of (seed, X-Req-Id, how
// many times this id arrived before), so a run is reproducible whatever
// the scheduling, and each attempt of a request, first or replayed, is
// reset with the same probability rate, independently of the others.
type upstream struct {
	seed uint64
	rate float64
	lns  [2]net.Listener
	wg   sync.WaitGroup

	mu     sync.Mutex          // guards following
	seen   map[string]int      // X-Req-Id → arrivals
	conns  map[net.Conn]string // open connections → endpoint address, closed by close
	closed bool
}

func newUpstream(seed uint64, rate float64) (*upstream, error) {
	u := &upstream{seed: seed, rate: rate, seen: make(map[string]int), conns: make(map[net.Conn]string)}
	for i := range u.lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			u.close()
			return nil, err
		}
		u.lns[i] = ln
	}
	for _, ln := range u.lns {
		u.wg.Add(1)
		go u.accept(ln)
	}
	return u, nil
}

// addrs are the two endpoints' host:port.
func (u *upstream) addrs() []string {
	return []string{u.lns[0].Addr().String(), u.lns[1].Addr().String()}
}

// close stops both listeners, closes every open connection and waits for
// the connection goroutines.
func (u *upstream) close() {
	for _, ln := range u.lns {
		if ln != nil {
			ln.Close()
		}
	}
	u.mu.Lock()
	u.closed = true
	for c := range u.conns {
		c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

// ledger returns the arrivals of every id that starts with prefix.
func (u *upstream) ledger(prefix string) map[string]int {
	u.mu.Lock()
	defer u.mu.Unlock()
	m := make(map[string]int)
	for id, n := range u.seen {
		if strings.HasPrefix(id, prefix) {
			m[id] = n
		}
	}
	return m
}

func (u *upstream) accept(ln net.Listener) {
	defer u.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		u.mu.Lock()
		if u.closed {
			u.mu.Unlock()
			c.Close()
			return
		}
		u.conns[c] = ln.Addr().String()
		u.wg.Add(1)
		u.mu.Unlock()
		go u.serveConn(c)
	}
}

// serveConn answers requests on c until the peer closes it, a request
// asks to close, or the upstream resets it.
func (u *upstream) serveConn(c net.Conn) {
	defer u.wg.Done()
	defer func() {
		u.mu.Lock()
		delete(u.conns, c)
		u.mu.Unlock()
		c.Close()
	}()
	br := bufio.NewReader(c)
	for {
		// An idle keep-alive connection may wait this long for its next
		// request: longer than any run, so only the planned resets
		// close connections under the proxies.
		c.SetDeadline(time.Now().Add(2 * time.Minute))
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, err = io.Copy(io.Discard, req.Body)
		req.Body.Close()
		if err != nil {
			return
		}
		if u.arrive(req.Header.Get("X-Req-Id")) {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0) // Close sends RST, not FIN
			}
			return
		}
		if _, err := io.WriteString(c, okResponse); err != nil || req.Close {
			return
		}
	}
}

// arrive records one arrival of id and reports whether to reset it.
func (u *upstream) arrive(id string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.seen[id]++
	return u.shouldReset(id, u.seen[id])
}

// shouldReset reports whether the n-th arrival of id is reset: a draw
// seeded by (seed, id, n), below rate.
func (u *upstream) shouldReset(id string, n int) bool {
	h := fnv.New64a()
	io.WriteString(h, id)
	r := rand.New(rand.NewPCG(u.seed, h.Sum64()^uint64(n)))
	return r.Float64() < u.rate
}
