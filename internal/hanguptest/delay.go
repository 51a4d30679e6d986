package hanguptest

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// NewDelayLink starts a TCP relay on 127.0.0.1 in front of target that
// delays everything it carries by oneWay in each direction: bytes, a FIN and
// a reset. It gives a loopback test the window a real network has between a
// server closing an idle connection and the client learning of it: a request
// sent in that window reaches a closed socket and is answered with a reset.
// The server behind it is taken to close connections fully (as node does),
// so bytes arriving after its FIN are answered with a reset. It returns the
// relay's address; t.Cleanup stops it and closes every connection.
func NewDelayLink(t testing.TB, target string, oneWay time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("hanguptest: delay link listen: %v", err)
	}
	d := &delayLink{target: target, oneWay: oneWay, ln: ln, conns: map[net.Conn]struct{}{}}
	d.wg.Go(d.serve)
	t.Cleanup(d.close)
	return ln.Addr().String()
}

type delayLink struct {
	target string
	oneWay time.Duration
	ln     net.Listener
	wg     sync.WaitGroup

	mu     sync.Mutex // guards conns and closed
	conns  map[net.Conn]struct{}
	closed bool
}

func (d *delayLink) serve() {
	for {
		down, err := d.ln.Accept()
		if err != nil {
			return
		}
		if !d.track(down) {
			return
		}
		// Dial in the connection's own goroutine: a slow dial must not
		// hold up the accept loop (fresh connections would wait in the
		// backlog, and a caller time out before it is served).
		d.wg.Go(func() { d.link(down.(*net.TCPConn)) })
	}
}

// link dials the target for down and relays between them.
func (d *delayLink) link(down *net.TCPConn) {
	up, err := net.Dial("tcp", d.target)
	if err != nil {
		reset(down)
		return
	}
	if !d.track(up) {
		return
	}
	d.relay(down, up.(*net.TCPConn))
}

func (d *delayLink) track(cs ...net.Conn) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		d.conns[c] = struct{}{}
	}
	return true
}

func (d *delayLink) close() {
	d.ln.Close()
	d.mu.Lock()
	d.closed = true
	for c := range d.conns {
		c.Close()
	}
	d.mu.Unlock()
	d.wg.Wait()
}

// segment is one thing in flight on a delayed direction.
type segment struct {
	at   time.Time // when it arrives
	data []byte    // nil for the end of the stream
	rst  bool      // the stream ended with a reset rather than a FIN
}

// relay carries one connection both ways.
func (d *delayLink) relay(down, up *net.TCPConn) {
	var upClosed atomic.Bool // the server sent its FIN: it has closed the socket
	var wg sync.WaitGroup
	toUp := make(chan segment, 1024)
	toDown := make(chan segment, 1024)
	wg.Go(func() { d.read(down, toUp, func() {}) })
	wg.Go(func() { d.read(up, toDown, func() { upClosed.Store(true) }) })
	wg.Go(func() { d.deliver(toDown, down) })
	wg.Go(func() {
		defer drain(toUp)
		for s := range toUp {
			time.Sleep(time.Until(s.at))
			switch {
			case s.data == nil && s.rst:
				reset(up)
				return
			case s.data == nil:
				up.CloseWrite()
				return
			}
			if upClosed.Load() {
				// The request crossed the server's FIN: the server's
				// reset takes another oneWay to come back.
				time.Sleep(d.oneWay)
				reset(down)
				up.Close()
				return
			}
			if _, err := up.Write(s.data); err != nil {
				time.Sleep(d.oneWay)
				reset(down)
				return
			}
		}
	})
	wg.Wait()
	down.Close()
	up.Close()
}

// read queues what arrives on c for delivery oneWay later; ended runs
// when c's stream ends.
func (d *delayLink) read(c *net.TCPConn, out chan<- segment, ended func()) {
	defer close(out)
	for {
		buf := make([]byte, 32<<10)
		n, err := c.Read(buf)
		if n > 0 {
			out <- segment{at: time.Now().Add(d.oneWay), data: buf[:n]}
		}
		if err != nil {
			ended()
			out <- segment{at: time.Now().Add(d.oneWay), rst: !errors.Is(err, io.EOF)}
			return
		}
	}
}

// deliver writes segments to c at their arrival times; at the end of the
// stream it forwards the FIN or the reset.
func (d *delayLink) deliver(in <-chan segment, c *net.TCPConn) {
	defer drain(in)
	for s := range in {
		time.Sleep(time.Until(s.at))
		if s.data == nil {
			if s.rst {
				reset(c)
			} else {
				c.CloseWrite()
			}
			return
		}
		if _, err := c.Write(s.data); err != nil {
			return
		}
	}
}

// drain discards what is left in ch until its reader closes it, so the
// reader never blocks on a consumer that has stopped.
func drain(ch <-chan segment) {
	for range ch {
	}
}
