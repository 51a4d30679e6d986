package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/cancelctx"
	"github.com/switchboard-proxy/switchboard/internal/h1"
	"github.com/switchboard-proxy/switchboard/internal/rawio"
)

// h1Conn is one connection of an h1Transport. It is owned by the goroutine
// making an exchange on it, or, while idle, by the transport's idle list.
type h1Conn struct {
	t     *h1Transport
	key   connKey
	conn  net.Conn      // what exchanges read and write: raw, or a *tls.Conn over it
	raw   *Conn         // the TCP connection; closing it aborts an exchange at once
	rr    *rawio.Reader // reads raw's socket when conn is raw (no TLS); else nil
	rw    *rawio.Writer // writes to it likewise
	abort func()        // closes raw; made once, for context.AfterFunc
	// The watch of a cancelctx.Ctx in progress, and unwatch, made once.
	watchCtx *cancelctx.Ctx
	watchID  uint64
	unwatch  func() bool
	idleAt   time.Time // when it last went idle; guarded by t.mu while idle

	// The socket, made on first use (rawConn), and alive's state.
	rc       syscall.RawConn
	peek     func(fd uintptr) bool
	peekLive bool

	// The exchange in progress reads through Read, which keeps these.
	limitHead bool      // a response head is being read: headLeft applies
	headLeft  int64     // bytes the head may still take
	nread     int64     // bytes read in the exchange
	rerr      error     // the last read error
	werr      error     // the last write error
	recent    h1.Recent // the strings of the last response head
}

func newH1Conn(t *h1Transport, key connKey, c net.Conn) *h1Conn {
	pc := &h1Conn{t: t, key: key, conn: c, raw: Unwrap(c)}
	if pc.conn == net.Conn(pc.raw) {
		rc := pc.rawConn()
		pc.rr, pc.rw = rawio.NewReader(rc), rawio.NewWriter(rc)
	}
	pc.abort = func() { pc.raw.Close() }
	pc.unwatch = pc.stopWatch
	return pc
}

// Read reads from the connection for the exchange's bufio.Reader, counting
// bytes and bounding a response head.
func (pc *h1Conn) Read(p []byte) (int, error) {
	if pc.limitHead {
		if pc.headLeft <= 0 {
			return 0, errHeadTooLarge
		}
		if int64(len(p)) > pc.headLeft {
			p = p[:pc.headLeft]
		}
	}
	var n int
	var err error
	if pc.rr != nil {
		n, err = pc.rr.Read(p) // see rawio
	} else {
		n, err = pc.conn.Read(p)
	}
	pc.nread += int64(n)
	if pc.limitHead {
		pc.headLeft -= int64(n)
	}
	if err != nil {
		pc.rerr = err
	}
	return n, err
}

// Write writes to the connection for the exchange's bufio.Writer,
// remembering a failure.
func (pc *h1Conn) Write(p []byte) (int, error) {
	var n int
	var err error
	if pc.rw != nil {
		n, err = pc.rw.Write(p) // see rawio: a plain TCP connection
		pc.raw.written.Add(int64(n))
	} else {
		n, err = pc.conn.Write(p)
	}
	if err != nil {
		pc.werr = err
	}
	return n, err
}

// close closes the connection. It never goes back to the idle list.
func (pc *h1Conn) close() { pc.raw.Close() }

// rawConn returns the raw TCP socket under the connection (under TLS too),
// or nil if it is not a socket.
func (pc *h1Conn) rawConn() syscall.RawConn {
	if pc.rc == nil {
		pc.rc = rawio.Conn(pc.raw.Conn)
	}
	return pc.rc
}

// watch closes the connection as soon as ctx is done, wherever the exchange
// is (rule R1: the upstream sees the connection end at once). The returned
// stop reports false if ctx was done first: the connection is closing. On
// a cancelctx.Ctx (switchboard's own requests) the close runs on the
// goroutine that cancels, and nothing is allocated.
func (pc *h1Conn) watch(ctx context.Context) func() bool {
	if c, ok := ctx.(*cancelctx.Ctx); ok {
		id, ok := c.OnCancel(pc.abort)
		if !ok {
			return neverStopped // cancelled already: abort ran
		}
		pc.watchCtx, pc.watchID = c, id
		return pc.unwatch
	}
	if ctx.Done() == nil {
		return alwaysStopped
	}
	return context.AfterFunc(ctx, pc.abort)
}

// stopWatch is the stop of a cancelctx.Ctx's watch.
func (pc *h1Conn) stopWatch() bool {
	c := pc.watchCtx
	if c == nil {
		return false // stopped already
	}
	pc.watchCtx = nil
	return c.StopOnCancel(pc.watchID)
}

func alwaysStopped() bool { return true }
func neverStopped() bool  { return false }

// failure is a failed exchange with the facts that decide whether it may be
// replayed on another connection.
type failure struct {
	err      error
	written  bool // some of the request reached the connection
	awaiting bool // the whole request was written; the first response byte never came
	gotByte  bool // some of a response arrived
}

// Limits on what an upstream may send before its final response.
const max1xx = 5

var (
	errUnexpected101 = errors.New("upstream switched protocols (101) on a request that asked for no upgrade")
	errTooMany1xx    = fmt.Errorf("upstream sent more than %d informational (1xx) responses", max1xx)
)

// send makes one exchange on pc: it writes r's head and reads the response
// head on the calling goroutine. A request body goes out meanwhile from a
// bodyWriter of its own (see there), which the exchange ends before it
// ends; a bodyless request, the common case, starts no goroutine. The
// response's body reads on from pc and hands it back to the idle list, or
// closes it, at its end.
func (pc *h1Conn) send(ctx context.Context, r *h1Request, trace *httptrace.ClientTrace) (*http.Response, *failure) {
	pc.nread, pc.rerr, pc.werr = 0, nil, nil
	stop := pc.watch(ctx)
	start := pc.raw.Written()
	fail := func(err error, awaiting bool) (*http.Response, *failure) {
		stop()
		pc.close()
		if ctx.Err() != nil {
			err = &canceledError{cause: cancelctx.Cause(ctx), err: err}
		}
		return nil, &failure{err: err, written: pc.raw.Written() != start, awaiting: awaiting, gotByte: pc.nread > 0}
	}

	_, err := pc.Write(*r.head)
	var w *bodyWriter
	if err == nil {
		traceWroteHeaders(trace)
		if r.body != nil {
			w = pc.startBody(r, trace) // it reports WroteRequest
		}
	}
	if w == nil {
		traceWroteRequest(trace, err)
	}
	salvage := false
	if err != nil {
		if pc.werr == nil || pc.raw.Written() == start || ctx.Err() != nil {
			return fail(err, false)
		}
		// The upstream stopped taking the request: it may have answered
		// early (a 413, say) before closing. Read that answer if it is
		// there; else report the write's failure.
		salvage = true
	}

	br := readerPool.Get().(*bufio.Reader)
	br.Reset(pc)
	res, rerr := pc.readHead(br, r, trace)
	pc.limitHead = false
	if rerr != nil {
		br.Reset(nil)
		readerPool.Put(br)
		if w != nil {
			wr := w.end()
			if wr.failed {
				return fail(wr.err, false) // the write failed first; see bodyWriter
			}
			return fail(rerr, wr.sentAll && pc.nread == 0)
		}
		if salvage {
			return fail(err, false)
		}
		return fail(rerr, pc.nread == 0)
	}
	if tc, ok := pc.conn.(*tls.Conn); ok {
		cs := tc.ConnectionState()
		res.TLS = &cs
	}
	keep := !salvage && !r.close && !res.Close && res.ProtoMajor == 1
	if res.Body == http.NoBody {
		pc.finish(stop, keep, br, trace, w)
		return res, nil
	}
	var b *h1Body
	if r.mem != nil {
		b = &r.mem.body // the caller is done with its last use; see ResponseMem
	} else {
		b = new(h1Body)
	}
	*b = h1Body{pc: pc, br: br, src: res.Body, ctx: ctx, stop: stop, trace: trace, w: w, keep: keep}
	res.Body = b
	return res, nil
}

// readHead reads the final response head from br, skipping informational
// responses.
func (pc *h1Conn) readHead(br *bufio.Reader, r *h1Request, trace *httptrace.ClientTrace) (*http.Response, error) {
	pc.limitHead, pc.headLeft = true, maxResponseHead
	if _, err := br.Peek(1); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("upstream closed the connection before responding: %w", err)
		}
		return nil, fmt.Errorf("read upstream response: %w", err)
	}
	if trace != nil && trace.GotFirstResponseByte != nil {
		trace.GotFirstResponseByte()
	}
	for n1xx := 0; ; n1xx++ {
		res, err := readResponseHead(br, r.req, &pc.recent)
		if err != nil {
			return nil, pc.headError(err)
		}
		switch code := res.StatusCode; {
		case code >= 200:
			return res, nil
		case code < 100:
			return nil, fmt.Errorf("malformed upstream response: status code %d", code)
		case code == http.StatusSwitchingProtocols:
			return nil, errUnexpected101
		case n1xx >= max1xx:
			return nil, errTooMany1xx
		}
		if trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(res.StatusCode, textproto.MIMEHeader(res.Header)); err != nil {
				return nil, err
			}
		}
		pc.headLeft = maxResponseHead // each head has its own limit
	}
}

// headError tells a head the connection cut short (a truncated head fails
// to parse, but the upstream hung up) from one that does not parse.
func (pc *h1Conn) headError(err error) error {
	switch {
	case errors.Is(err, errHeadTooLarge):
		return errHeadTooLarge
	case pc.rerr == io.EOF:
		return fmt.Errorf("read upstream response head: connection closed mid-head: %w", io.ErrUnexpectedEOF)
	case pc.rerr != nil:
		return fmt.Errorf("read upstream response head: %w", pc.rerr)
	}
	return fmt.Errorf("malformed upstream response: %w", err)
}

// finish ends the exchange on pc once its response is read whole: the
// connection goes back to the idle list if keep, nothing more came and
// the request, if it had a body, went out whole (w ends it), else it is
// closed.
func (pc *h1Conn) finish(stop func() bool, keep bool, br *bufio.Reader, trace *httptrace.ClientTrace, w *bodyWriter) {
	if w != nil {
		if wr := w.end(); !wr.sentAll || wr.err != nil || wr.connClosed {
			keep = false
		}
	}
	if !stop() {
		keep = false // the request was cancelled: the watcher is closing pc
	}
	if br.Buffered() > 0 {
		keep = false // bytes beyond the response: the upstream is confused
	}
	br.Reset(nil)
	readerPool.Put(br)
	if !keep || !pc.t.putIdle(pc) {
		pc.close()
		return
	}
	if trace != nil && trace.PutIdleConn != nil {
		trace.PutIdleConn(nil)
	}
}

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

func traceWroteHeaders(trace *httptrace.ClientTrace) {
	if trace != nil && trace.WroteHeaders != nil {
		trace.WroteHeaders()
	}
}

func traceWroteRequest(trace *httptrace.ClientTrace, err error) {
	if trace != nil && trace.WroteRequest != nil {
		trace.WroteRequest(httptrace.WroteRequestInfo{Err: err})
	}
}

// canceledError is an exchange ended because its request's context was
// done. It unwraps to the context's cause, so the error says who
// cancelled; err is what the connection's abort made of the exchange.
type canceledError struct {
	cause error
	err   error
}

func (e *canceledError) Error() string { return "upstream request cancelled: " + e.cause.Error() }
func (e *canceledError) Unwrap() error { return e.cause }

// h1Body is a response body read from its connection. At its end the
// connection goes back to the idle list; closed early, or failing, the
// connection is closed. Close may be called concurrently with Read.
//
// With a ResponseMem it lives there, and send sets every field afresh for
// each response. Once the body is done or closed, a second Close does
// nothing and a Read returns io.EOF, the body's error or errBodyClosed,
// touching neither the connection (by then another request's, or closed)
// nor the reader. A call that came after the next request reset it would
// act on that request's body: the ResponseMem contract rules that out.
type h1Body struct {
	pc    *h1Conn
	br    *bufio.Reader
	src   io.ReadCloser // the body as readResponseHead framed it
	ctx   context.Context
	stop  func() bool
	trace *httptrace.ClientTrace
	w     *bodyWriter // writes the request's body; nil if it has none
	keep  bool        // the connection may be reused after the body's end

	state atomic.Int32 // bodyOpen …
	err   error        // what Read returns once done; set before state
}

// h1Body states.
const (
	bodyOpen          = iota
	bodyReading       // a Read is in progress
	bodyDone          // read to its end or failed; the connection is settled
	bodyClosed        // closed before its end
	bodyClosedReading // closed while a Read was in progress
)

var errBodyClosed = errors.New("read on closed upstream response body")

func (b *h1Body) Read(p []byte) (int, error) {
	if !b.state.CompareAndSwap(bodyOpen, bodyReading) {
		if b.state.Load() == bodyDone {
			return 0, b.err
		}
		return 0, errBodyClosed
	}
	n, err := b.src.Read(p)
	return n, b.settle(err)
}

// settle ends a read of the body (state bodyReading) that returned err:
// the body stays open, or is done and its connection settled.
func (b *h1Body) settle(err error) error {
	switch {
	case err == nil:
		if !b.state.CompareAndSwap(bodyReading, bodyOpen) {
			b.closedWhileReading()
		}
		return nil
	case err == io.EOF:
		b.err = io.EOF
		if b.state.CompareAndSwap(bodyReading, bodyDone) {
			b.pc.finish(b.stop, b.keep, b.br, b.trace, b.w)
		} else {
			b.closedWhileReading()
		}
		return io.EOF
	}
	if wr := b.endWriter(); wr.closedConn {
		err = wr.err // the request's body failed, and ended the exchange
	}
	if b.ctx.Err() != nil {
		err = &canceledError{cause: cancelctx.Cause(b.ctx), err: err}
	}
	b.err = err
	if b.state.CompareAndSwap(bodyReading, bodyDone) {
		b.stop()
		b.pc.close()
		b.release()
	} else {
		b.closedWhileReading()
	}
	return err
}

// RawRest offers the rest of the body as bytes to read straight from the
// connection's socket, for a reader that moves them without user space
// (internal/splice): only for a body of declared length, with left > 0
// bytes to come and none of them buffered, on a plain TCP connection. On
// ok the body is being read (Close may come concurrently, and closes the
// socket under the reader); the reader reads at most left bytes from rc,
// and must then call RawDone.
func (b *h1Body) RawRest() (rc syscall.RawConn, left int64, ok bool) {
	if !b.state.CompareAndSwap(bodyOpen, bodyReading) {
		return nil, 0, false // done, or closed: br may be gone
	}
	lb, isLength := b.src.(*lengthBody)
	if isLength && lb.Left > 0 && b.br.Buffered() == 0 && b.pc.conn == net.Conn(b.pc.raw) {
		if rc = b.pc.rawConn(); rc != nil {
			return rc, lb.Left, true
		}
	}
	b.settle(nil) // open again, or finish a Close that came meanwhile
	return nil, 0, false
}

// RawDone ends what RawRest began: n bytes of the body were read from the
// socket, and the read ended with err: nil if the reader stopped for its
// own reasons (the body stays open, and may be read on or closed), io.EOF
// if the socket ended. It returns what a Read would have: io.EOF once the
// whole body is read, else the read's error.
func (b *h1Body) RawDone(n int64, err error) error {
	lb := b.src.(*lengthBody)
	lb.Left -= n
	b.pc.nread += n
	switch {
	case lb.Left == 0 && err == nil:
		err = io.EOF
	case err == io.EOF:
		err = io.ErrUnexpectedEOF // shorter than declared
	}
	if err != nil && err != io.EOF {
		b.pc.rerr = err
	}
	return b.settle(err)
}

// closedWhileReading finishes a Close that came during a Read: the reader
// gives the buffer back, and returns only once the request's body writer,
// which Close ends, has ended.
func (b *h1Body) closedWhileReading() {
	b.endWriter()
	b.release()
	b.state.Store(bodyClosed)
}

// endWriter ends the request's body writer, if any; see bodyWriter.
func (b *h1Body) endWriter() writeResult {
	if b.w == nil {
		return writeResult{}
	}
	return b.w.end()
}

func (b *h1Body) release() {
	b.br.Reset(nil)
	readerPool.Put(b.br)
	b.br = nil
}

// Close closes the connection unless the body was read to its end: what is
// left of it is not worth waiting for.
func (b *h1Body) Close() error {
	for {
		switch s := b.state.Load(); s {
		case bodyOpen:
			if b.state.CompareAndSwap(bodyOpen, bodyClosed) {
				b.stop()
				b.pc.close()
				b.endWriter()
				b.release()
				return nil
			}
		case bodyReading:
			if b.state.CompareAndSwap(bodyReading, bodyClosedReading) {
				b.stop()
				b.pc.close()
				b.endWriter()
				return nil
			}
		default:
			return nil
		}
	}
}
