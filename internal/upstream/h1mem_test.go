package upstream

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/switchboard-proxy/switchboard/internal/hanguptest"
)

// memContext returns ctx carrying m for the transport, as
// Pool.RequestContext passes it.
func memContext(ctx context.Context, m *ResponseMem) context.Context {
	return context.WithValue(ctx, responseMemKey{}, m)
}

// One ResponseMem carries request after request: the response and its body
// are built in it, and so is a bodyless request's state (one with a body,
// which a body writer may hold past the exchange, is not). Closing a body
// twice, or reading it after Close, before the next request leaves the next
// response whole, whether the body was read to its end (its connection is
// reused) or closed early (its connection is closed, the next one dials).
func TestH1ResponseMem(t *testing.T) {
	up := hanguptest.NewUpstream(t, hanguptest.Respond(200, "hello"))
	tr := newH1(t, 0, 0)
	var l traceLog
	var m ResponseMem
	ctx := memContext(t.Context(), &m)
	steps := []struct {
		name    string
		body    string // request body; "" for none
		early   bool   // close the response body after one byte
		reused  bool   // the request goes out on an idle connection
		wantErr error  // what a Read after the double Close returns
	}{
		{"first", "", false, false, io.EOF},
		{"reused, closed early", "", true, true, errBodyClosed},
		{"after an early close", "", false, false, io.EOF},
		{"reused", "", false, true, io.EOF},
		// Last: whether its connection goes idle depends on whether its
		// body writer marked the body sent before the response ended.
		{"with a body", "payload", false, true, io.EOF},
	}
	for _, s := range steps {
		var body io.Reader
		method := "GET"
		if s.body != "" {
			body, method = strings.NewReader(s.body), "POST"
		}
		req := newRequest(t, ctx, &l, method, up.URL+"/", body)
		lastReq := m.req.req
		res, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if res != &m.res || res.Body != io.ReadCloser(&m.body) {
			t.Fatalf("%s: response not built in the ResponseMem", s.name)
		}
		if inMem := m.req.req == req; inMem != (s.body == "") || !inMem && m.req.req != lastReq {
			t.Errorf("%s: request state in the ResponseMem %v, want %v", s.name, inMem, s.body == "")
		}
		if got := l.lastConn(t).Reused; got != s.reused {
			t.Errorf("%s: connection reused %v, want %v", s.name, got, s.reused)
		}
		if s.early {
			if _, err := res.Body.Read(make([]byte, 1)); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
		} else if b, err := io.ReadAll(res.Body); err != nil || res.StatusCode != 200 || string(b) != "hello" {
			t.Fatalf("%s: %d %q, %v; want 200 \"hello\"", s.name, res.StatusCode, b, err)
		}
		for range 2 {
			if err := res.Body.Close(); err != nil {
				t.Errorf("%s: Close: %v", s.name, err)
			}
		}
		if _, err := res.Body.Read(make([]byte, 1)); !errors.Is(err, s.wantErr) {
			t.Errorf("%s: Read after Close: %v, want %v", s.name, err, s.wantErr)
		}
	}
	if n := up.Accepted(); n != 2 {
		t.Errorf("upstream accepted %d connections, want 2", n)
	}
}
