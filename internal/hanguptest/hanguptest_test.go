package hanguptest_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-proxy/switchboard/internal/hanguptest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const getRequest = "GET / HTTP/1.1\r\nHost: upstream\r\n\r\n"

// recv receives from ch within hanguptest.Timeout or fails the test.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(hanguptest.Timeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// finalRecord waits for the Upstream's first connection to finish and
// returns its record.
func finalRecord(t *testing.T, u *hanguptest.Upstream) hanguptest.ConnRecord {
	t.Helper()
	sc := recv(t, u.Conns(), "upstream connection")
	recv(t, sc.Done(), "upstream handler to return")
	return sc.Record()
}

func wantClose(hangUpWithRST bool) hanguptest.PeerClose {
	if hangUpWithRST {
		return hanguptest.PeerRST
	}
	return hanguptest.PeerFIN
}

func TestPeerCloseString(t *testing.T) {
	for pc, want := range map[hanguptest.PeerClose]string{
		hanguptest.PeerFIN: "fin",
		hanguptest.PeerRST: "reset",
		0:                  "PeerClose(0)",
	} {
		if got := pc.String(); got != want {
			t.Errorf("PeerClose(%d).String() = %q, want %q", int(pc), got, want)
		}
	}
}

// TestRespond shows a keep-alive upstream serving a Go client, and
// recording the client's FIN when it closes its idle connection.
func TestRespond(t *testing.T) {
	u := hanguptest.NewUpstream(t, hanguptest.Respond(http.StatusTeapot, "tea\n"))
	tr := &http.Transport{}
	client := &http.Client{Transport: tr, Timeout: hanguptest.Timeout}
	for _, body := range []string{"", "twelve bytes"} {
		resp, err := client.Post(u.URL, "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusTeapot || string(got) != "tea\n" {
			t.Fatalf("response = %d %q, %v; want 418 \"tea\\n\"", resp.StatusCode, got, err)
		}
	}
	tr.CloseIdleConnections()

	rec := finalRecord(t, u)
	if u.Accepted() != 1 || rec.Requests != 2 || rec.BodyBytes != 12 {
		t.Errorf("accepted %d conns, record %+v; want 1 conn, 2 requests, 12 body bytes", u.Accepted(), rec)
	}
	if rec.PeerClose != hanguptest.PeerFIN || rec.Err != nil {
		t.Errorf("record %+v; want the client's FIN and no error", rec)
	}
	if recs := u.Records(); len(recs) != 1 || recs[0] != rec {
		t.Errorf("Records() = %+v, want [%+v]", recs, rec)
	}
}

// TestHangUpBeforeHeaders shows that a FIN reaches the peer as EOF and an
// RST as ECONNRESET, with no response byte.
func TestHangUpBeforeHeaders(t *testing.T) {
	for _, rst := range []bool{false, true} {
		t.Run(wantClose(rst).String(), func(t *testing.T) {
			u := hanguptest.NewUpstream(t, hanguptest.HangUpBeforeHeaders(rst))
			c := hanguptest.Dial(t, u.Addr)
			if err := c.Send(getRequest); err != nil {
				t.Fatal(err)
			}
			got, pc, err := c.ReadUntilClosed(hanguptest.Timeout)
			if err != nil || pc != wantClose(rst) || len(got) != 0 {
				t.Errorf("ReadUntilClosed = %q, %v, %v; want no bytes, %v", got, pc, err, wantClose(rst))
			}
			if rec := finalRecord(t, u); rec.Requests != 1 || rec.Err != nil {
				t.Errorf("record %+v; want 1 request and no error", rec)
			}
		})
	}
}

// TestHangUpMidBody shows that the peer gets the response head and the
// partial body, and then io.ErrUnexpectedEOF (FIN) or ECONNRESET (RST).
func TestHangUpMidBody(t *testing.T) {
	tests := []struct {
		name     string
		chunked  bool
		rst      bool
		wantBody string
		wantErr  error
	}{
		{"chunked/fin", true, false, strings.Repeat(hanguptest.MidBodyChunk, 3), io.ErrUnexpectedEOF},
		{"chunked/reset", true, true, strings.Repeat(hanguptest.MidBodyChunk, 3), syscall.ECONNRESET},
		{"length/fin", false, false, strings.Repeat("x", hanguptest.MidBodySent), io.ErrUnexpectedEOF},
		{"length/reset", false, true, strings.Repeat("x", hanguptest.MidBodySent), syscall.ECONNRESET},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := hanguptest.NewUpstream(t, hanguptest.HangUpMidBody(tt.chunked, tt.rst))
			c := hanguptest.Dial(t, u.Addr)
			if err := c.Send(getRequest); err != nil {
				t.Fatal(err)
			}
			resp, err := c.ReadResponse(http.MethodGet)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			if string(got) != tt.wantBody || !errors.Is(err, tt.wantErr) {
				t.Errorf("body = %q, %v; want %q, %v", got, err, tt.wantBody, tt.wantErr)
			}
		})
	}
}

// TestStall shows a stalled upstream recording how the caller hung up, after
// waiting for the request to arrive in full.
func TestStall(t *testing.T) {
	for _, rst := range []bool{false, true} {
		t.Run(wantClose(rst).String(), func(t *testing.T) {
			u := hanguptest.NewUpstream(t, hanguptest.Stall())
			c := hanguptest.Dial(t, u.Addr)
			if err := c.Send("POST / HTTP/1.1\r\nHost: upstream\r\nContent-Length: 5\r\n\r\nhello"); err != nil {
				t.Fatal(err)
			}
			sc := recv(t, u.Conns(), "upstream connection")
			recv(t, sc.FirstRequest(), "request to arrive")
			hangUpCaller(c, rst)
			recv(t, sc.Done(), "upstream handler to return")
			rec := sc.Record()
			if rec.PeerClose != wantClose(rst) || rec.PeerClosed.Before(rec.RequestRead) || rec.BodyBytes != 5 || rec.Err != nil {
				t.Errorf("record %+v; want %v after the request, 5 body bytes, no error", rec, wantClose(rst))
			}
		})
	}
}

func hangUpCaller(c *hanguptest.Caller, rst bool) {
	if rst {
		c.Reset()
		return
	}
	c.CloseFIN()
}

// TestStreamUntilClosed shows a streaming upstream recording the caller's
// reset and the write that failed because of it.
func TestStreamUntilClosed(t *testing.T) {
	u := hanguptest.NewUpstream(t, hanguptest.StreamUntilClosed(time.Millisecond))
	c := hanguptest.Dial(t, u.Addr)
	if err := c.Send(getRequest); err != nil {
		t.Fatal(err)
	}
	resp, err := c.ReadResponse(http.MethodGet)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "0\n" {
		t.Fatalf("first line = %q, %v; want \"0\\n\"", line, err)
	}
	c.Reset()

	rec := finalRecord(t, u)
	if rec.PeerClose != hanguptest.PeerRST || rec.Writes < 1 || rec.WriteFailed.Before(rec.PeerClosed) || rec.Err != nil {
		t.Errorf("record %+v; want a reset, then a failed write, no error", rec)
	}
}

// TestCallerTimeout shows that ReadUntilClosed gives up after its duration.
func TestCallerTimeout(t *testing.T) {
	u := hanguptest.NewUpstream(t, hanguptest.Stall())
	c := hanguptest.Dial(t, u.Addr)
	if err := c.Send(getRequest); err != nil {
		t.Fatal(err)
	}
	if _, pc, err := c.ReadUntilClosed(10 * time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) || pc != 0 {
		t.Errorf("ReadUntilClosed on a stalled upstream = %v, %v; want a deadline error", pc, err)
	}
}

// mode is one way to serve a Go upstream; every Recorder case runs in each.
type mode struct {
	name  string
	proto string
	start func(testing.TB, http.Handler) *httptest.Server
}

var modes = []mode{
	{"h1", "HTTP/1.1", newServer},
	{"h2", "HTTP/2.0", func(t testing.TB, h http.Handler) *httptest.Server { return hanguptest.NewTLSServer(t, h, true) }},
	{"h2c", "HTTP/2.0", hanguptest.NewH2CServer},
}

// newServer starts a plain HTTP/1.1 httptest server, closed like the
// package's servers.
func newServer(t testing.TB, h http.Handler) *httptest.Server {
	s := httptest.NewServer(h)
	t.Cleanup(func() {
		s.CloseClientConnections()
		s.Close()
		s.Client().CloseIdleConnections()
	})
	return s
}

func runModes(t *testing.T, f func(t *testing.T, m mode)) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { f(t, m) })
	}
}

// TestRecorderCancelWaiting shows the Recorder seeing the request's context
// end when the client cancels while the handler has not answered yet.
func TestRecorderCancelWaiting(t *testing.T) {
	runModes(t, func(t *testing.T, m mode) {
		rec := hanguptest.NewRecorder()
		s := m.start(t, rec.Wrap(hanguptest.SlowHandler(time.Hour)))
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/x", nil)
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() { errc <- doAndDrain(s.Client(), req) }()
		recv(t, rec.Started(), "request to start")
		cancel()
		if err := recv(t, errc, "client to return"); !errors.Is(err, context.Canceled) {
			t.Errorf("client error = %v, want context.Canceled", err)
		}
		got := recv(t, rec.Ended(), "handler to return")
		if got.Proto != m.proto || got.Path != "/x" || got.CtxDone.IsZero() || got.End.Before(got.CtxDone) || got.WritesAfterDone != 0 {
			t.Errorf("record %+v; want %s, ctx done before the end, no writes after", got, m.proto)
		}
	})
}

// TestRecorderCancelStreaming shows the Recorder seeing the request's
// context end when the client cancels in the middle of a streamed body.
func TestRecorderCancelStreaming(t *testing.T) {
	runModes(t, func(t *testing.T, m mode) {
		rec := hanguptest.NewRecorder()
		s := m.start(t, rec.Wrap(hanguptest.StreamHandler(time.Hour)))
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/x", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body := bufio.NewReader(resp.Body)
		if line, err := body.ReadString('\n'); err != nil || line != "0\n" {
			t.Fatalf("first line = %q, %v; want \"0\\n\"", line, err)
		}
		cancel()
		// The rest may read as canceled, or, over TLS, as a clean end: the
		// server can answer the client's close_notify before the socket closes.
		_, _ = io.Copy(io.Discard, body)
		got := recv(t, rec.Ended(), "handler to return")
		if got.Proto != m.proto || got.CtxDone.IsZero() || got.End.Before(got.CtxDone) || got.WritesAfterDone != 0 {
			t.Errorf("record %+v; want %s, ctx done before the end, no writes after", got, m.proto)
		}
	})
}

func doAndDrain(c *http.Client, req *http.Request) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// TestRecorderHandlers shows the finite canned handlers end to end.
func TestRecorderHandlers(t *testing.T) {
	runModes(t, func(t *testing.T, m mode) {
		rec := hanguptest.NewRecorder()
		mux := http.NewServeMux()
		mux.Handle("/echo", hanguptest.EchoHandler())
		mux.Handle("/sse", hanguptest.SSEHandler(3, time.Millisecond))
		mux.Handle("/slow", hanguptest.SlowHandler(time.Millisecond))
		s := m.start(t, rec.Wrap(mux))

		for _, tt := range []struct{ method, path, body, want string }{
			{http.MethodPost, "/echo", "hello, upstream", "hello, upstream"},
			{http.MethodGet, "/sse", "", "data: 0\n\ndata: 1\n\ndata: 2\n\n"},
			{http.MethodGet, "/slow", "", "slow\n"},
		} {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, s.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := s.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(got) != tt.want {
				t.Errorf("%s %s = %q, %v; want %q", tt.method, tt.path, got, err, tt.want)
			}
			end := recv(t, rec.Ended(), "handler to return")
			if end.Path != tt.path || end.BodyBytes != int64(len(tt.body)) || !end.CtxDone.IsZero() {
				t.Errorf("record %+v; want %s with %d body bytes, ctx not done", end, tt.path, len(tt.body))
			}
		}
		if n := len(rec.Records()); n != 3 {
			t.Errorf("Records() has %d records, want 3", n)
		}
	})
}

// TestNodeOK shows a Node upstream answering a Go client and reporting it.
func TestNodeOK(t *testing.T) {
	n := hanguptest.StartNode(t, hanguptest.NodeOptions{})
	client := &http.Client{Transport: &http.Transport{}, Timeout: hanguptest.Timeout}
	t.Cleanup(client.CloseIdleConnections)
	resp, err := client.Get(n.URL + "/ok")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || string(got) != "ok\n" {
		t.Fatalf("GET /ok = %d %q, %v", resp.StatusCode, got, err)
	}
	req := n.WaitEvent(t, func(e hanguptest.NodeEvent) bool { return e.Event == "request" }, hanguptest.Timeout)
	end := n.WaitEvent(t, func(e hanguptest.NodeEvent) bool { return e.ID == req.ID && e.Event != "request" }, hanguptest.Timeout)
	if req.Method != http.MethodGet || req.Path != "/ok" || end.Event != "finished" || end.Status != http.StatusOK {
		t.Errorf("events %+v, %+v; want GET /ok finished with 200", req, end)
	}
	if since := time.Since(end.Time()); since < 0 || since > time.Minute {
		t.Errorf("finished event time %v is %v from now; want a recent past time", end.Time(), since)
	}
}

// TestNodeAbortedOnReset shows Node reporting a caller's reset as an abort,
// without writing to the dead response.
func TestNodeAbortedOnReset(t *testing.T) {
	n := hanguptest.StartNode(t, hanguptest.NodeOptions{})
	c := hanguptest.Dial(t, n.Addr)
	if err := c.Send("GET /slow?ms=5000 HTTP/1.1\r\nHost: node\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	req := n.WaitEvent(t, func(e hanguptest.NodeEvent) bool { return e.Event == "request" }, hanguptest.Timeout)
	c.Reset()
	end := n.WaitEvent(t, func(e hanguptest.NodeEvent) bool { return e.ID == req.ID && e.Event != "request" }, hanguptest.Timeout)
	if req.Path != "/slow" || end.Event != "aborted" || end.Writes != 0 || end.WritesAfterAbort != 0 {
		t.Errorf("events %+v, %+v; want /slow aborted with no writes", req, end)
	}
}

// TestNodeHangUps shows the Node routes that hang up, seen by a raw caller.
func TestNodeHangUps(t *testing.T) {
	n := hanguptest.StartNode(t, hanguptest.NodeOptions{})
	tests := []struct {
		path     string
		wantHead bool
		wantBody string
		want     hanguptest.PeerClose
	}{
		{"/reset-before-headers", false, "", hanguptest.PeerFIN},
		{"/reset-before-headers?rst=1", false, "", hanguptest.PeerRST},
		{"/close-mid-body?mode=chunked", true, "a\r\n0123456789\r\na\r\n0123456789\r\na\r\n0123456789\r\n", hanguptest.PeerFIN},
		{"/close-mid-body?mode=length&rst=1", true, strings.Repeat("x", 100), hanguptest.PeerRST},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			c := hanguptest.Dial(t, n.Addr)
			if err := c.Send("GET " + tt.path + " HTTP/1.1\r\nHost: node\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			got, pc, err := c.ReadUntilClosed(hanguptest.Timeout)
			head, body, _ := strings.Cut(string(got), "\r\n\r\n")
			if err != nil || pc != tt.want || (head != "") != tt.wantHead || body != tt.wantBody {
				t.Errorf("ReadUntilClosed = %q, %v, %v; want body %q, %v", got, pc, err, tt.wantBody, tt.want)
			}
			end := n.WaitEvent(t, func(e hanguptest.NodeEvent) bool { return e.Event == "destroyed" }, hanguptest.Timeout)
			if end.WritesAfterAbort != 0 {
				t.Errorf("event %+v; want no writes after abort", end)
			}
		})
	}
}

// TestNodeRoutes shows the Node routes that answer, seen by a Go client.
func TestNodeRoutes(t *testing.T) {
	n := hanguptest.StartNode(t, hanguptest.NodeOptions{})
	client := &http.Client{Transport: &http.Transport{}, Timeout: hanguptest.Timeout}
	t.Cleanup(client.CloseIdleConnections)
	tests := []struct {
		method, path, body string
		wantStatus         int
		want               string
		wantTrailer        string
	}{
		{http.MethodPost, "/echo", "echo me", 200, "echo me", ""},
		{http.MethodGet, "/stream?interval=1&n=3", "", 200, "0\n1\n2\n", ""},
		{http.MethodGet, "/sse?interval=1&n=2", "", 200, "data: 0\n\ndata: 1\n\n", ""},
		{http.MethodGet, "/slow?ms=1", "", 200, "slow\n", ""},
		{http.MethodGet, "/trailers", "", 200, "hello\n", "abc"},
		{http.MethodGet, "/nowhere", "", 404, "not found\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, n.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != tt.wantStatus || string(got) != tt.want || resp.Trailer.Get("X-Checksum") != tt.wantTrailer {
				t.Errorf("%s %s = %d %q (trailer %q), %v; want %d %q (trailer %q)",
					tt.method, tt.path, resp.StatusCode, got, resp.Trailer.Get("X-Checksum"), err, tt.wantStatus, tt.want, tt.wantTrailer)
			}
			end := n.WaitEvent(t, func(e hanguptest.NodeEvent) bool { return e.Event == "finished" }, hanguptest.Timeout)
			if end.Bytes != int64(len(tt.body)) || end.Status != tt.wantStatus {
				t.Errorf("event %+v; want finished %d with %d body bytes", end, tt.wantStatus, len(tt.body))
			}
		})
	}
}

// TestNodeKeepAliveTimeout shows Node closing an idle keep-alive connection
// with a FIN after its keepAliveTimeout: the race R6 is about.
func TestNodeKeepAliveTimeout(t *testing.T) {
	n := hanguptest.StartNode(t, hanguptest.NodeOptions{KeepAliveTimeout: 20 * time.Millisecond})
	c := hanguptest.Dial(t, n.Addr)
	if err := c.Send("GET /ok HTTP/1.1\r\nHost: node\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := c.ReadResponse(http.MethodGet)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	if got, pc, err := c.ReadUntilClosed(hanguptest.Timeout); err != nil || pc != hanguptest.PeerFIN || len(got) != 0 {
		t.Errorf("idle connection: ReadUntilClosed = %q, %v, %v; want a FIN", got, pc, err)
	}
}
