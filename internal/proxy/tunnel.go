package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/switchboard-proxy/switchboard/hangup"
	"github.com/switchboard-proxy/switchboard/internal/upstream"
)

// serveUpgrade relays a request to switch protocols (WebSocket and others)
// and, if the upstream agrees, tunnels bytes both ways until both sides
// have closed.
func (ex *exchange) serveUpgrade(t *table) {
	if ex.route.h2Pool {
		ex.outcome = hangup.Outcome{Side: hangup.Proxy, Phase: hangup.SendRequest, Action: hangup.Answered5xx}
		ex.proxyError = "http_upgrade_failed"
		ex.answerError(http.StatusBadGateway, ex.proxyError, "the route's pool speaks only HTTP/2 and cannot carry an Upgrade")
		return
	}
	ex.prepare()
	defer ex.release()
	want := strings.Join(ex.r.Header.Values("Upgrade"), ", ")
	tr := ex.newTry()
	if tr == nil {
		return
	}
	out := tr.request(ex, t, true)
	out.Header.Set("Connection", "Upgrade")
	out.Header.Set("Upgrade", want)
	res := ex.roundTrip(out)
	if res == nil {
		return
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusSwitchingProtocols {
		ex.relay(res) // the upstream declined: an ordinary response
		return
	}
	back, ok := res.Body.(io.ReadWriteCloser)
	if !ok || !strings.EqualFold(res.Header.Get("Upgrade"), firstToken(want)) && !strings.EqualFold(res.Header.Get("Upgrade"), want) {
		ex.closeUpstreamConn()
		ex.outcome = hangup.Outcome{Side: hangup.Upstream, Phase: hangup.AwaitHeaders, Action: hangup.Answered5xx}
		ex.proxyError = "http_upgrade_failed"
		ex.answerError(http.StatusBadGateway, ex.proxyError, "the upstream switched to a protocol the caller did not ask for")
		return
	}
	down, brw, err := http.NewResponseController(ex.w).Hijack()
	if err != nil {
		ex.closeUpstreamConn()
		ex.outcome = hangup.Outcome{Side: hangup.Proxy, Phase: hangup.AwaitHeaders, Action: hangup.Answered5xx, Err: err}
		ex.proxyError = "http_upgrade_failed"
		ex.answerError(http.StatusBadGateway, ex.proxyError, "cannot take over the caller's connection")
		return
	}
	ex.status = http.StatusSwitchingProtocols
	ex.wroteHeader = true
	hdr := make(http.Header, len(res.Header))
	copyHeader(hdr, res.Header)
	hdr.Set("Connection", "Upgrade")
	hdr.Set("Upgrade", res.Header.Get("Upgrade"))
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	hdr.Write(brw)
	brw.WriteString("\r\n")
	if err := brw.Flush(); err != nil {
		down.Close()
		back.Close()
		ex.outcome = hangup.Outcome{Side: hangup.Caller, Phase: hangup.Tunnel, Kind: hangup.Classify(err), Action: hangup.AbortedUpstream, Err: err}
		return
	}
	ex.try.setPhase(hangup.Tunnel)
	ex.tunnel(down, brw.Reader, back)
}

func firstToken(s string) string {
	tok, _, _ := strings.Cut(s, ",")
	return strings.TrimSpace(tok)
}

// tunnelEnd is how one direction of a tunnel ended.
type tunnelEnd struct {
	from hangup.Side // the side whose read ended the copy
	kind hangup.Kind
	err  error
	seq  int32 // the order in which the directions ended, from 1
}

// tunnel copies bytes both ways between the caller's hijacked connection and
// the upstream's, forwarding a half-close (FIN) as a half-close and a reset
// as a reset, and closes both when both directions are done or either
// fails.
func (ex *exchange) tunnel(down net.Conn, downBuf *bufio.Reader, back io.ReadWriteCloser) {
	m := ex.h.metrics
	caller := &guardedConn{rwc: down, tcp: down, prevented: func() { m.PreventedWrite("tunnel_to_caller") }}
	var upTCP net.Conn
	if c := ex.try.uconn.Load(); c != nil {
		upTCP = c
	}
	up := &guardedConn{rwc: back, tcp: upTCP, prevented: func() { m.PreventedWrite("tunnel_to_upstream") }}
	done := ex.h.tunnels.add(caller, up)
	defer done()

	// Both copiers run on their own goroutines; each numbers its end in
	// seq before it forwards it to the other side, so the numbers give
	// the order of the hang-ups even when the second copier reports
	// first. The channel is sized so neither blocks.
	var seq atomic.Int32
	ends := make(chan tunnelEnd, 2)
	var wg sync.WaitGroup
	wg.Go(func() { ends <- copyHalf(up, readerOf(downBuf, down), hangup.Caller, caller, &seq) })
	wg.Go(func() { ends <- copyHalf(caller, back, hangup.Upstream, up, &seq) })
	first, second := <-ends, <-ends
	wg.Wait()
	caller.Close()
	up.Close()
	if second.seq < first.seq {
		first, second = second, first
	}
	ex.tunnelOutcome(first, second)
	ex.tunnelIn = up.written.Load()
	ex.bytesOut += caller.written.Load()
}

// tunnelOutcome records who ended the tunnel: a ended first, b second.
func (ex *exchange) tunnelOutcome(a, b tunnelEnd) {
	first := a
	if a.kind == hangup.FIN && b.kind != hangup.FIN {
		first = b // an abrupt end outranks an orderly half-close
	}
	o := hangup.Outcome{Side: first.from, Phase: hangup.Tunnel, Kind: first.kind, Err: first.err}
	switch {
	case a.kind == hangup.FIN && b.kind == hangup.FIN:
		o.Action = hangup.OK
	case first.from == hangup.Caller:
		o.Action = hangup.AbortedUpstream
	default:
		o.Action = hangup.ResetCaller
	}
	ex.outcome = o
}

func readerOf(br *bufio.Reader, c net.Conn) io.Reader {
	if br != nil && br.Buffered() > 0 {
		return io.MultiReader(io.LimitReader(br, int64(br.Buffered())), c)
	}
	return c
}

// copyHalf copies src to dst until src ends. An orderly end (FIN) is
// forwarded as a half-close; anything else resets dst and closes both. The
// end is numbered from seq before anything is forwarded, as forwarding it
// may end the other direction.
func copyHalf(dst *guardedConn, src io.Reader, from hangup.Side, srcConn *guardedConn, seq *atomic.Int32) tunnelEnd {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	_, err := io.CopyBuffer(dst, onlyReader{src}, *bp)
	n := seq.Add(1)
	var we writeError
	switch {
	case err == nil:
		dst.CloseWrite()
		return tunnelEnd{from: from, kind: hangup.FIN, seq: n}
	case errors.As(err, &we):
		// The destination hung up: it is the side that ended this.
		srcConn.reset()
		dst.Close()
		other := hangup.Upstream
		if from == hangup.Upstream {
			other = hangup.Caller
		}
		return tunnelEnd{from: other, kind: hangup.Classify(we.err), err: we.err, seq: n}
	case errors.Is(err, net.ErrClosed) && srcConn.closed.Load():
		// We closed it because the other direction failed.
		return tunnelEnd{from: from, kind: hangup.FIN, seq: n}
	}
	k := hangup.Classify(err)
	if k == hangup.Reset {
		dst.reset()
	}
	dst.Close()
	srcConn.Close()
	return tunnelEnd{from: from, kind: k, err: err, seq: n}
}

// onlyReader hides WriterTo/ReaderFrom so io.CopyBuffer uses our buffer and
// our guarded Write.
type onlyReader struct{ io.Reader }

// guardedConn is one side of a tunnel. Writes after it was closed are not
// attempted, only counted (rule R2); Close is idempotent and safe from any
// goroutine.
type guardedConn struct {
	rwc       io.ReadWriteCloser
	tcp       net.Conn // for reset and half-close; may be nil
	closed    atomic.Bool
	prevented func()
	written   atomic.Int64 // bytes the connection accepted for writing
}

type writeError struct{ err error }

func (e writeError) Error() string { return e.err.Error() }
func (e writeError) Unwrap() error { return e.err }

func (g *guardedConn) Read(p []byte) (int, error) { return g.rwc.Read(p) }

func (g *guardedConn) Write(p []byte) (int, error) {
	if g.closed.Load() {
		g.prevented()
		return 0, writeError{net.ErrClosed}
	}
	n, err := g.rwc.Write(p)
	g.written.Add(int64(n))
	if err != nil {
		return n, writeError{err}
	}
	return n, nil
}

func (g *guardedConn) Close() error {
	if g.closed.Swap(true) {
		return nil
	}
	return g.rwc.Close()
}

// CloseWrite forwards a half-close.
func (g *guardedConn) CloseWrite() {
	if cw, ok := g.rwc.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	g.Close()
}

// reset makes the next Close send RST instead of FIN.
func (g *guardedConn) reset() {
	if tc := tcpConn(g.tcp); tc != nil {
		tc.SetLinger(0)
	}
}

func tcpConn(c net.Conn) *net.TCPConn {
	for c != nil {
		switch v := c.(type) {
		case *net.TCPConn:
			return v
		case *callerConn:
			c = v.Conn
		case *upstream.Conn:
			c = v.Conn
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// tunnelSet tracks live tunnels, which http.Server.Shutdown does not see
// (they are hijacked), so a drain can wait for them and then close them.
type tunnelSet struct {
	mu    sync.Mutex
	live  map[*[2]*guardedConn]struct{}
	empty chan struct{} // closed and replaced when live becomes empty
}

func (s *tunnelSet) add(a, b *guardedConn) (done func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live == nil {
		s.live = make(map[*[2]*guardedConn]struct{})
	}
	k := &[2]*guardedConn{a, b}
	s.live[k] = struct{}{}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.live, k)
		if len(s.live) == 0 && s.empty != nil {
			close(s.empty)
			s.empty = nil
		}
	}
}

// wait blocks until no tunnel is live or ctx is done.
func (s *tunnelSet) wait(ctx context.Context) error {
	s.mu.Lock()
	if len(s.live) == 0 {
		s.mu.Unlock()
		return nil
	}
	if s.empty == nil {
		s.empty = make(chan struct{})
	}
	ch := s.empty
	s.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// closeAll closes both sides of every live tunnel.
func (s *tunnelSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.live {
		k[0].Close()
		k[1].Close()
	}
}
