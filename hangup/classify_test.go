package hangup_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-proxy/switchboard/hangup"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want hangup.Kind
	}{
		{"nil", nil, hangup.KindNone},
		{"EOF", io.EOF, hangup.FIN},
		{"unexpected EOF", io.ErrUnexpectedEOF, hangup.FIN},
		{"wrapped EOF", fmt.Errorf("read body: %w", io.EOF), hangup.FIN},
		{"closed conn", net.ErrClosed, hangup.FIN},
		{"ECONNRESET", &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, hangup.Reset},
		{"EPIPE", &net.OpError{Op: "write", Err: os.NewSyscallError("write", syscall.EPIPE)}, hangup.Reset},
		{"ECONNABORTED", syscall.ECONNABORTED, hangup.Reset},
		{"ECONNREFUSED", &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, hangup.Refused},
		{"dial error refused", &hangup.DialError{Addr: "x:1", Err: syscall.ECONNREFUSED}, hangup.Refused},
		{"deadline", context.DeadlineExceeded, hangup.Timeout},
		{"os deadline", os.ErrDeadlineExceeded, hangup.Timeout},
		{"our timeout", &hangup.TimeoutError{Phase: hangup.AwaitHeaders, After: time.Second}, hangup.Timeout},
		{"dial timeout", &hangup.DialError{Addr: "x:1", Err: &hangup.TimeoutError{Phase: hangup.Connect}}, hangup.Timeout},
		{"net/http idle close", errors.New("http: server closed idle connection"), hangup.FIN},
		{"net/http broken", errors.New("net/http: HTTP/1.x transport connection broken: unexpected EOF"), hangup.FIN},
		{"h2 stream reset", errors.New("stream error: stream ID 1; INTERNAL_ERROR; received from peer"), hangup.Reset},
		{"h2 conn lost", errors.New("http2: client connection lost"), hangup.FIN},
		{"h2 goaway", errors.New("http2: Transport received GOAWAY from server ErrCode:NO_ERROR"), hangup.FIN},
		{"reset text", errors.New("read tcp 1->2: connection reset by peer"), hangup.Reset},
		{"canceled", context.Canceled, hangup.KindUnknown},
		{"other", errors.New("malformed HTTP response"), hangup.KindUnknown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := hangup.Classify(tc.err); got != tc.want {
				t.Errorf("Classify(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// Real sockets: the errors the kernel gives for a FIN, an RST and a refused
// connect classify as such.
func TestClassifyRealSockets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accept := func() net.Conn {
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// FIN
	c1, _ := net.Dial("tcp", ln.Addr().String())
	s1 := accept()
	s1.Close()
	_, err = c1.Read(make([]byte, 1))
	c1.Close()
	if k := hangup.Classify(err); k != hangup.FIN {
		t.Errorf("FIN read error %v classified %v", err, k)
	}
	// RST
	c2, _ := net.Dial("tcp", ln.Addr().String())
	s2 := accept()
	s2.(*net.TCPConn).SetLinger(0)
	s2.Close()
	_, err = c2.Read(make([]byte, 1))
	c2.Close()
	if k := hangup.Classify(err); k != hangup.Reset {
		t.Errorf("RST read error %v classified %v", err, k)
	}
	// refused
	addr := ln.Addr().String()
	ln.Close()
	_, err = net.Dial("tcp", addr)
	if k := hangup.Classify(err); k != hangup.Refused {
		t.Errorf("refused dial error %v classified %v", err, k)
	}
}

func TestRetrySafe(t *testing.T) {
	cases := []struct {
		name   string
		a      hangup.Attempt
		ok     bool
		reason string
	}{
		{"GET", hangup.Attempt{Method: "GET", BodyReplayable: true}, true, "idempotent_method"},
		{"PUT", hangup.Attempt{Method: "PUT", BodyReplayable: true}, true, "idempotent_method"},
		{"POST", hangup.Attempt{Method: "POST", BodyReplayable: true}, false, "not_idempotent"},
		{"POST with key", hangup.Attempt{Method: "POST", BodyReplayable: true, HasIdempotencyKey: true}, true, "idempotency_key"},
		{"POST never sent", hangup.Attempt{Method: "POST", BodyReplayable: true, NothingWritten: true}, true, "nothing_written"},
		{"GET body streamed", hangup.Attempt{Method: "GET"}, false, "body_not_replayable"},
		{"PATCH", hangup.Attempt{Method: "PATCH", BodyReplayable: true}, false, "not_idempotent"},
		{"POST body streamed", hangup.Attempt{Method: "POST"}, false, "not_idempotent"},
		{"POST never sent, body streamed", hangup.Attempt{Method: "POST", NothingWritten: true}, false, "body_not_replayable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ok, reason := hangup.RetrySafe(tc.a)
			if ok != tc.ok || reason != tc.reason {
				t.Errorf("RetrySafe(%+v) = %v, %q; want %v, %q", tc.a, ok, reason, tc.ok, tc.reason)
			}
		})
	}
}

func TestErrorMessage(t *testing.T) {
	e := &hangup.Error{Side: hangup.Upstream, Phase: hangup.AwaitHeaders, Kind: hangup.Reset,
		Attempts: 3, Elapsed: 1200 * time.Millisecond, Err: syscall.ECONNRESET}
	want := "upstream reset the connection before responding (after 3 attempts over 1.2s): connection reset by peer"
	if e.Error() != want {
		t.Errorf("got %q\nwant %q", e.Error(), want)
	}
	if !errors.Is(e, syscall.ECONNRESET) {
		t.Error("Error does not unwrap to its cause")
	}
}

func TestErrorMessages(t *testing.T) {
	cases := []struct {
		name string
		e    hangup.Error
		want string
	}{
		{"refused, not retried",
			hangup.Error{Side: hangup.Upstream, Phase: hangup.AwaitHeaders, Kind: hangup.Reset, Attempts: 1, NoRetry: "not_idempotent", Err: syscall.ECONNRESET},
			"upstream reset the connection before responding (not retried: not_idempotent): connection reset by peer"},
		{"retried, then gave up",
			hangup.Error{Side: hangup.Upstream, Phase: hangup.Connect, Kind: hangup.Refused, Attempts: 3, Elapsed: 40 * time.Millisecond, NoRetry: "attempts_exhausted", Err: syscall.ECONNREFUSED},
			"upstream refused the connection while connecting (after 3 attempts over 40ms; attempts_exhausted): connection refused"},
		{"caller cancelled during backoff",
			hangup.Error{Side: hangup.Caller, Phase: hangup.Backoff, Kind: hangup.KindUnknown, Attempts: 2, Elapsed: time.Second, Err: context.Canceled},
			"caller cancelled the request while waiting to retry (after 2 attempts over 1s): context canceled"},
		{"caller deadline while waiting",
			hangup.Error{Side: hangup.Caller, Phase: hangup.AwaitHeaders, Kind: hangup.Timeout, Attempts: 1, Err: context.DeadlineExceeded},
			"caller timed out while waiting for the response: context deadline exceeded"},
		{"per-try timeout while sending",
			hangup.Error{Side: hangup.Upstream, Phase: hangup.SendRequest, Kind: hangup.Timeout, Err: &hangup.TimeoutError{Phase: hangup.SendRequest, After: time.Second}},
			"upstream did not answer in time while the request was being sent: request still being sent after 1s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.e.Error(); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}
