package client_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-proxy/switchboard/client"
	"github.com/switchboard-proxy/switchboard/internal/hanguptest"
)

// script is a loopback upstream (a hanguptest.Upstream) that answers the
// i-th request to arrive, over all its connections, with steps[i], or with
// the last step once they run out, and records every arrival.
type script struct {
	*hanguptest.Upstream
	steps []step

	mu       sync.Mutex // guards arrivals
	arrivals []arrival
}

// step answers one request on c; it reports whether c may carry another.
type step func(c *hanguptest.ServerConn) bool

// arrival is one request the upstream read in full.
type arrival struct {
	at     time.Time
	method string
	key    string // Idempotency-Key
	body   int64  // body bytes read
}

// newScript starts a script upstream on loopback, stopped in t.Cleanup.
func newScript(t *testing.T, steps ...step) *script {
	t.Helper()
	s := &script{steps: steps}
	s.Upstream = hanguptest.NewUpstream(t, s.serve)
	return s
}

// serve runs on each accepted connection.
func (s *script) serve(c *hanguptest.ServerConn) {
	for {
		req, err := c.ReadRequest()
		if err != nil {
			return
		}
		n, err := io.Copy(io.Discard, req.Body)
		if err != nil {
			return
		}
		if !s.stepFor(req, n)(c) {
			return
		}
	}
}

func (s *script) stepFor(req *http.Request, n int64) step {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.arrivals = append(s.arrivals, arrival{at: time.Now(), method: req.Method, key: req.Header.Get("Idempotency-Key"), body: n})
	return s.steps[min(len(s.arrivals), len(s.steps))-1]
}

// seen returns the requests that arrived so far.
func (s *script) seen() []arrival {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]arrival(nil), s.arrivals...)
}

// The steps.

// reset hangs up with an RST (SO_LINGER 0) before any response byte.
func reset(c *hanguptest.ServerConn) bool { c.Reset(); return false }

// fin hangs up with an orderly close before any response byte.
func fin(c *hanguptest.ServerConn) bool { c.CloseFIN(); return false }

// stall sends nothing and waits for the caller to hang up.
func stall(c *hanguptest.ServerConn) bool {
	_, _, _ = c.WaitPeerClose(hanguptest.Timeout)
	return false
}

// respond answers with status, the given extra header lines ("Name: value")
// and body.
func respond(status int, body string, header ...string) step {
	head := fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Length: %d\r\n", status, http.StatusText(status), len(body))
	for _, h := range header {
		head += h + "\r\n"
	}
	resp := head + "\r\n" + body
	return func(c *hanguptest.ServerConn) bool { return c.Write(resp) == nil }
}

// refusedAddr returns a loopback address where a dial is refused
// (ECONNREFUSED): a socket is bound to the port but does not listen, and
// stays bound until t ends, so no other process on the machine can start
// listening there in the meantime (as it could after listen-then-close).
func refusedAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("bind: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("getsockname: %v", err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
}

// newTransport returns a Transport whose idle connections are closed in
// t.Cleanup, and a channel of its attempts (room for 16: more than any test
// makes; a full channel drops the rest).
func newTransport(t *testing.T, opts client.Options) (*client.Transport, <-chan client.AttemptInfo) {
	t.Helper()
	attempts := make(chan client.AttemptInfo, 16)
	hook := opts.OnAttempt
	opts.OnAttempt = func(a client.AttemptInfo) {
		select {
		case attempts <- a:
		default:
		}
		if hook != nil {
			hook(a)
		}
	}
	tr := client.NewTransport(opts)
	t.Cleanup(tr.CloseIdleConnections)
	return tr, attempts
}

// collect returns the attempts reported so far.
func collect(ch <-chan client.AttemptInfo) []client.AttemptInfo {
	var out []client.AttemptInfo
	for {
		select {
		case a := <-ch:
			out = append(out, a)
		default:
			return out
		}
	}
}
