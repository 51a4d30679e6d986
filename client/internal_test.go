package client

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/switchboard-proxy/switchboard/hangup"
)

func TestNothingWritten(t *testing.T) {
	dialErr := &hangup.DialError{Addr: "a:1", Err: syscall.ECONNREFUSED}
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	readErr := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	cases := []struct {
		name    string
		kind    baseKind
		err     error
		conns   int32
		counted bool  // the connection is a countingConn
		wrote   int64 // bytes it wrote during the attempt
		h2      bool
		want    bool
	}{
		{"typed dial error, unknown base", baseOther, dialErr, 0, false, 0, false, true},
		{"net.Dialer error, unknown base", baseOther, opErr, 0, false, 0, false, true},
		{"no connection, unknown base", baseOther, readErr, 0, false, 0, false, false},
		{"no connection, *http.Transport", baseNetHTTP, readErr, 0, false, 0, false, true},
		{"connection, *http.Transport", baseNetHTTP, readErr, 1, false, 0, false, false},
		{"no connection, own base", baseOwn, readErr, 0, false, 0, false, true},
		{"connection wrote nothing, own base", baseOwn, readErr, 1, true, 0, false, true},
		{"connection wrote, own base", baseOwn, readErr, 1, true, 1, false, false},
		{"HTTP/2 connection, own base", baseOwn, readErr, 1, true, 0, true, false},
		{"connection not counted, own base", baseOwn, readErr, 1, false, 0, false, false},
		{"replayed on a second connection that wrote nothing", baseOwn, readErr, 2, true, 0, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := &try{}
			tr.conns.Store(tc.conns)
			tr.h2.Store(tc.h2)
			if tc.counted {
				c := &countingConn{}
				c.written.Store(100 + tc.wrote)
				tr.written.Store(100)
				tr.conn.Store(c)
			}
			if got := tr.nothingWritten(tc.kind, tc.err); got != tc.want {
				t.Errorf("nothingWritten = %v, want %v", got, tc.want)
			}
		})
	}
}

// unknown hides a reader's type, as a body of unknown length.
type unknown struct{ io.Reader }

type closeCounter struct {
	io.Reader
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }

func TestNewBody(t *testing.T) {
	cases := []struct {
		name       string
		body       string
		length     int64 // ContentLength; -1 unknown
		getBody    bool
		limit      int64
		replayable bool
		unbuffered bool
		sendLength int64
		closed     int // closes of the caller's body by newBody itself
	}{
		{"fits, unknown length", "hello", -1, false, 8, true, false, 5, 1},
		{"fits exactly", "hello", 5, false, 5, true, false, 5, 1},
		{"known length too long", "hello", 5, false, 4, false, true, 5, 0},
		{"unknown length too long", "hello", -1, false, 4, false, true, -1, 0},
		{"GetBody", "hello", 5, true, 1, true, false, 5, 0},
		{"no buffering", "hello", 5, false, -1, false, true, 5, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc := &closeCounter{Reader: unknown{strings.NewReader(tc.body)}}
			req := &http.Request{Method: "PUT", Body: rc, ContentLength: tc.length}
			if tc.getBody {
				req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(tc.body)), nil }
			}
			b, err := newBody(req, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if b.replayable() != tc.replayable || b.unbuffered != tc.unbuffered || b.length != tc.sendLength || rc.closed != tc.closed {
				t.Fatalf("body %+v, closed %d", b, rc.closed)
			}
			attempts := 1
			if tc.replayable {
				attempts = 3
			}
			for i := range attempts {
				r, err := b.take()
				if err != nil {
					t.Fatalf("take %d: %v", i+1, err)
				}
				got, _ := io.ReadAll(r)
				if string(got) != tc.body {
					t.Errorf("attempt %d sent %q", i+1, got)
				}
			}
			if _, err := b.take(); !tc.replayable && !errors.Is(err, errNotReplayable) {
				t.Errorf("take after the only attempt: %v", err)
			}
		})
	}
}

func TestNewBodyReadError(t *testing.T) {
	broken := errors.New("disk on fire")
	rc := &closeCounter{Reader: io.MultiReader(strings.NewReader("he"), errReader{broken})}
	_, err := newBody(&http.Request{Method: "PUT", Body: rc, ContentLength: -1}, 10)
	if !errors.Is(err, broken) || rc.closed != 1 {
		t.Errorf("err %v, closed %d", err, rc.closed)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestIdempotencyKey(t *testing.T) {
	a, b := newIdempotencyKey(), newIdempotencyKey()
	if a == b || len(a) != 36 || a[14] != '4' || !strings.ContainsRune("89ab", rune(a[19])) || strings.Count(a, "-") != 4 {
		t.Errorf("keys %q, %q: want distinct version-4 UUIDs", a, b)
	}
}
