package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-proxy/switchboard/hangup"
	"github.com/switchboard-proxy/switchboard/internal/config"
	"github.com/switchboard-proxy/switchboard/internal/hanguptest"
)

// newH1 returns an HTTP/1.1 transport for cleartext endpoints, closed at
// the end of the test.
func newH1(t *testing.T, maxIdle int, idleTimeout time.Duration) *h1Transport {
	t.Helper()
	tr := newH1Transport(newDialer(nil), maxIdle, idleTimeout)
	t.Cleanup(tr.Close)
	return tr
}

// traceLog records what the transport reported through httptrace, as the
// proxy's attempt hooks see it.
type traceLog struct {
	mu           sync.Mutex
	conns        []httptrace.GotConnInfo
	wroteHeaders int
	wrote        []error
	putIdle      int
	firstByte    int
	got1xx       []int
	onPutIdle    func() // runs in PutIdleConn, if set
}

func (l *traceLog) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { l.mu.Lock(); l.conns = append(l.conns, i); l.mu.Unlock() },
		WroteHeaders: func() {
			l.mu.Lock()
			l.wroteHeaders++
			l.mu.Unlock()
		},
		WroteRequest: func(i httptrace.WroteRequestInfo) { l.mu.Lock(); l.wrote = append(l.wrote, i.Err); l.mu.Unlock() },
		PutIdleConn: func(err error) {
			l.mu.Lock()
			if err == nil {
				l.putIdle++
			}
			f := l.onPutIdle
			l.mu.Unlock()
			if f != nil {
				f()
			}
		},
		GotFirstResponseByte: func() { l.mu.Lock(); l.firstByte++; l.mu.Unlock() },
		Got1xxResponse: func(code int, _ textproto.MIMEHeader) error {
			l.mu.Lock()
			l.got1xx = append(l.got1xx, code)
			l.mu.Unlock()
			return nil
		},
	}
}

// lastConn returns the connection of the latest GotConn.
func (l *traceLog) lastConn(t *testing.T) httptrace.GotConnInfo {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.conns) == 0 {
		t.Fatal("no GotConn")
	}
	return l.conns[len(l.conns)-1]
}

func (l *traceLog) gotConns() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// newRequest builds a request for the transport with a trace; a nil body
// sends none.
func newRequest(t *testing.T, ctx context.Context, l *traceLog, method, url string, body io.Reader) *http.Request {
	t.Helper()
	if l != nil {
		ctx = httptrace.WithClientTrace(ctx, l.trace())
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// do sends a request and reads its body whole.
func do(t *testing.T, tr http.RoundTripper, req *http.Request) (*http.Response, string, error) {
	t.Helper()
	res, err := tr.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(b), err
}

// mustDo sends a request that must succeed with status 200 and want as
// its body.
func mustDo(t *testing.T, tr http.RoundTripper, req *http.Request, want string) *http.Response {
	t.Helper()
	res, body, err := do(t, tr, req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	if res.StatusCode != http.StatusOK || body != want {
		t.Fatalf("%s %s = %d %q, want 200 %q", req.Method, req.URL, res.StatusCode, body, want)
	}
	return res
}

func idleConns(tr *h1Transport) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, l := range tr.idle {
		n += len(l.conns)
	}
	return n
}

// waitClosed waits, generously, for a channel that a connection's end
// closes.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(hanguptest.Timeout):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// Keep-alive: one connection carries request after request; the trace says
// so, and every response's end puts it back idle.
func TestH1Reuse(t *testing.T) {
	up := hanguptest.NewUpstream(t, hanguptest.Respond(200, "hello"))
	tr := newH1(t, 0, 0)
	var l traceLog
	for i := range 3 {
		mustDo(t, tr, newRequest(t, t.Context(), &l, "GET", up.URL+"/", nil), "hello")
		if got := l.lastConn(t); got.Reused != (i > 0) || got.WasIdle != (i > 0) {
			t.Errorf("request %d: GotConn Reused %v WasIdle %v", i, got.Reused, got.WasIdle)
		}
		if Unwrap(l.lastConn(t).Conn) == nil {
			t.Fatalf("GotConn's conn %T is not an *upstream.Conn", l.lastConn(t).Conn)
		}
	}
	if n := up.Accepted(); n != 1 {
		t.Errorf("upstream accepted %d connections, want 1", n)
	}
	if l.putIdle != 3 || l.wroteHeaders != 3 || len(l.wrote) != 3 || l.wrote[2] != nil || l.firstByte != 3 {
		t.Errorf("trace: putIdle %d wroteHeaders %d wrote %v firstByte %d; want 3 of each, no error",
			l.putIdle, l.wroteHeaders, l.wrote, l.firstByte)
	}
}

// The same over TLS: the trace hands out the *tls.Conn, and a connection
// the upstream closed while idle (close_notify, then FIN) is not reused.
func TestH1TLS(t *testing.T) {
	needAlive(t)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "hello")
	}))
	defer srv.Close()
	tr := newH1Transport(newDialer(&tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}), 0, 0)
	defer tr.Close()
	var l traceLog
	mustDo(t, tr, newRequest(t, t.Context(), &l, "GET", srv.URL, nil), "hello")
	res := mustDo(t, tr, newRequest(t, t.Context(), &l, "GET", srv.URL, nil), "hello")
	info := l.lastConn(t)
	if _, ok := info.Conn.(*tls.Conn); !ok || !info.Reused || Unwrap(info.Conn) == nil {
		t.Fatalf("GotConn %T reused %v; want a reused *tls.Conn over an *upstream.Conn", info.Conn, info.Reused)
	}
	if res.TLS == nil || res.TLS.NegotiatedProtocol != "http/1.1" {
		t.Errorf("response TLS state %+v, want http/1.1", res.TLS)
	}
	srv.CloseClientConnections()
	pc := peekIdle(t, tr)
	eventually(t, "the upstream's close arrives", func() bool { return !pc.alive() })
	mustDo(t, tr, newRequest(t, t.Context(), &l, "POST", srv.URL, strings.NewReader("x")), "hello")
	if l.lastConn(t).Reused {
		t.Error("POST reused the connection the upstream closed")
	}
}

// needAlive skips a test of the idle connections' liveness check where it
// does not look at the socket.
func needAlive(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the liveness check looks at the socket only on Linux")
	}
}

// peekIdle returns the one idle connection, leaving it idle.
func peekIdle(t *testing.T, tr *h1Transport) *h1Conn {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, l := range tr.idle {
		if len(l.conns) == 1 {
			return l.conns[0]
		}
	}
	t.Fatal("not exactly one idle connection")
	return nil
}

// An upstream that closes an idle connection: the liveness check finds it
// closed before reuse, so even a POST (which may not be replayed) goes out
// on a new connection and succeeds.
func TestH1IdleClosedByUpstream(t *testing.T) {
	needAlive(t)
	for _, rst := range []bool{false, true} {
		t.Run(fmt.Sprintf("rst=%v", rst), func(t *testing.T) {
			var accepted atomic.Int32
			closeNow := make(chan struct{})
			up := hanguptest.NewUpstream(t, func(c *hanguptest.ServerConn) {
				if accepted.Add(1) > 1 {
					hanguptest.Respond(200, "hello")(c)
					return
				}
				// The first connection answers once, then closes
				// while idle.
				if _, err := c.ReadRequest(); err != nil {
					return
				}
				c.Write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
				<-closeNow
				if rst {
					c.Reset()
				} else {
					c.CloseFIN()
				}
			})
			tr := newH1(t, 0, 0)
			var l traceLog
			mustDo(t, tr, newRequest(t, t.Context(), &l, "GET", up.URL, nil), "hello")
			close(closeNow)
			waitClosed(t, (<-up.Conns()).Done(), "the upstream to close the idle connection")
			pc := peekIdle(t, tr)
			eventually(t, "the close reaches the client", func() bool { return !pc.alive() })
			mustDo(t, tr, newRequest(t, t.Context(), &l, "POST", up.URL, strings.NewReader("payload")), "hello")
			if l.gotConns() != 2 || l.lastConn(t).Reused {
				t.Errorf("POST: %d GotConn, reused %v; want one, on a new connection", l.gotConns()-1, l.lastConn(t).Reused)
			}
			if n := up.Accepted(); n != 2 {
				t.Errorf("upstream accepted %d connections, want 2", n)
			}
		})
	}
}

// Rule R6: a connection the keep-alive timer retires while idle is never
// handed out again.
func TestH1RetiredIdleConn(t *testing.T) {
	up := hanguptest.NewUpstream(t, hanguptest.Respond(200, "hello"))
	tr := newH1(t, 0, 0)
	e := &Endpoint{}
	e.ObserveKeepAlive(http.Header{"Keep-Alive": {"timeout=0"}}) // retire at once
	var l traceLog
	var c *Conn
	var use int64
	l.onPutIdle = func() { e.Idle(c, use) }
	req := newRequest(t, t.Context(), &l, "GET", up.URL, nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { c = Unwrap(i.Conn); use = c.Busy() },
	}))
	mustDo(t, tr, req, "hello")
	waitClosed(t, c.Closed(), "the idle connection to be retired")
	mustDo(t, tr, newRequest(t, t.Context(), &l, "POST", up.URL, strings.NewReader("x")), "hello")
	if l.lastConn(t).Reused || up.Accepted() != 2 {
		t.Errorf("POST reused %v, upstream accepted %d; want a new connection", l.lastConn(t).Reused, up.Accepted())
	}
}

// Idle connections are closed after the idle timeout, by the timer, and
// are never reused past it.
func TestH1IdleConnTimeout(t *testing.T) {
	up := hanguptest.NewUpstream(t, hanguptest.Respond(200, "hello"))
	tr := newH1(t, 0, 50*time.Millisecond)
	var l traceLog
	mustDo(t, tr, newRequest(t, t.Context(), &l, "GET", up.URL, nil), "hello")
	sc := <-up.Conns()
	waitClosed(t, sc.Done(), "the idle connection to time out")
	if rec := sc.Record(); rec.PeerClose != hanguptest.PeerFIN {
		t.Errorf("upstream saw %v, want the transport's FIN", rec.PeerClose)
	}
	if n := idleConns(tr); n != 0 {
		t.Errorf("%d idle connections left", n)
	}

	// Past the timeout a connection is not taken even if the timer has
	// not run yet.
	tr = newH1(t, 0, time.Hour)
	mustDo(t, tr, newRequest(t, t.Context(), &l, "GET", up.URL, nil), "hello")
	pc := peekIdle(t, tr)
	tr.mu.Lock()
	pc.idleAt = pc.idleAt.Add(-2 * time.Hour)
	tr.mu.Unlock()
	if got := tr.takeIdle(pc.key); got != nil {
		t.Fatal("took a connection idle past the timeout")
	}
	waitClosed(t, pc.raw.Closed(), "the stale connection to be closed")
}

// At most maxIdle connections per endpoint stay idle; the oldest go, and
// the newest is reused first.
func TestH1MaxIdle(t *testing.T) {
	up := hanguptest.NewUpstream(t, hanguptest.Respond(200, "hello"))
	tr := newH1(t, 2, 0)
	var l traceLog
	var open []*http.Response
	for range 3 {
		res, err := tr.RoundTrip(newRequest(t, t.Context(), &l, "GET", up.URL, nil))
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, res)
	}
	conns := make([]*Conn, 3)
	for i := range 3 {
		conns[i] = Unwrap(l.conns[i].Conn)
	}
	for _, res := range open {
		io.ReadAll(res.Body)
		res.Body.Close()
	}
	waitClosed(t, conns[0].Closed(), "the oldest idle connection to be closed")
	// Held at once, the two requests take the newest idle first.
	open = open[:0]
	for i, want := range []int{2, 1} {
		res, err := tr.RoundTrip(newRequest(t, t.Context(), &l, "GET", up.URL, nil))
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, res)
		if got := Unwrap(l.lastConn(t).Conn); got != conns[want] {
			t.Errorf("request %d reused %p, want the newest idle, %d: %p", i, got, want, conns[want])
		}
	}
	for _, res := range open {
		io.ReadAll(res.Body)
		res.Body.Close()
	}
	if n := up.Accepted(); n != 3 {
		t.Errorf("upstream accepted %d connections, want 3", n)
	}
}

// slowBody returns a request body whose source never sends: its reads wait
// until it is closed.
func slowBody() io.Reader {
	pr, _ := io.Pipe()
	return pr
}

// endless is a request body that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

// Rule R1: when the request's context is done, in whatever phase, the
// connection is closed at once, the upstream sees it end, and the error
// carries the context's cause.
func TestH1CancelClosesConn(t *testing.T) {
	type phase struct {
		name string
		// handle serves the upstream: it signals ready once the
		// exchange is in the phase, then waits for the close.
		handle func(c *hanguptest.ServerConn, ready chan<- struct{})
		https  bool
		body   io.Reader
		// readBody: cancel while reading the response body.
		readBody bool
	}
	waitClose := func(c *hanguptest.ServerConn) { c.WaitPeerClose(hanguptest.Timeout) }
	phases := []phase{
		{name: "connect", https: true, handle: func(c *hanguptest.ServerConn, ready chan<- struct{}) {
			close(ready) // TCP accepted; the TLS handshake never completes
			waitClose(c)
		}},
		{name: "send_request", body: endless{}, handle: func(c *hanguptest.ServerConn, ready chan<- struct{}) {
			if _, err := c.ReadRequest(); err != nil {
				return
			}
			close(ready) // the body is not read: the transport's write blocks
			waitClose(c)
		}},
		{name: "send_request, slow body", body: slowBody(), handle: func(c *hanguptest.ServerConn, ready chan<- struct{}) {
			if _, err := c.ReadRequest(); err != nil {
				return
			}
			close(ready) // the body's source sends nothing: the transport waits on it
			waitClose(c)
		}},
		{name: "await_headers", handle: func(c *hanguptest.ServerConn, ready chan<- struct{}) {
			if _, err := c.ReadRequest(); err != nil {
				return
			}
			close(ready)
			waitClose(c)
		}},
		{name: "await_headers, body sent", body: strings.NewReader("payload"), handle: func(c *hanguptest.ServerConn, ready chan<- struct{}) {
			req, err := c.ReadRequest()
			if err != nil {
				return
			}
			if _, err := io.ReadAll(req.Body); err != nil {
				return
			}
			close(ready)
			waitClose(c)
		}},
		{name: "stream_response", readBody: true, handle: func(c *hanguptest.ServerConn, ready chan<- struct{}) {
			if _, err := c.ReadRequest(); err != nil {
				return
			}
			c.Write("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nfirst")
			close(ready)
			waitClose(c)
		}},
	}
	for _, ph := range phases {
		t.Run(ph.name, func(t *testing.T) {
			ready := make(chan struct{})
			up := hanguptest.NewUpstream(t, func(c *hanguptest.ServerConn) { ph.handle(c, ready) })
			d := newDialer(nil)
			scheme := "http"
			if ph.https {
				d, scheme = newDialer(&tls.Config{InsecureSkipVerify: true}), "https"
			}
			tr := newH1Transport(d, 0, 0)
			defer tr.Close()
			cause := errors.New("the caller hung up")
			ctx, cancel := context.WithCancelCause(t.Context())
			method := "GET"
			if ph.body != nil {
				method = "POST"
			}
			req := newRequest(t, ctx, nil, method, scheme+"://"+up.Addr+"/", ph.body)
			type result struct {
				res *http.Response
				err error
			}
			done := make(chan result, 1)
			go func() {
				res, err := tr.RoundTrip(req)
				if err == nil && ph.readBody {
					buf := make([]byte, 5)
					if _, err = io.ReadFull(res.Body, buf); err == nil {
						done <- result{res, nil} // in the body now
						_, err = io.ReadAll(res.Body)
						res.Body.Close()
						done <- result{nil, err}
						return
					}
				}
				done <- result{res, err}
			}()
			if ph.readBody {
				if r := <-done; r.err != nil {
					t.Fatal(r.err)
				}
			}
			waitClosed(t, ready, "the exchange to reach "+ph.name)
			sc := <-up.Conns()
			cancel(cause)
			start := time.Now()
			var r result
			select {
			case r = <-done:
			case <-time.After(hanguptest.Timeout):
				t.Fatal("the exchange did not end when cancelled")
			}
			if !errors.Is(r.err, cause) {
				t.Errorf("error %v, want one wrapping the cause", r.err)
			}
			waitClosed(t, sc.Done(), "the upstream to see the connection close")
			if rec := sc.Record(); rec.PeerClosed.IsZero() {
				t.Errorf("upstream never saw the close: %+v", rec)
			} else if d := rec.PeerClosed.Sub(start); d > 5*time.Second {
				t.Errorf("upstream saw the close %v after the cancel", d)
			}
			if n := idleConns(tr); n != 0 {
				t.Errorf("%d idle connections after a cancelled exchange", n)
			}
		})
	}
}

// A chunked request body goes out with its trailers, announced in the head.
func TestH1ChunkedRequestTrailers(t *testing.T) {
	got := make(chan string, 1)
	up := hanguptest.NewUpstream(t, func(c *hanguptest.ServerConn) {
		req, err := c.ReadRequest()
		if err != nil {
			got <- err.Error()
			return
		}
		announced := fmt.Sprint(req.Trailer) // from the head's Trailer field
		b, err := io.ReadAll(req.Body)
		got <- fmt.Sprintf("%v %q %s %v %v", req.TransferEncoding, b, announced, req.Trailer, err)
		c.Write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		c.WaitPeerClose(hanguptest.Timeout)
	})
	tr := newH1(t, 0, 0)
	body := io.MultiReader(strings.NewReader("hello, "), strings.NewReader("world"))
	req := newRequest(t, t.Context(), nil, "POST", up.URL, body)
	req.ContentLength = -1
	req.Trailer = http.Header{"X-Checksum": {"abc"}}
	mustDo(t, tr, req, "ok")
	want := `[chunked] "hello, world" map[X-Checksum:[]] map[X-Checksum:[abc]] <nil>`
	if g := <-got; g != want {
		t.Errorf("upstream got %s\nwant            %s", g, want)
	}
}

// How request bodies are framed: net/http's rules.
func TestH1RequestFraming(t *testing.T) {
	tests := []struct {
		name   string
		method string
		body   io.Reader
		length int64
		want   string // Content-Length and Transfer-Encoding the upstream saw, and the body
	}{
		{"GET no body", "GET", nil, 0, `"" "" ""`},
		{"POST no body", "POST", nil, 0, `"0" "" ""`},
		{"PUT no body", "PUT", nil, 0, `"0" "" ""`},
		{"DELETE no body", "DELETE", nil, 0, `"" "" ""`},
		{"POST known length", "POST", strings.NewReader("abc"), 3, `"3" "" "abc"`},
		{"POST unknown length", "POST", strings.NewReader("abc"), -1, `"" "chunked" "abc"`},
		{"GET empty body of unknown length", "GET", strings.NewReader(""), -1, `"" "" ""`},
		{"GET body of unknown length", "GET", strings.NewReader("abc"), -1, `"" "chunked" "abc"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan string, 1)
			up := hanguptest.NewUpstream(t, func(c *hanguptest.ServerConn) {
				req, err := c.ReadRequest()
				if err != nil {
					return
				}
				b, _ := io.ReadAll(req.Body)
				got <- fmt.Sprintf("%q %q %q", req.Header.Get("Content-Length"), strings.Join(req.TransferEncoding, ","), b)
				c.Write("HTTP/1.1 204 No Content\r\n\r\n")
				c.WaitPeerClose(hanguptest.Timeout)
			})
			tr := newH1(t, 0, 0)
			req := newRequest(t, t.Context(), nil, tt.method, up.URL, nil)
			if tt.body != nil {
				req.Body, req.ContentLength = io.NopCloser(tt.body), tt.length
			}
			if _, _, err := do(t, tr, req); err != nil {
				t.Fatal(err)
			}
			if g := <-got; g != tt.want {
				t.Errorf("upstream saw %s, want %s", g, tt.want)
			}
		})
	}
}

// A body shorter or longer than the request's Content-Length fails the
// request, and the connection is not kept.
func TestH1BodyLengthMismatch(t *testing.T) {
	for _, tt := range []struct {
		name string
		body string
	}{{"short", "ab"}, {"long", "abcd"}} {
		t.Run(tt.name, func(t *testing.T) {
			up := hanguptest.NewUpstream(t, hanguptest.Stall())
			tr := newH1(t, 0, 0)
			req := newRequest(t, t.Context(), nil, "POST", up.URL, nil)
			req.Body, req.ContentLength = io.NopCloser(strings.NewReader(tt.body)), 3
			if _, err := tr.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "Content-Length") {
				t.Fatalf("RoundTrip error %v, want a Content-Length mismatch", err)
			}
			waitClosed(t, (<-up.Conns()).Done(), "the connection to be closed")
		})
	}
}

// Response framing, and when the connection may carry the next request.
func TestH1ResponseFraming(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		response string
		closes   bool // the upstream closes after the response
		status   int
		body     string
		trailer  string
		reused   bool
	}{
		{name: "content-length", response: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "hello", reused: true},
		{name: "chunked", response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n", status: 200, body: "hello", reused: true},
		{name: "chunked with trailer", response: "HTTP/1.1 200 OK\r\nTrailer: X-T\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: v\r\n\r\n", status: 200, body: "hello", trailer: "v", reused: true},
		{name: "close-delimited", response: "HTTP/1.1 200 OK\r\n\r\nhello", closes: true, status: 200, body: "hello"},
		{name: "HEAD", method: "HEAD", response: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", status: 200, reused: true},
		{name: "204", response: "HTTP/1.1 204 No Content\r\n\r\n", status: 204, reused: true},
		{name: "304", response: "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", status: 304, reused: true},
		{name: "extra bytes after the response", response: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA", status: 200, body: "hello"},
		{name: "Connection: close", response: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "hello"},
		{name: "HTTP/1.0", response: "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "hello"},
		{name: "HTTP/1.0 keep-alive", response: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "hello", reused: true},
		{name: "head larger than the read buffer", response: "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("b", 6000) + "\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "hello", reused: true},
		{name: "1xx skipped", response: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "hello", reused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var served atomic.Int32
			up := hanguptest.NewUpstream(t, func(c *hanguptest.ServerConn) {
				for {
					req, err := c.ReadRequest()
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					if served.Add(1) > 1 {
						c.Write("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext")
						continue
					}
					c.Write(tt.response)
					if tt.closes {
						c.CloseFIN()
						return
					}
				}
			})
			tr := newH1(t, 0, 0)
			var l traceLog
			method := tt.method
			if method == "" {
				method = "GET"
			}
			res, body, err := do(t, tr, newRequest(t, t.Context(), &l, method, up.URL, nil))
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tt.status || body != tt.body || res.Trailer.Get("X-T") != tt.trailer {
				t.Errorf("got %d %q trailer %q, want %d %q trailer %q", res.StatusCode, body, res.Trailer.Get("X-T"), tt.status, tt.body, tt.trailer)
			}
			mustDo(t, tr, newRequest(t, t.Context(), &l, "GET", up.URL, nil), "next")
			if got := l.lastConn(t).Reused; got != tt.reused {
				t.Errorf("next request reused the connection: %v, want %v", got, tt.reused)
			}
		})
	}
	t.Run("1xx reported", func(t *testing.T) {
		up := hanguptest.NewUpstream(t, func(c *hanguptest.ServerConn) {
			if _, err := c.ReadRequest(); err == nil {
				c.Write("HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
			}
			c.WaitPeerClose(hanguptest.Timeout)
		})
		var l traceLog
		if _, _, err := do(t, newH1(t, 0, 0), newRequest(t, t.Context(), &l, "GET", up.URL, nil)); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(l.got1xx) != "[103]" {
			t.Errorf("Got1xxResponse %v, want [103]", l.got1xx)
		}
	})
}

// Responses the transport refuses, and upstream hang-ups, give distinct
// errors that hangup.Classify places; the connection is never kept.
func TestH1ResponseErrors(t *testing.T) {
	bigHead := "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Filler: "+strings.Repeat("a", 1000)+"\r\n", 1100) + "\r\n"
	tests := []struct {
		name    string
		answer  func(c *hanguptest.ServerConn)
		want    string // in the error
		kind    hangup.Kind
		is      error
		midBody bool
	}{
		{name: "FIN before any byte", answer: (*hanguptest.ServerConn).CloseFIN, want: "closed the connection before responding", kind: hangup.FIN, is: io.EOF},
		{name: "RST before any byte", answer: (*hanguptest.ServerConn).Reset, want: "read upstream response", kind: hangup.Reset},
		{name: "FIN mid-head", answer: func(c *hanguptest.ServerConn) { c.Write("HTTP/1.1 200 OK\r\nContent-"); c.CloseFIN() },
			want: "read upstream response head", kind: hangup.FIN, is: io.ErrUnexpectedEOF},
		{name: "FIN mid-body", midBody: true, answer: func(c *hanguptest.ServerConn) {
			c.Write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
			c.CloseFIN()
		}, kind: hangup.FIN, is: io.ErrUnexpectedEOF},
		{name: "RST mid-body", midBody: true, answer: func(c *hanguptest.ServerConn) {
			c.Write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
			c.Reset()
		}, kind: hangup.Reset},
		{name: "malformed status", answer: func(c *hanguptest.ServerConn) { c.Write("HTTP/1.1 abc OK\r\n\r\n") },
			want: "malformed upstream response", kind: hangup.KindUnknown},
		{name: "not HTTP", answer: func(c *hanguptest.ServerConn) { c.Write("SSH-2.0-OpenSSH\r\n\r\n") },
			want: "malformed upstream response", kind: hangup.KindUnknown},
		{name: "bad Content-Length", answer: func(c *hanguptest.ServerConn) { c.Write("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n") },
			want: "malformed upstream response", kind: hangup.KindUnknown},
		// Ambiguous framing net/http would accept (and a proxy must not
		// pass on): refused.
		{name: "Content-Length and Transfer-Encoding", answer: func(c *hanguptest.ServerConn) {
			c.Write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
		}, want: "malformed upstream response", kind: hangup.KindUnknown},
		{name: "two different Content-Lengths", answer: func(c *hanguptest.ServerConn) {
			c.Write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
		}, want: "malformed upstream response", kind: hangup.KindUnknown},
		{name: "obs-fold", answer: func(c *hanguptest.ServerConn) {
			c.Write("HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 0\r\n\r\n")
		},
			want: "malformed upstream response", kind: hangup.KindUnknown},
		{name: "bare LF", answer: func(c *hanguptest.ServerConn) { c.Write("HTTP/1.1 200 OK\nContent-Length: 0\n\n") },
			want: "malformed upstream response", kind: hangup.KindUnknown},
		{name: "head over 1 MiB", answer: func(c *hanguptest.ServerConn) { c.Write(bigHead) },
			is: errHeadTooLarge, kind: hangup.KindUnknown},
		{name: "101 unasked", answer: func(c *hanguptest.ServerConn) { c.Write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n") },
			is: errUnexpected101, kind: hangup.KindUnknown},
		{name: "too many 1xx", answer: func(c *hanguptest.ServerConn) { c.Write(strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 6)) },
			is: errTooMany1xx, kind: hangup.KindUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := hanguptest.NewUpstream(t, func(c *hanguptest.ServerConn) {
				if _, err := c.ReadRequest(); err != nil {
					return
				}
				tt.answer(c)
				c.WaitPeerClose(hanguptest.Timeout)
			})
			tr := newH1(t, 0, 0)
			var l traceLog
			res, _, err := do(t, tr, newRequest(t, t.Context(), &l, "GET", up.URL, nil))
			if tt.midBody != (res != nil) {
				t.Fatalf("response %v, error %v: want the failure mid-body: %v", res, err, tt.midBody)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("error %v, want one saying %q (is %v)", err, tt.want, tt.is)
			}
			if k := hangup.Classify(err); k != tt.kind {
				t.Errorf("Classify(%v) = %v, want %v", err, k, tt.kind)
			}
			if l.gotConns() != 1 {
				t.Errorf("%d GotConn: a fresh connection's failure must not be replayed", l.gotConns())
			}
			waitClosed(t, Unwrap(l.lastConn(t).Conn).Closed(), "the connection to be closed")
			if n := idleConns(tr); n != 0 {
				t.Errorf("%d idle connections", n)
			}
		})
	}
}

// Early close of a body closes the connection; the next request dials.
func TestH1BodyCloseEarly(t *testing.T) {
	up := hanguptest.NewUpstream(t, hanguptest.StreamUntilClosed(time.Millisecond))
	tr := newH1(t, 0, 0)
	var l traceLog
	res, err := tr.RoundTrip(newRequest(t, t.Context(), &l, "GET", up.URL, nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := res.Body.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if _, err := res.Body.Read(make([]byte, 1)); !errors.Is(err, errBodyClosed) {
		t.Errorf("Read after Close: %v, want %v", err, errBodyClosed)
	}
	waitClosed(t, (<-up.Conns()).Done(), "the upstream to see the close")
	if n := idleConns(tr); n != 0 {
		t.Errorf("%d idle connections", n)
	}
}

// A request that could split or smuggle a message is refused before any
// byte is written: on a fresh request no connection is even taken, and an
// idle connection stays untouched and reusable.
func TestH1InvalidRequestRejected(t *testing.T) {
	up := hanguptest.NewUpstream(t, hanguptest.Respond(200, "hello"))
	tr := newH1(t, 0, 0)
	var l traceLog
	mustDo(t, tr, newRequest(t, t.Context(), &l, "GET", up.URL, nil), "hello")
	c := Unwrap(l.lastConn(t).Conn)
	written := c.Written()
	tests := []struct {
		name string
		edit func(r *http.Request)
	}{
		{"CRLF in a value", func(r *http.Request) { r.Header.Set("X-A", "a\r\nX-Injected: 1") }},
		{"LF in a value", func(r *http.Request) { r.Header["X-A"] = []string{"a\nb"} }},
		{"CR in a value", func(r *http.Request) { r.Header["X-A"] = []string{"a\rb"} }},
		{"NUL in a value", func(r *http.Request) { r.Header["X-A"] = []string{"a\x00b"} }},
		{"colon in a name", func(r *http.Request) { r.Header["X-A:b"] = []string{"v"} }},
		{"space in a name", func(r *http.Request) { r.Header["X A"] = []string{"v"} }},
		{"empty name", func(r *http.Request) { r.Header[""] = []string{"v"} }},
		{"CRLF in the User-Agent", func(r *http.Request) { r.Header["User-Agent"] = []string{"a\r\n"} }},
		{"CRLF in Host", func(r *http.Request) { r.Host = "a\r\nX: y" }},
		{"space in Host", func(r *http.Request) { r.Host = "a b" }},
		{"CRLF in the query", func(r *http.Request) { r.URL.RawQuery = "a=\r\nX: y" }},
		{"space in the method", func(r *http.Request) { r.Method = "GET /x" }},
		{"bad trailer name", func(r *http.Request) {
			r.Body, r.ContentLength = io.NopCloser(strings.NewReader("x")), -1
			r.Method, r.Trailer = "POST", http.Header{"Content-Length": nil}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var bl traceLog
			req := newRequest(t, t.Context(), &bl, "GET", up.URL, nil)
			tt.edit(req)
			if _, err := tr.RoundTrip(req); err == nil {
				t.Fatal("RoundTrip accepted the request")
			}
			if bl.gotConns() != 0 || c.Written() != written {
				t.Fatalf("a connection was taken (%d) or written to (%d bytes)", bl.gotConns(), c.Written()-written)
			}
		})
	}
	mustDo(t, tr, newRequest(t, t.Context(), &l, "GET", up.URL, nil), "hello")
	if Unwrap(l.lastConn(t).Conn) != c {
		t.Error("the idle connection was not reused after the refused requests")
	}
}

// Header fields go out as given, except the transport's own: a smuggled
// Content-Length or Transfer-Encoding in any spelling is dropped, and an
// empty User-Agent means none.
func TestH1RequestHead(t *testing.T) {
	got := make(chan *http.Request, 1)
	up := hanguptest.NewUpstream(t, func(c *hanguptest.ServerConn) {
		req, err := c.ReadRequest()
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		got <- req
		c.Write("HTTP/1.1 204 No Content\r\n\r\n")
		c.WaitPeerClose(hanguptest.Timeout)
	})
	req := newRequest(t, t.Context(), nil, "POST", up.URL+"/p%20q/r?x=1&y", strings.NewReader("abc"))
	req.Host = "example.com"
	req.Header["User-Agent"] = []string{""}
	req.Header["X-Multi"] = []string{"1", " 2 "}
	req.Header["content-length"] = []string{"99"}
	req.Header["Transfer-encoding"] = []string{"chunked"}
	if _, _, err := do(t, newH1(t, 0, 0), req); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.RequestURI != "/p%20q/r?x=1&y" || r.Host != "example.com" || r.ContentLength != 3 ||
		len(r.TransferEncoding) != 0 || fmt.Sprint(r.Header["X-Multi"]) != "[1 2]" {
		t.Errorf("upstream got %s %s Host %s CL %d TE %v X-Multi %q", r.Method, r.RequestURI, r.Host, r.ContentLength, r.TransferEncoding, r.Header["X-Multi"])
	}
	if _, ok := r.Header["User-Agent"]; ok {
		t.Errorf("User-Agent %q sent", r.Header["User-Agent"])
	}
}

// Rule R6, the transport's part: a request that failed on a reused
// connection before any response byte is sent again on another connection
// when net/http would: nothing of it was written, or it is safe to repeat
// (GET, an Idempotency-Key) and has no body that cannot be had again. A
// POST with a body that was written is not replayed; neither is anything
// that failed on a fresh connection.
func TestH1Replay(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		body     string // "", "once" (no GetBody) or "again" (GetBody)
		key      bool
		replayed bool
	}{
		{"GET", "GET", "", false, true},
		{"HEAD", "HEAD", "", false, true},
		{"POST without body, with Idempotency-Key", "POST", "", true, true},
		{"POST with body and Idempotency-Key, GetBody", "POST", "again", true, true},
		{"POST with body and Idempotency-Key but no GetBody", "POST", "once", true, false},
		{"POST with body", "POST", "once", false, false},
		{"POST with body and GetBody", "POST", "again", false, false},
		{"POST without body", "POST", "", false, false},
		{"DELETE", "DELETE", "", false, false}, // net/http's rule: only GET HEAD OPTIONS TRACE
	}
	for _, tt := range tests {
		for _, withMem := range []bool{false, true} {
			name := tt.name
			if withMem {
				name += ", ResponseMem" // a bodyless request lives in it
			}
			t.Run(name, func(t *testing.T) {
				ctx := t.Context()
				if withMem {
					ctx = memContext(ctx, new(ResponseMem))
				}
				var mu sync.Mutex
				seen := 0 // requests of the method under test that reached the upstream
				up := hanguptest.NewUpstream(t, func(c *hanguptest.ServerConn) {
					for n := 0; ; n++ {
						req, err := c.ReadRequest()
						if err != nil {
							return
						}
						b, _ := io.ReadAll(req.Body)
						if req.URL.Path == "/test" {
							mu.Lock()
							seen++
							if tt.body != "" && string(b) != "payload" {
								t.Errorf("upstream got body %q", b)
							}
							mu.Unlock()
						}
						if n == 1 {
							// The second request on the first connection: the
							// keep-alive race, the upstream closes instead.
							c.CloseFIN()
							return
						}
						c.Write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					}
				})
				tr := newH1(t, 0, 0)
				var l traceLog
				mustDo(t, tr, newRequest(t, ctx, &l, "GET", up.URL+"/warm", nil), "ok")
				var body io.Reader
				switch tt.body {
				case "once":
					body = struct{ io.Reader }{strings.NewReader("payload")} // no GetBody
				case "again":
					body = strings.NewReader("payload") // NewRequest sets GetBody
				}
				req := newRequest(t, ctx, &l, tt.method, up.URL+"/test", body)
				if tt.key {
					req.Header.Set("Idempotency-Key", "k1")
				}
				_, _, err := do(t, tr, req)
				if tt.replayed != (err == nil) {
					t.Fatalf("error %v, want replayed %v", err, tt.replayed)
				}
				if want := map[bool]int{true: 3, false: 2}[tt.replayed]; l.gotConns() != want {
					t.Errorf("%d GotConn, want %d", l.gotConns(), want)
				}
				if err != nil && hangup.Classify(err) != hangup.FIN {
					t.Errorf("Classify(%v) = %v, want fin", err, hangup.Classify(err))
				}
				mu.Lock()
				defer mu.Unlock()
				if want := map[bool]int{true: 2, false: 1}[tt.replayed]; seen != want {
					t.Errorf("upstream saw the request %d times, want %d", seen, want)
				}
			})
		}
	}
}

// The replay decision itself, fact by fact.
func TestH1ShouldReplay(t *testing.T) {
	get := &h1Request{replayable: true}
	post := &h1Request{}
	postRead := &h1Request{bodyRead: true, req: &http.Request{}}
	cancelled := &canceledError{cause: context.Canceled}
	tests := []struct {
		name   string
		r      *h1Request
		reused bool
		f      failure
		want   bool
	}{
		{"fresh connection", get, false, failure{awaiting: true, written: true}, false},
		{"nothing written", post, true, failure{}, true},
		{"nothing written, body read", postRead, true, failure{}, true}, // rewind decides
		{"nothing written, body failed", post, true, failure{err: &bodyReadError{io.ErrUnexpectedEOF}}, false},
		{"written, awaiting, safe", get, true, failure{written: true, awaiting: true}, true},
		{"written, awaiting, unsafe", post, true, failure{written: true, awaiting: true}, false},
		{"write failed midway, safe", get, true, failure{written: true}, false},
		{"response byte came", get, true, failure{written: true, gotByte: true}, false},
		{"cancelled", get, true, failure{written: true, awaiting: true, err: cancelled}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.shouldReplay(tt.reused, &tt.f); got != tt.want {
				t.Errorf("shouldReplay = %v, want %v", got, tt.want)
			}
		})
	}
	if postRead.rewind() {
		t.Error("rewind of a read body without GetBody succeeded")
	}
}

// Pool wiring: an http1 pool sends through the HTTP/1.1 transport, other
// protocols through net/http's; Close closes idle connections and keeps
// none after.
func TestPoolRoundTripper(t *testing.T) {
	for _, tt := range []struct {
		protocol string
		h1       bool
	}{{"", true}, {"http1", true}, {"h2c", false}, {"auto", false}} {
		pc := configPool(tt.protocol)
		p, err := NewPool(&pc)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := p.RoundTripper.(*h1Transport); ok != tt.h1 {
			t.Errorf("protocol %q: RoundTripper %T", tt.protocol, p.RoundTripper)
		}
		p.Close()
	}
	up := hanguptest.NewUpstream(t, hanguptest.Respond(200, "hello"))
	pc := configPool("http1")
	p, err := NewPool(&pc)
	if err != nil {
		t.Fatal(err)
	}
	var l traceLog
	mustDo(t, p.RoundTripper, newRequest(t, t.Context(), &l, "GET", up.URL, nil), "hello")
	res, err := p.RoundTripper.RoundTrip(newRequest(t, t.Context(), &l, "GET", up.URL, nil))
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	io.ReadAll(res.Body)
	res.Body.Close()
	waitClosed(t, Unwrap(l.lastConn(t).Conn).Closed(), "the connection to close at the end of its request")
	if n := idleConns(p.h1); n != 0 {
		t.Errorf("%d idle connections after Close", n)
	}
}

func configPool(protocol string) config.Pool {
	return config.Pool{Name: "p", Protocol: protocol, Endpoints: weighted(1)}
}

// alive tells a live idle connection from one the upstream closed, reset
// or wrote to unasked.
func TestH1Alive(t *testing.T) {
	needAlive(t)
	for _, tt := range []struct {
		name string
		peer func(c net.Conn)
		want bool
	}{
		{"idle", func(net.Conn) {}, true},
		{"FIN", func(c net.Conn) { c.(*net.TCPConn).CloseWrite() }, false},
		{"RST", func(c net.Conn) { c.(*net.TCPConn).SetLinger(0); c.Close() }, false},
		{"unasked bytes", func(c net.Conn) { c.Write([]byte("HTTP/1.1 408 Request Timeout\r\n\r\n")) }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			s, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			pc := newH1Conn(nil, connKey{}, newConn(c))
			defer pc.close()
			tt.peer(s)
			if tt.want {
				if !pc.alive() {
					t.Error("a live connection looks dead")
				}
				return
			}
			eventually(t, "the peer's action arrives", func() bool { return !pc.alive() })
		})
	}
}

// A request that asks for the connection to be closed says so, and the
// connection is not reused.
func TestH1RequestClose(t *testing.T) {
	up := hanguptest.NewUpstream(t, hanguptest.Respond(200, "hello"))
	tr := newH1(t, 0, 0)
	var l traceLog
	req := newRequest(t, t.Context(), &l, "GET", up.URL, nil)
	req.Close = true
	mustDo(t, tr, req, "hello")
	waitClosed(t, (<-up.Conns()).Done(), "the upstream to close as asked") // Respond closes after Connection: close
	if l.putIdle != 0 || idleConns(tr) != 0 {
		t.Errorf("the connection went idle (%d, %d idle)", l.putIdle, idleConns(tr))
	}
}

// No goroutine works for an exchange but the caller's: while a request
// awaits its response, no other goroutine runs transport code (net/http's
// would show a read loop and a write loop).
func TestH1NoGoroutines(t *testing.T) {
	up := hanguptest.NewUpstream(t, hanguptest.Stall())
	tr := newH1(t, 0, 0)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := tr.RoundTrip(newRequest(t, ctx, nil, "GET", up.URL, nil))
		done <- err
	}()
	sc := <-up.Conns()
	waitClosed(t, sc.FirstRequest(), "the request at the upstream")
	buf := make([]byte, 1<<20)
	stacks := strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n")
	var ours []string
	for _, s := range stacks {
		if strings.Contains(s, "internal/upstream.(*h1") {
			ours = append(ours, s)
		}
	}
	cancel()
	<-done
	if len(ours) != 1 {
		t.Errorf("%d goroutines run transport code, want the caller's alone:\n%s", len(ours), strings.Join(ours, "\n\n"))
	}
}

// An upstream that answers before it has read the whole body (a 413, say)
// and closes: the answer is returned rather than the write's error, as
// net/http's transport does.
func TestH1EarlyResponse(t *testing.T) {
	up := hanguptest.NewUpstream(t, func(c *hanguptest.ServerConn) {
		if _, err := c.ReadRequest(); err != nil {
			return
		}
		c.Write("HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Length: 8\r\n\r\ntoo big\n")
		c.Conn.Close() // the unread body turns this into an RST
	})
	tr := newH1(t, 0, 0)
	var l traceLog
	req := newRequest(t, t.Context(), &l, "POST", up.URL, io.LimitReader(endless{}, 64<<20))
	req.ContentLength = 64 << 20
	res, body, err := do(t, tr, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusRequestEntityTooLarge || body != "too big\n" {
		t.Errorf("got %d %q, want the 413", res.StatusCode, body)
	}
	// The body goes out on its own goroutine; if it was inside a read of
	// the body when the response ended, it is abandoned and reports
	// nothing (see bodyWriter).
	if len(l.wrote) > 1 || len(l.wrote) == 1 && l.wrote[0] == nil {
		t.Errorf("WroteRequest errors %v, want at most the write's failure", l.wrote)
	}
}

// Close may come from another goroutine while a Read waits: the Read ends
// at once, and the connection is closed, not reused.
func TestH1BodyCloseDuringRead(t *testing.T) {
	up := hanguptest.NewUpstream(t, func(c *hanguptest.ServerConn) {
		if _, err := c.ReadRequest(); err != nil {
			return
		}
		c.Write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst")
		c.WaitPeerClose(hanguptest.Timeout)
	})
	tr := newH1(t, 0, 0)
	res, err := tr.RoundTrip(newRequest(t, t.Context(), nil, "GET", up.URL, nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(res.Body, make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := res.Body.Read(make([]byte, 10))
		readErr <- err
	}()
	sc := <-up.Conns()
	res.Body.Close()
	select {
	case err := <-readErr:
		if err == nil {
			t.Error("Read after a concurrent Close returned no error")
		}
	case <-time.After(hanguptest.Timeout):
		t.Fatal("Read did not end when the body was closed")
	}
	waitClosed(t, sc.Done(), "the upstream to see the close")
	if _, err := res.Body.Read(make([]byte, 1)); !errors.Is(err, errBodyClosed) {
		t.Errorf("Read after Close: %v, want %v", err, errBodyClosed)
	}
	if n := idleConns(tr); n != 0 {
		t.Errorf("%d idle connections", n)
	}
}
