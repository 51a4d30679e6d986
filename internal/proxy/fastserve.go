package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/cancelctx"
	"github.com/switchboard-proxy/switchboard/internal/h1"
	"github.com/switchboard-proxy/switchboard/internal/rawio"
)

// The HTTP/1.1 fast path. A cleartext listener serves each connection
// with fastConn's own loop instead of net/http's: it reads a request head
// into a pooled buffer, builds the *http.Request, and runs the Handler on
// the connection's goroutine with a light ResponseWriter (fastResponse).
// An idle connection holds no buffer, only its goroutine and a few words.
//
// Heads are parsed by internal/h1, which refuses everything net/http's
// server refuses and the framing ambiguities behind request smuggling
// besides; a refused head gets its 4xx or 5xx and the connection closes.
// Requests the loop does not serve itself are handed, with the bytes it has
// read, to the listener's net/http server, which then serves the
// connection to its end: HTTP/2 prior knowledge (h2c), Upgrade and CONNECT
// requests, and Expect.
//
// Rule R1 holds as in net/http: once a request's body has been read whole,
// a background read watches the caller's socket while the handler runs,
// and a hang-up (EOF or reset) cancels the request's context at once.

// fastServer serves the cleartext HTTP/1 connections of one server.
type fastServer struct {
	srv   *server
	inner *handoff     // the listener srv.http serves: connections handed over
	spawn func(func()) // starts a connection goroutine the proxy.Server waits for
	log   func(string, ...any)

	mu     sync.Mutex
	conns  map[*fastConn]struct{} // guarded by mu
	closed bool                   // guarded by mu: closeAll ran
}

// connection states, for closing idle connections.
const (
	fcActive int32 = iota
	fcIdle
	fcClosed
)

// serve takes connections from h until it is closed.
func (fs *fastServer) serve(h *handoff) error {
	for {
		c, err := h.Accept()
		if err != nil {
			return err
		}
		cc, ok := c.(*callerConn)
		if !ok {
			fs.handOff(c) // not expected: a proxy listener's are callerConns
			continue
		}
		fc := &fastConn{fs: fs, c: cc, watchRes: make(chan error, 1)}
		fc.remote = cc.remote
		fs.mu.Lock()
		if fs.closed {
			fs.mu.Unlock()
			cc.Close()
			continue
		}
		fs.conns[fc] = struct{}{}
		fs.mu.Unlock()
		// The same hooks net/http would run: the caller's connection
		// and the connSet entry go into every request's context.
		fc.ctx = fs.srv.http.ConnContext(context.Background(), cc)
		fs.spawn(fc.serve)
	}
}

// handOff gives c to the net/http server, or closes it if that server
// takes nothing more.
func (fs *fastServer) handOff(c net.Conn) {
	select {
	case fs.inner.conns <- c:
	case <-fs.inner.closed:
		c.Close()
	}
}

// closeIdle closes the connections waiting for a request, as a drain does
// once its grace has passed; a connection that has begun reading one
// finishes it.
func (fs *fastServer) closeIdle() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for fc := range fs.conns {
		if fc.state.CompareAndSwap(fcIdle, fcClosed) {
			fc.c.Close()
		}
	}
}

// closeAll closes every connection at once.
func (fs *fastServer) closeAll() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.closed = true
	for fc := range fs.conns {
		fc.state.Store(fcClosed)
		fc.c.Close()
	}
}

func (fs *fastServer) forget(fc *fastConn) {
	fs.mu.Lock()
	delete(fs.conns, fc)
	fs.mu.Unlock()
	fs.srv.conns.stateHook(fc.c, http.StateClosed)
}

// Buffers are held only while a request is being served.
const (
	fastReadSize  = 8 << 10
	fastWriteSize = 4 << 10
)

var (
	fastReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, fastReadSize) }}
	fastWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, fastWriteSize) }}
)

// fastConn is one caller connection on the fast path. Its fields are owned
// by its serve goroutine, except state (closeIdle) and the watcher's
// result channel.
type fastConn struct {
	fs      *fastServer
	c       *callerConn
	ctx     context.Context // the connection's: carries callerConn and the connSet entry
	remote  string
	watchFn func() // fc.watch
	state   atomic.Int32

	br    *bufio.Reader // while serving
	bw    *bufio.Writer // while serving
	src   fastSource    // br's source: the byte the idle read took, then c
	first [1]byte       // a byte read ahead of br by the idle read or the watcher
	has   bool          // first holds a byte

	rq        *fastReq // while serving
	bigReader bool     // br holds a head too large for the pool's readers
	watching  bool     // a watcher runs; its result is still to be taken
	wbyte     [1]byte
	watchRes  chan error // the watcher's result; capacity 1
	wmu       sync.Mutex
	wctx      *cancelctx.Ctx // under wmu: the request the watcher cancels on a hang-up, nil once answered
	served    int            // requests served
	waiting   bool           // between requests
	moved     bool           // the current wait moved to a fresh goroutine
	idleUntil time.Time      // when the current wait ends; zero for never
	dead      bool           // the caller's side ended: serve no more
	recent    h1.Recent      // the strings of the last request head; dropped when idle long
	w         io.Writer      // what bw writes to, made on first use (writer)
}

// writer returns what the connection's responses are written through: the
// socket by raw system calls (see rawio), or the connection.
func (fc *fastConn) writer() io.Writer {
	if fc.w == nil {
		if rw := rawio.NewWriter(fc.c.rc); rw != nil {
			fc.w = rw
		} else {
			fc.w = fc.c
		}
	}
	return fc.w
}

// fastSource is what a fastConn's bufio.Reader reads: first the byte the
// connection read ahead, then the connection.
type fastSource struct{ fc *fastConn }

func (s *fastSource) Read(p []byte) (int, error) {
	fc := s.fc
	if fc.has && len(p) > 0 {
		p[0] = fc.first[0]
		fc.has = false
		return 1, nil
	}
	return fc.c.Read(p)
}

// serve is the connection's loop: wait for a request, serve it, repeat.
func (fc *fastConn) serve() {
	handed, moved := false, false
	defer func() {
		if moved {
			return
		}
		fc.release()
		if !handed {
			fc.c.Close()
		}
		if fc.watching {
			<-fc.watchRes // the close ended its read
		}
		fc.fs.forget(fc)
	}()
	fc.src.fc = fc
	srv := fc.fs.srv.http
	for {
		if !fc.has && (fc.br == nil || fc.br.Buffered() == 0) {
			fc.release()
			switch fc.awaitRequest(srv.IdleTimeout, srv.ReadHeaderTimeout) {
			case awaitEnded:
				return
			case awaitLong:
				// Serving grew this goroutine's stack, and an idle
				// connection should not keep it: a fresh goroutine,
				// with a small stack, waits on.
				moved = true
				fc.fs.spawn(fc.serve)
				return
			}
		}
		if fc.br == nil {
			fc.br = fastReaders.Get().(*bufio.Reader)
			fc.br.Reset(&fc.src)
		}
		if fc.rq == nil {
			fc.rq = fastReqs.Get().(*fastReq)
		}
		if d := srv.ReadHeaderTimeout; d > 0 {
			fc.c.SetReadDeadline(time.Now().Add(d))
		}
		n, verdict := fc.readHead(srv.MaxHeaderBytes)
		switch verdict {
		case headEnded:
			return
		case headForNetHTTP:
			handed = fc.handOff()
			return
		case headRefused:
			return
		}
		req, err := fc.request()
		if err != nil {
			fc.refuse(err)
			return
		}
		fc.c.SetReadDeadline(time.Time{})
		fc.br.Discard(n)
		if !fc.serveRequest(req) {
			return
		}
	}
}

// What awaitRequest saw.
const (
	awaitGot   = iota // the first byte of a request
	awaitEnded        // the connection ended, was closed as idle, or its idle time ran out
	awaitLong         // longIdle passed: wait on in a fresh goroutine
)

// longIdle is how long the goroutine that served a connection's request
// waits for the next before it hands the wait to a fresh one. Until then
// the connection keeps that goroutine's grown stack (8 KiB) and its
// watcher's; a keep-alive caller that sends again within longIdle costs no
// new goroutine. Every connection that was answered in the last longIdle
// holds that much, so a burst of new connections peaks at about
// (connections per second) × longIdle × 10 KiB.
const longIdle = 50 * time.Millisecond

// awaitRequest waits for the first byte of the next request without
// holding a buffer, for at most idle (the first request: readHeader) from
// the start of the wait, but in a goroutine that has served a request for
// at most longIdle.
func (fc *fastConn) awaitRequest(idle, readHeader time.Duration) int {
	now := time.Now()
	if !fc.waiting {
		fc.waiting, fc.idleUntil = true, time.Time{}
		d := idle
		if fc.served == 0 {
			d = readHeader
		}
		if d > 0 {
			fc.idleUntil = now.Add(d)
		}
		if !fc.state.CompareAndSwap(fcActive, fcIdle) {
			return awaitEnded
		}
	} else if fc.state.Load() != fcIdle {
		return awaitEnded // closed as idle while the wait moved
	}
	deadline := fc.idleUntil
	short := fc.served > 0 && !fc.moved
	if short && (deadline.IsZero() || now.Add(longIdle).Before(deadline)) {
		deadline = now.Add(longIdle)
	} else {
		short = false
	}
	fc.c.SetReadDeadline(deadline)
	n, err := fc.readFirst()
	if short && n == 0 && errors.Is(err, os.ErrDeadlineExceeded) && fc.state.Load() == fcIdle {
		fc.moved = true
		fc.recent = h1.Recent{} // an idle connection keeps nothing
		return awaitLong
	}
	if !fc.state.CompareAndSwap(fcIdle, fcActive) || err != nil || n == 0 {
		return awaitEnded
	}
	fc.has, fc.waiting, fc.moved = true, false, false
	return awaitGot
}

// readFirst reads the first byte of the next request into fc.first. A
// watcher still reading on from the last request (see serveRequest) reads
// it: its read is this wait.
func (fc *fastConn) readFirst() (int, error) {
	if !fc.watching {
		return fc.c.Read(fc.first[:])
	}
	fc.watching = false
	if err := <-fc.watchRes; err != nil {
		return 0, err
	}
	fc.first[0] = fc.wbyte[0]
	return 1, nil
}

// What readHead found.
const (
	headParsed     = iota // fc.rq.head holds the next request's head
	headForNetHTTP        // the connection is for net/http
	headRefused           // the head was answered with an error and the connection is to close
	headEnded             // the connection ended, or the header timeout passed
)

// readHead reads and parses the next request head into fc.rq.head, leaving
// its bytes in the buffer, and returns its length. HTTP/2's preface, and
// requests to switch protocols (Upgrade, CONNECT) or with Expect, are for
// net/http; a head that does not parse is answered here.
func (fc *fastConn) readHead(maxHeaderBytes int) (int, int) {
	for {
		buf, _ := fc.br.Peek(fc.br.Buffered())
		if len(buf) < len("PRI ") && bytes.HasPrefix([]byte("PRI "), buf) && fc.served == 0 {
			// Could be HTTP/2's preface: wait for more.
		} else if bytes.HasPrefix(buf, []byte("PRI ")) {
			return 0, headForNetHTTP
		} else {
			n, err := h1.ParseRequest(buf, &fc.rq.head, maxHeaderBytes)
			switch {
			case err == nil:
				if fc.rq.head.Get("Upgrade") != nil || fc.rq.head.Get("Expect") != nil ||
					string(fc.rq.head.Method) == http.MethodConnect {
					return 0, headForNetHTTP
				}
				fc.rq.headBuf = buf[:n]
				return n, headParsed
			case err != h1.ErrIncomplete:
				fc.refuse(err)
				return 0, headRefused
			case len(buf) == fc.br.Size():
				fc.grow(maxHeaderBytes)
				continue
			}
		}
		if _, err := fc.br.Peek(len(buf) + 1); err != nil {
			// The caller sent part of a head and left or stalled;
			// net/http closes without an answer too.
			return 0, headEnded
		}
	}
}

// grow replaces the connection's reader, full with an unfinished head, by
// one that can hold maxHeaderBytes and goes to no pool.
func (fc *fastConn) grow(maxHeaderBytes int) {
	buf, _ := fc.br.Peek(fc.br.Buffered())
	ahead := bytes.Clone(buf)
	fc.br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(ahead), &fc.src), maxHeaderBytes+1)
	fc.bigReader = true
}

// refuse answers a request head that does not parse, as net/http would,
// and the connection then closes.
func (fc *fastConn) refuse(err error) {
	status, reason := http.StatusBadRequest, err.Error()
	var he *h1.Error
	if errors.As(err, &he) {
		status, reason = he.Status, he.Reason
	}
	text := strconv.Itoa(status) + " " + http.StatusText(status)
	fc.c.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(fc.c, "HTTP/1.1 "+text+"\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"+text+": "+reason+"\n"); err != nil {
		return
	}
	// Closing with unread bytes would reset the connection, and the
	// caller might lose the answer: half-close, and let it finish
	// sending for a moment, as net/http does.
	fc.c.CloseWrite()
	fc.c.SetReadDeadline(time.Now().Add(refuseLinger))
	io.Copy(io.Discard, io.LimitReader(fc.c, 1<<20))
}

// refuseLinger bounds how long a refused caller may go on sending.
const refuseLinger = 500 * time.Millisecond

// handOff gives the connection, with the bytes read ahead, to net/http.
func (fc *fastConn) handOff() bool {
	var ahead []byte
	if fc.br != nil {
		b, _ := fc.br.Peek(fc.br.Buffered())
		ahead = bytes.Clone(b)
	}
	if fc.has {
		ahead = append([]byte{fc.first[0]}, ahead...)
		fc.has = false
	}
	fc.c.SetReadDeadline(time.Time{})
	pc := &prefixConn{callerConn: fc.c, ahead: ahead, registered: make(chan struct{})}
	fc.fs.handOff(pc)
	// Forget the connection only once net/http has it in the connSet, so
	// a drain never sees it in neither.
	select {
	case <-pc.registered:
	case <-fc.fs.inner.closed:
	}
	return true
}

// release returns the connection's buffers to their pools.
func (fc *fastConn) release() {
	if fc.bigReader && fc.br != nil && fc.br.Buffered() == 0 {
		fc.br, fc.bigReader = nil, false
	}
	if fc.br != nil && fc.br.Buffered() == 0 {
		fc.br.Reset(nil)
		fastReaders.Put(fc.br)
		fc.br = nil
	}
	if fc.bw != nil {
		fc.bw.Reset(nil)
		fastWriters.Put(fc.bw)
		fc.bw = nil
	}
	if fc.rq != nil {
		fastReqs.Put(fc.rq)
		fc.rq = nil
	}
}

// request builds the *http.Request of the head in fc.rq.head, as net/http's
// server would.
//
// Every string of the request is the last request's where the bytes are
// the same, or a piece of one copy of the head from its first difference
// on (h1.Recent), and the field values share one backing array: no
// allocation for a request like the last, one otherwise.
func (fc *fastConn) request() (*http.Request, error) {
	rq := fc.rq
	h := &rq.head
	hs := h1.NewStrings(rq.headBuf, &fc.recent)
	rq.headBuf = nil
	target := hs.Of(h.Target)
	u := &rq.url
	*u = url.URL{}
	if !parseOriginForm(target, u) {
		pu, err := url.ParseRequestURI(target)
		if err != nil {
			return nil, &h1.Error{Status: http.StatusBadRequest, Reason: "malformed request-target"}
		}
		u = pu
	}
	clear(rq.header)
	rq.header, rq.values = hs.HeaderInto(rq.header, rq.values, h.Fields)
	req := rq.req
	*req = *rq.blank
	req.Method = method(h.Method)
	req.URL = u
	req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/1.1", 1, h.Minor
	req.Header = rq.header
	req.Host = u.Host
	req.RequestURI = target
	req.Close = h.Close
	req.RemoteAddr = fc.remote
	if h.Minor == 0 {
		req.Proto = "HTTP/1.0"
	}
	if req.Host == "" {
		req.Host = hs.Of(h.Host)
	}
	// net/http keeps neither in the map.
	delete(req.Header, "Host")
	delete(req.Header, "Transfer-Encoding")
	switch {
	case h.Chunked:
		req.ContentLength, req.TransferEncoding = -1, []string{"chunked"}
		req.Trailer = h1.TrailerNames(req.Header["Trailer"])
	case h.ContentLength > 0:
		req.ContentLength = h.ContentLength
	}
	return req, nil
}

// parseOriginForm fills u from target, as url.ParseRequestURI would, when
// target is in origin form ("/path?query") and its path needs no
// unescaping and would be escaped no differently: the common case, done
// without an allocation. It reports false for anything else.
func parseOriginForm(target string, u *url.URL) bool {
	if target == "" || target[0] != '/' {
		return false
	}
	path, query, hasQuery := strings.Cut(target, "?")
	for i := 0; i < len(path); i++ {
		if !plainPathByte(path[i]) {
			return false
		}
	}
	for i := 0; i < len(query); i++ {
		if c := query[i]; c < 0x21 || c > 0x7e || c == '#' {
			return false
		}
	}
	u.Path, u.RawQuery, u.ForceQuery = path, query, hasQuery && query == ""
	return true
}

// plainPathByte reports whether c stands for itself in a URL path: it is
// neither a percent escape nor a byte url.URL.EscapedPath would escape.
func plainPathByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '_', '.', '~', '$', '&', '+', ',', '/', ':', ';', '=', '@':
		return true
	}
	return false
}

// method returns the method as a constant string where it is a common one.
func method(b []byte) string {
	switch string(b) {
	case http.MethodGet:
		return http.MethodGet
	case http.MethodPost:
		return http.MethodPost
	case http.MethodHead:
		return http.MethodHead
	case http.MethodPut:
		return http.MethodPut
	case http.MethodDelete:
		return http.MethodDelete
	case http.MethodPatch:
		return http.MethodPatch
	case http.MethodOptions:
		return http.MethodOptions
	}
	return string(b)
}

// serveRequest runs the handler for req and finishes its response. It
// reports whether the connection may serve another request.
func (fc *fastConn) serveRequest(req *http.Request) bool {
	fc.served++
	fc.rq.ctx.Start(fc.ctx) // req's context; forgetRequest ends it
	if fc.bw == nil {
		fc.bw = fastWriters.Get().(*bufio.Writer)
		fc.bw.Reset(fc.writer())
	}
	hdr := fastHeaders.Get().(http.Header)
	defer fastHeaders.Put(hdr)
	defer clear(hdr)
	// Nothing of the request outlives it: an idle connection keeps
	// only itself.
	defer fc.forgetRequest()
	fc.rq.body.reset(fc, req)
	fc.rq.resp.reset(fc, req, hdr)
	if req.Body == http.NoBody {
		fc.startWatch()
	}
	aborted := fc.runHandler(&fc.rq.resp, req)
	// From here on the body reads nothing: a reader still at it (an
	// upstream transport's goroutine) gets an error, and cannot start
	// the watcher after stopWatch.
	bodyDone := fc.rq.body.close()
	if !bodyDone {
		// The rest of the body was not read: the connection cannot
		// carry another request, and a late reader may still be using
		// the buffered reader, which therefore goes to no pool.
		fc.br, fc.bigReader = nil, false
		fc.rq.resp.closeAfter = true
		fc.rq.tainted = true // and its body goes to no pool either
	}
	// A hang-up the watcher saw has cancelled the request's context:
	// then nothing is written (rule R2).
	ok := false
	if !aborted && !fc.dead && fc.rq.ctx.Err() == nil {
		ok = fc.rq.resp.finish() == nil && !fc.rq.resp.closeAfter
	}
	if !ok {
		fc.stopWatch()
		return false
	}
	// The request is answered. A watcher reads on, for the start of the
	// next request: its read is the connection's idle wait (readFirst),
	// so it is not interrupted, which would cost a goroutine switch and
	// a deadline error. It no longer cancels this request.
	fc.unwatch()
	return !fc.dead
}

func (fc *fastConn) forgetRequest() {
	fc.rq.ctx.End()
	if !fc.rq.ctx.Reusable() {
		fc.rq.tainted = true // something may keep the context
	}
	if fc.rq.tainted {
		fc.rq = nil // a late reader may still use its body: leave it be
		return
	}
	fc.rq.body.reset(nil, nil)
	fc.rq.resp = fastResponse{}
}

// fastReq is the state of one request on the fast path, pooled so that an
// idle connection holds none.
type fastReq struct {
	head    h1.Request    // aliasing the connection's reader's buffer
	headBuf []byte        // the bytes of head
	ctx     cancelctx.Ctx // req's context
	req     *http.Request
	blank   *http.Request // a request with nothing set but ctx
	url     url.URL
	header  http.Header // req's, emptied for each request
	values  []string    // the backing array of header's values
	body    fastBody
	resp    fastResponse
	tainted bool // its body was not read to the end
}

var fastReqs = sync.Pool{New: func() any {
	rq := &fastReq{req: new(http.Request), header: make(http.Header, 16)}
	// An http.Request's context can be set only by copying the request:
	// blank is a request with nothing but the context, for req to be
	// reset from.
	rq.blank = new(http.Request).WithContext(&rq.ctx)
	return rq
}}

var fastHeaders = sync.Pool{New: func() any { return make(http.Header, 16) }}

// runHandler calls the handler, and reports whether it aborted the response
// (http.ErrAbortHandler, or any other panic, which is logged).
func (fc *fastConn) runHandler(w http.ResponseWriter, r *http.Request) (aborted bool) {
	defer func() {
		if v := recover(); v != nil {
			aborted = true
			if v != http.ErrAbortHandler {
				fc.fs.log("http: panic serving "+fc.remote, "panic", v)
			}
		}
	}()
	fc.fs.srv.http.Handler.ServeHTTP(w, r)
	return false
}

// startWatch starts the background read that notices the caller hanging
// up while the handler runs. Bytes already buffered mean the caller sent
// its next request: nothing to watch for.
// It runs on the handler's goroutine, or on the one that read the body's
// end (under the body's lock), never after stopWatch.
func (fc *fastConn) startWatch() {
	if fc.watching || fc.has || fc.br.Buffered() > 0 {
		return
	}
	fc.watching = true
	fc.wctx = &fc.rq.ctx
	if fc.watchFn == nil {
		fc.watchFn = fc.watch // once per connection: a method value allocates
	}
	go fc.watchFn()
}

// watch reads one byte from the caller: the start of its next request, or
// the hang-up that cancels the current one if it is still unanswered.
func (fc *fastConn) watch() {
	n, err := fc.c.Read(fc.wbyte[:])
	if n == 0 && err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		fc.wmu.Lock()
		if fc.wctx != nil {
			fc.wctx.Cancel(nil)
		}
		fc.wmu.Unlock()
	}
	if n == 1 {
		err = nil
	} else if err == nil {
		err = io.ErrNoProgress
	}
	fc.watchRes <- err
}

// unwatch tells a running watcher that the request is answered: from now
// on a hang-up only ends the connection's wait for the next one. Once it
// returns, the watcher no longer touches the request.
func (fc *fastConn) unwatch() {
	fc.wmu.Lock()
	fc.wctx = nil
	fc.wmu.Unlock()
}

// stopWatch ends the background read and keeps what it read.
func (fc *fastConn) stopWatch() {
	if !fc.watching {
		return
	}
	fc.unwatch()
	fc.watching = false
	fc.c.SetReadDeadline(aLongTimeAgo)
	err := <-fc.watchRes
	fc.c.SetReadDeadline(time.Time{})
	switch {
	case err == nil:
		fc.first[0], fc.has = fc.wbyte[0], true
	case !errors.Is(err, os.ErrDeadlineExceeded):
		fc.dead = true
	}
}

var aLongTimeAgo = time.Unix(1, 0)

// prefixConn is a caller connection handed to net/http with the bytes the
// fast path had read ahead.
type prefixConn struct {
	*callerConn
	ahead      []byte
	registered chan struct{} // closed when net/http's server registered it
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.ahead) > 0 {
		n := copy(p, c.ahead)
		c.ahead = c.ahead[n:]
		return n, nil
	}
	return c.callerConn.Read(p)
}
