package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// socket is one bound listening socket whose accepted connections go to
// whichever http.Server is current on it. A reload that changes a
// listener's settings (timeouts, header limit, h2c) builds a new
// http.Server and points the socket at it; the old server drains the
// connections it already has. The socket itself stays bound throughout, so
// callers never see a refused connection or a changed port.
//
// Every connection the accept loop accepts is handed to exactly one
// server's Serve, which tracks it before Serve can return (net/http sets
// StateNew first), so http.Server.Shutdown drains it and Close closes it. A
// connection is closed unserved only when no server is left to take it:
// the socket's last server has stopped, which happens only when the
// proxy.Server closes.
type socket struct {
	ln      net.Listener // callerListener for proxy listeners; owned by run
	log     *slog.Logger
	closing chan struct{} // closed by Close
	done    chan struct{} // closed when run returns
	once    sync.Once

	mu  sync.Mutex // guards cur; taken after Server.mu, never before
	cur *handoff   // the listener of the current server; never nil
}

// newSocket wraps a bound ln. Nothing is accepted until run is started;
// until then callers wait in the kernel's backlog.
func newSocket(ln net.Listener, log *slog.Logger) *socket {
	s := &socket{ln: ln, log: log, closing: make(chan struct{}), done: make(chan struct{})}
	s.cur = newHandoff(s)
	return s
}

// Addr returns the socket's bound address.
func (s *socket) Addr() net.Addr { return s.ln.Addr() }

// current returns the listener the current server serves.
func (s *socket) current() *handoff {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// replace makes a fresh handoff current and returns it, for the server that
// takes over. Connections accepted from now on go to it. The previous
// handoff keeps working until its server closes it, and a connection the
// accept loop was handing to it then goes to the new one.
func (s *socket) replace() *handoff {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = newHandoff(s)
	return s.cur
}

// Close closes the bound socket: no new connection is accepted. run then
// hands over the connection it holds, if any, and returns. Close does not
// touch the servers; it is idempotent.
func (s *socket) Close() error {
	var err error
	s.once.Do(func() {
		close(s.closing)
		err = s.ln.Close()
	})
	return err
}

// run is the socket's accept loop. It returns when the socket is closed.
func (s *socket) run() {
	defer close(s.done)
	var delay time.Duration // backoff after an accept error, as net/http's Serve does
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off and retry, so the
			// listener recovers when the pressure goes.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Error("accept failed; retrying", "address", s.ln.Addr().String(), "error", err, "retry_in", delay)
			select {
			case <-time.After(delay):
				continue
			case <-s.closing:
				return
			}
		}
		delay = 0
		s.deliver(c)
	}
}

// deliver hands c to the current server's Serve. The channel is unbuffered,
// so the send completes only when Serve has taken c; if the server stops
// first, c goes to the server that replaced it, or is closed when there is
// none.
func (s *socket) deliver(c net.Conn) {
	for {
		h := s.current()
		select {
		case h.conns <- c:
			return
		case <-h.closed:
			if s.current() == h {
				c.Close()
				return
			}
		}
	}
}

// handoff is the net.Listener one http.Server serves on a socket. Closing
// it, as http.Server.Shutdown and Close do, ends that server's share of the
// socket without closing the socket.
type handoff struct {
	sock   *socket
	conns  chan net.Conn // unbuffered: see deliver
	closed chan struct{}
	once   sync.Once
}

func newHandoff(s *socket) *handoff {
	return &handoff{sock: s, conns: make(chan net.Conn), closed: make(chan struct{})}
}

// Accept returns the next connection the socket accepted for this server.
func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.closed:
		return nil, net.ErrClosed
	}
}

// Close stops this server from taking connections; it is idempotent.
func (h *handoff) Close() error {
	h.once.Do(func() { close(h.closed) })
	return nil
}

// Addr returns the socket's address.
func (h *handoff) Addr() net.Addr { return h.sock.Addr() }

// connSet follows one http.Server's connections, so that a server being
// retired is not Shutdown while it holds an HTTP/1 connection that may
// still read a request. net/http's HTTP/1 loop drops a request it reads
// after Shutdown began (conn.serve: "if c.server.shuttingDown() { return }"):
// on a connection handed over just before a reload, whose first request
// arrives a moment later, the caller would get EOF, and no client retries on
// a fresh connection. HTTP/2 connections are safe to Shutdown: they get
// GOAWAY, finish their streams, and clients retry streams the server did not
// take.
//
// A connection counts as HTTP/2 once a request on it reached the handler
// with ProtoMajor 2 (net/http's ConnState reports h2c and HTTP/1 on the same
// net.Conn, so the hook cannot tell them apart). An HTTP/2 connection that
// never carried a request counts as HTTP/1: a drain then waits for it to
// close, or for its deadline.
type connSet struct {
	mu     sync.Mutex
	open   map[net.Conn]*connEntry // by connKey
	h1     int                     // open connections not known to speak HTTP/2
	h1Gone chan struct{}           // closed when h1 drops to 0; made by waitH1Gone
	// closing is set when the server drains: HTTP/1 responses then carry
	// Connection: close.
	closing atomic.Bool
}

type connEntry struct {
	set *connSet
	key net.Conn
	h2  atomic.Bool // set under connSet.mu; read without it to skip the lock
}

type connEntryKey struct{}

func newConnSet() *connSet { return &connSet{open: map[net.Conn]*connEntry{}} }

// connContext is (part of) the http.Server's ConnContext hook: it
// registers c. net/http calls it for every connection Serve accepts, before
// Serve can return.
func (cs *connSet) connContext(ctx context.Context, c net.Conn) context.Context {
	e := &connEntry{set: cs, key: connKey(c)}
	cs.mu.Lock()
	cs.open[e.key] = e
	cs.h1++
	cs.mu.Unlock()
	return context.WithValue(ctx, connEntryKey{}, e)
}

// lastRequest reports whether r, an HTTP/1 request, is its connection's
// last: its server is draining, so the response says Connection: close.
func lastRequest(r *http.Request) bool {
	e, _ := r.Context().Value(connEntryKey{}).(*connEntry)
	return e != nil && e.set.closing.Load()
}

// stateHook is the http.Server's ConnState hook: it forgets connections
// that closed or were hijacked (tunnels are tracked by the Handler).
func (cs *connSet) stateHook(c net.Conn, st http.ConnState) {
	if st != http.StateClosed && st != http.StateHijacked {
		return
	}
	k := connKey(c)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if e := cs.open[k]; e != nil {
		delete(cs.open, k)
		if !e.h2.Load() {
			cs.h1Locked(-1)
		}
	}
}

// sawRequest notes the protocol of r's connection; the server calls it
// for every request before the Handler.
func (cs *connSet) sawRequest(r *http.Request) {
	if r.ProtoMajor != 2 {
		return
	}
	e, _ := r.Context().Value(connEntryKey{}).(*connEntry)
	if e == nil || e.h2.Load() {
		return
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	// An HTTP/2 handler may start after its connection closed.
	if cs.open[e.key] == e && !e.h2.Load() {
		e.h2.Store(true)
		cs.h1Locked(-1)
	}
}

func (cs *connSet) h1Locked(delta int) {
	cs.h1 += delta
	if cs.h1 == 0 && cs.h1Gone != nil {
		close(cs.h1Gone)
		cs.h1Gone = nil
	}
}

// connKey returns the accepted connection c stands for: over TLS, net/http
// reports connections by their *tls.Conn.
func connKey(c net.Conn) net.Conn {
	if tc, ok := c.(*tls.Conn); ok {
		return tc.NetConn()
	}
	return c
}

// waitH1Gone waits until every open connection speaks HTTP/2, or none is
// open, or ctx is done.
func (cs *connSet) waitH1Gone(ctx context.Context) error {
	cs.mu.Lock()
	if cs.h1 == 0 {
		cs.mu.Unlock()
		return nil
	}
	if cs.h1Gone == nil {
		cs.h1Gone = make(chan struct{})
	}
	ch := cs.h1Gone
	cs.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
