package hanguptest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// connsBuffer is the capacity of Upstream.Conns. It is larger than 1 so that
// a test that never reads Conns, or reads it late, does not stall the accept
// loop: the loop never blocks on it, and a connection accepted while the
// buffer is full is not sent (Accepted and Records still count it). 64 is
// more connections than any single test here opens.
const connsBuffer = 64

// Upstream is a raw TCP HTTP/1.1 server on 127.0.0.1 for exact bytes and
// exact hang-ups: each accepted connection is handed to the handle function
// given to NewUpstream in its own goroutine, and closed when it returns.
type Upstream struct {
	Addr string // "127.0.0.1:port"
	URL  string // "http://127.0.0.1:port"

	ln     net.Listener
	handle func(*ServerConn)
	conns  chan *ServerConn // see connsBuffer
	done   chan struct{}    // closed when the Upstream shuts down
	wg     sync.WaitGroup   // the accept loop and every handler

	mu       sync.Mutex // guards following
	closed   bool
	accepted []*ServerConn // in accept order; never shrinks
}

// NewUpstream starts an Upstream that runs handle for every accepted
// connection. The conn is closed when handle returns, so handle may simply
// return to close it. In t.Cleanup the Upstream closes its listener and all
// connections and waits for the handlers to return; a handler must
// therefore return once its conn is closed.
func NewUpstream(t testing.TB, handle func(c *ServerConn)) *Upstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("hanguptest: listen: %v", err)
	}
	u := &Upstream{
		Addr:   ln.Addr().String(),
		URL:    "http://" + ln.Addr().String(),
		ln:     ln,
		handle: handle,
		conns:  make(chan *ServerConn, connsBuffer),
		done:   make(chan struct{}),
	}
	u.wg.Go(u.serve)
	t.Cleanup(func() { u.close(t) })
	return u
}

// Conns returns a channel on which every accepted connection is also sent,
// so a test can wait for "the proxy connected". It holds 64 connections so
// the accept loop never waits for a test that reads it late or not at all;
// a connection accepted while it is full is not sent (Accepted and Records
// still count it). It is never closed.
func (u *Upstream) Conns() <-chan *ServerConn { return u.conns }

// Accepted returns how many connections the Upstream has accepted.
func (u *Upstream) Accepted() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.accepted)
}

// Records returns a snapshot of what was recorded on every accepted
// connection so far, in accept order. A record may still change while its
// handler runs; wait for ServerConn.Done for the final one.
func (u *Upstream) Records() []ConnRecord {
	u.mu.Lock()
	conns := append([]*ServerConn(nil), u.accepted...)
	u.mu.Unlock()
	recs := make([]ConnRecord, len(conns))
	for i, c := range conns {
		recs[i] = c.Record()
	}
	return recs
}

// serve is the accept loop; it returns when the listener is closed.
func (u *Upstream) serve() {
	for {
		nc, err := u.ln.Accept()
		if err != nil {
			return
		}
		c := newServerConn(nc, u.done)
		if !u.track(c) {
			_ = nc.Close()
			return
		}
		select {
		case u.conns <- c:
		default: // see connsBuffer
		}
		u.wg.Go(func() { u.handleConn(c) })
	}
}

// track records c as accepted and reports whether the Upstream is still
// open; a conn accepted while closing must not start a handler after close
// has stopped waiting for new ones.
func (u *Upstream) track(c *ServerConn) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return false
	}
	u.accepted = append(u.accepted, c)
	return true
}

func (u *Upstream) handleConn(c *ServerConn) {
	defer close(c.done)
	defer c.Conn.Close()
	u.handle(c)
}

func (u *Upstream) close(t testing.TB) {
	u.mu.Lock()
	u.closed = true
	conns := append([]*ServerConn(nil), u.accepted...)
	u.mu.Unlock()
	close(u.done)
	_ = u.ln.Close()
	for _, c := range conns {
		_ = c.Conn.Close()
	}
	waited := make(chan struct{})
	go func() { u.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(Timeout):
		t.Errorf("hanguptest: Upstream %s handlers still running %v after close", u.Addr, Timeout)
	}
}

// ServerConn is one connection accepted by an Upstream. Record, Done and
// FirstRequest are safe for any goroutine; the other methods are for the
// handler goroutine only.
type ServerConn struct {
	net.Conn
	// R buffers reads from Conn; read through it, never from Conn directly.
	R *bufio.Reader

	stop      <-chan struct{} // closed when the Upstream shuts down
	done      chan struct{}   // closed when the handler has returned
	firstRead chan struct{}   // closed by markFirstRead
	firstOnce sync.Once

	mu  sync.Mutex // guards rec
	rec ConnRecord
}

// ConnRecord is what an Upstream learned about one connection. Zero fields
// were not observed.
type ConnRecord struct {
	Accepted    time.Time // when the connection was accepted
	RequestRead time.Time // when the head of the latest request was read
	Requests    int       // request heads read
	BodyBytes   int64     // request body bytes read, over all requests
	PeerClosed  time.Time // when a read failed because the peer closed
	PeerClose   PeerClose // how it closed, if PeerClosed is set
	Writes      int       // body writes that succeeded (StreamUntilClosed)
	WriteFailed time.Time // when a write first failed (StreamUntilClosed)
	Err         error     // the first unexpected error a canned handler met
}

func newServerConn(nc net.Conn, stop <-chan struct{}) *ServerConn {
	return &ServerConn{
		Conn:      nc,
		R:         bufio.NewReader(nc),
		stop:      stop,
		done:      make(chan struct{}),
		firstRead: make(chan struct{}),
		rec:       ConnRecord{Accepted: time.Now()},
	}
}

// Record returns a snapshot of what was recorded on c. It is safe to call
// from any goroutine.
func (c *ServerConn) Record() ConnRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rec
}

// Done returns a channel closed once the handler has returned and c is
// closed; Record is final from then on.
func (c *ServerConn) Done() <-chan struct{} { return c.done }

// FirstRequest returns a channel closed once the first request on c has
// been read in full: its head by ReadRequest and its body to the end (the
// canned handlers always read it). A test waits for it before hanging up
// the caller, to be sure the hang-up happens after the request arrived.
func (c *ServerConn) FirstRequest() <-chan struct{} { return c.firstRead }

func (c *ServerConn) markFirstRead() { c.firstOnce.Do(func() { close(c.firstRead) }) }

func (c *ServerConn) update(f func(r *ConnRecord)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.rec)
}

// fail records err as the handler's unexpected error unless one is already
// recorded.
func (c *ServerConn) fail(err error) {
	c.update(func(r *ConnRecord) {
		if r.Err == nil {
			r.Err = err
		}
	})
}

// ReadRequest reads the next request head from c with a deadline of Timeout
// and records it. The body is readable from req.Body, under the same
// deadline; bytes read from it are counted in ConnRecord.BodyBytes. If the
// peer closed the connection instead of sending a request, ReadRequest
// records the close and returns its error.
func (c *ServerConn) ReadRequest() (*http.Request, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(Timeout)); err != nil {
		return nil, fmt.Errorf("set read deadline: %w", err)
	}
	req, err := http.ReadRequest(c.R)
	at := time.Now()
	if err != nil {
		c.recordPeerClose(at, classifyRead(err))
		return nil, err
	}
	c.update(func(r *ConnRecord) {
		r.RequestRead = at
		r.Requests++
	})
	if req.Body == http.NoBody {
		c.markFirstRead()
	} else {
		req.Body = &countingBody{ReadCloser: req.Body, c: c}
	}
	return req, nil
}

// recordPeerClose records the first time a read found the peer hung up; pc
// 0 (not a hang-up) is ignored.
func (c *ServerConn) recordPeerClose(at time.Time, pc PeerClose) {
	if pc == 0 {
		return
	}
	c.update(func(r *ConnRecord) {
		if r.PeerClose == 0 {
			r.PeerClosed, r.PeerClose = at, pc
		}
	})
}

// countingBody counts request body bytes into the conn's record.
type countingBody struct {
	io.ReadCloser
	c *ServerConn
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.c.update(func(r *ConnRecord) { r.BodyBytes += int64(n) })
	}
	switch {
	case err == io.EOF: // the body's normal end
		b.c.markFirstRead()
	case err != nil:
		b.c.recordPeerClose(time.Now(), classifyRead(err))
	}
	return n, err
}

// Write writes s to the connection as raw bytes, with a deadline of Timeout.
// It shadows net.Conn's Write; use c.Conn.Write for an io.Writer.
func (c *ServerConn) Write(s string) error {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(Timeout)); err != nil {
		return fmt.Errorf("set write deadline: %w", err)
	}
	_, err := io.WriteString(c.Conn, s)
	return err
}

// CloseFIN half-closes the connection for writing (the peer reads EOF) and
// then closes it. Bytes the peer sent that are still unread turn the close
// into an RST, so read the whole request, body included, first.
func (c *ServerConn) CloseFIN() { closeFIN(c.Conn) }

// Reset closes the connection with SO_LINGER 0, so the kernel sends an RST
// and the peer's next read or write fails with ECONNRESET (or EPIPE).
func (c *ServerConn) Reset() { reset(c.Conn) }

// WaitPeerClose reads and discards until the peer closes the connection or d
// elapses. It returns the time the read failed and how the peer closed it
// (PeerFIN for io.EOF, PeerRST for ECONNRESET), and records both; on timeout
// or any other failure it returns an error instead.
func (c *ServerConn) WaitPeerClose(d time.Duration) (time.Time, PeerClose, error) {
	_, at, pc, err := readUntilClosed(c.Conn, c.R, d, false)
	if err != nil {
		return at, 0, err
	}
	c.recordPeerClose(at, pc)
	return at, pc, nil
}
