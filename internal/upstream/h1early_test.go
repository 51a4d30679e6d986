package upstream

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/hanguptest"
)

// earlyBound is how long an early answer may take to reach the caller. It
// bounds a hang, not a performance target: without the body writer of its
// own the exchange would wait for the upstream to read a body it never
// reads.
const earlyBound = 5 * time.Second

// answerEarly serves an upstream that reads a request's head, answers with
// answer, and then neither reads the body nor closes the connection until
// the test ends.
func answerEarly(t *testing.T, answer string) *hanguptest.Upstream {
	t.Helper()
	release := make(chan struct{})
	up := hanguptest.NewUpstream(t, func(c *hanguptest.ServerConn) {
		if _, err := c.ReadRequest(); err != nil {
			return
		}
		c.Write(answer)
		<-release
	})
	t.Cleanup(func() { close(release) }) // runs before the upstream's own cleanup
	return up
}

// roundTripWithin runs RoundTrip and fails the test if it takes longer than
// earlyBound.
func roundTripWithin(t *testing.T, tr http.RoundTripper, req *http.Request) *http.Response {
	t.Helper()
	type result struct {
		res *http.Response
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := tr.RoundTrip(req)
		done <- result{res, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("RoundTrip: %v", r.err)
		}
		return r.res
	case <-time.After(earlyBound):
		t.Fatalf("RoundTrip did not return the early answer within %v", earlyBound)
	}
	return nil
}

// within runs f and fails the test if it takes longer than earlyBound.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(earlyBound):
		t.Fatalf("%s took longer than %v", what, earlyBound)
	}
}

// noBodyWriter reports whether no goroutine runs a request body writer.
func noBodyWriter() bool {
	buf := make([]byte, 1<<20)
	return !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "internal/upstream.(*bodyWriter)")
}

// checkEnded checks that an exchange that ended while its body was still
// going out left its connection closed, not idle, and no writer behind.
func checkEnded(t *testing.T, tr *h1Transport, l *traceLog) {
	t.Helper()
	select {
	case <-Unwrap(l.lastConn(t).Conn).Closed():
	default:
		t.Error("the connection is still open after the response ended")
	}
	if n := idleConns(tr); n != 0 || l.putIdle != 0 {
		t.Errorf("the connection went idle (%d idle, %d PutIdleConn)", n, l.putIdle)
	}
	eventually(t, "the body writer returns", noBodyWriter)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.wrote) > 1 || len(l.wrote) == 1 && l.wrote[0] == nil {
		t.Errorf("WroteRequest %v, want at most one report, of a failure", l.wrote)
	}
}

// An upstream that answers before it has read a large body, and then
// neither reads the rest nor closes: the answer comes back at once, while
// the body is still going out, and its end closes the connection, which is
// not reused.
func TestH1EarlyAnswer(t *testing.T) {
	const size = 4 << 20 // more than the sockets buffer
	tests := []struct {
		name   string
		length int64 // the request's ContentLength; -1 sends it chunked
		answer string
		status int
		body   string
	}{
		{"Content-Length body, 413", size, "HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\n\r\ntoo big\n", 413, "too big\n"},
		{"chunked body, 413", -1, "HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\n\r\ntoo big\n", 413, "too big\n"},
		{"Content-Length body, bodyless 401", size, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n", 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := answerEarly(t, tt.answer)
			tr := newH1(t, 0, 0)
			var l traceLog
			req := newRequest(t, t.Context(), &l, "POST", up.URL, io.LimitReader(endless{}, size))
			req.ContentLength = tt.length
			res := roundTripWithin(t, tr, req)
			var body []byte
			var err error
			within(t, "reading and closing the response body", func() {
				body, err = io.ReadAll(res.Body)
				res.Body.Close()
			})
			if err != nil || res.StatusCode != tt.status || string(body) != tt.body {
				t.Errorf("got %d %q, %v; want %d %q", res.StatusCode, body, err, tt.status, tt.body)
			}
			checkEnded(t, tr, &l)
		})
	}
}

// A body that comes slowly and never ends, and an early answer: RoundTrip
// returns the answer, and the response's end, whether read to EOF or
// closed, closes the request body, so its source sees the read side
// closed.
func TestH1EarlyAnswerSlowBody(t *testing.T) {
	for _, readAll := range []bool{false, true} {
		name := map[bool]string{false: "Close", true: "read to EOF"}[readAll]
		t.Run(name, func(t *testing.T) {
			up := answerEarly(t, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 6\r\n\r\nlog in")
			tr := newH1(t, 0, 0)
			pr, pw := io.Pipe()
			fed := make(chan error, 1)
			go func() {
				// A slow source: a piece now and then, for at most 10 s.
				for range 1000 {
					if _, err := pw.Write([]byte("piece")); err != nil {
						fed <- err
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
				fed <- nil
			}()
			var l traceLog
			req := newRequest(t, t.Context(), &l, "POST", up.URL, pr)
			req.ContentLength = -1
			res := roundTripWithin(t, tr, req)
			if res.StatusCode != http.StatusUnauthorized {
				t.Errorf("status %d, want 401", res.StatusCode)
			}
			within(t, "ending the response", func() {
				if readAll {
					if b, err := io.ReadAll(res.Body); string(b) != "log in" || err != nil {
						t.Errorf("body %q, %v", b, err)
					}
				}
				res.Body.Close()
			})
			if err := <-fed; !errors.Is(err, io.ErrClosedPipe) {
				t.Errorf("the body's source got %v, want %v", err, io.ErrClosedPipe)
			}
			checkEnded(t, tr, &l)
		})
	}
}

// A request whose body went out whole before its response ended leaves its
// connection reusable: the next request takes it. The upstream answers
// only once the transport has reported the body written.
func TestH1BodyThenReuse(t *testing.T) {
	wrote := make(chan struct{}, 1)
	up := hanguptest.NewUpstream(t, func(c *hanguptest.ServerConn) {
		for {
			req, err := c.ReadRequest()
			if err != nil {
				return
			}
			if b, err := io.ReadAll(req.Body); string(b) != "payload" || err != nil {
				t.Errorf("upstream got body %q, %v", b, err)
				return
			}
			select {
			case <-wrote:
			case <-time.After(hanguptest.Timeout):
				t.Error("WroteRequest never came")
				return
			}
			c.Write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	tr := newH1(t, 0, 0)
	var l traceLog
	for i, length := range []int64{7, -1, 7} { // Content-Length, chunked, Content-Length
		trace := l.trace()
		logWrote := trace.WroteRequest
		trace.WroteRequest = func(i httptrace.WroteRequestInfo) {
			logWrote(i)
			wrote <- struct{}{}
		}
		ctx := httptrace.WithClientTrace(t.Context(), trace)
		req := newRequest(t, ctx, nil, "POST", up.URL, strings.NewReader("payload"))
		req.ContentLength = length
		mustDo(t, tr, req, "ok")
		if got := l.lastConn(t); got.Reused != (i > 0) {
			t.Errorf("request %d: GotConn Reused %v", i, got.Reused)
		}
	}
	if n := up.Accepted(); n != 1 || l.putIdle != 3 {
		t.Errorf("upstream accepted %d connections, %d PutIdleConn; want 1 and 3", n, l.putIdle)
	}
	if len(l.wrote) != 3 || l.wrote[0] != nil || l.wrote[1] != nil || l.wrote[2] != nil {
		t.Errorf("WroteRequest %v, want three reports without error", l.wrote)
	}
	eventually(t, "the body writer returns", noBodyWriter)
}
