package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-proxy/switchboard/client"
	"github.com/switchboard-proxy/switchboard/hangup"
	"github.com/switchboard-proxy/switchboard/internal/hanguptest"
)

// promptly bounds how long RoundTrip may take to return once the caller's
// context is cancelled. It is generous for a shared 2-core machine, and far
// below the waits the tests cancel (a second or more).
const promptly = 250 * time.Millisecond

var errGaveUp = errors.New("the user pressed stop")

// roundTrip runs a request in the background and returns its outcome.
func roundTrip(tr *client.Transport, req *http.Request) <-chan error {
	done := make(chan error, 1)
	go func() {
		res, err := tr.RoundTrip(req)
		if res != nil {
			res.Body.Close()
		}
		done <- err
	}()
	return done
}

// waitDone waits for RoundTrip's error and says how long after since it came.
func waitDone(t *testing.T, done <-chan error, since time.Time) (time.Duration, error) {
	t.Helper()
	select {
	case err := <-done:
		return time.Since(since), err
	case <-time.After(hanguptest.Timeout):
		t.Fatal("RoundTrip did not return after the caller cancelled")
		return 0, nil
	}
}

// TestCancelDuringBackoff cancels a request while it waits a second to be
// retried (Retry-After: 1): RoundTrip returns at once with the caller's
// cause, and no further attempt reaches the server, even after the wait
// would have ended.
func TestCancelDuringBackoff(t *testing.T) {
	s := newScript(t, respond(503, "busy", "Retry-After: 1"))
	inBackoff := make(chan struct{}, 1)
	tr, _ := newTransport(t, client.Options{OnAttempt: func(a client.AttemptInfo) {
		if a.Retry {
			inBackoff <- struct{}{}
		}
	}})
	ctx, cancel := context.WithCancelCause(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL, nil)
	done := roundTrip(tr, req)
	<-inBackoff
	cancelled := time.Now()
	cancel(errGaveUp)
	took, err := waitDone(t, done, cancelled)
	if took > promptly {
		t.Errorf("RoundTrip returned %v after the cancel", took)
	}
	checkError(t, err, hangup.Caller, []hangup.Phase{hangup.Backoff}, hangup.KindUnknown, 1, "")
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errGaveUp) {
		t.Errorf("error %v does not wrap context.Canceled and the cause", err)
	}
	// Wait out the Retry-After, with room: an attempt that escaped the
	// cancel would have reached the server by then.
	time.Sleep(time.Second + promptly)
	if n := len(s.seen()); n != 1 {
		t.Errorf("server saw %d requests, want 1: an attempt ran after the cancel", n)
	}
	if st := tr.Stats(); st.CallerAborts != 1 || st.Errors != 1 || st.Attempts != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestCancelInFlight cancels a request while the server holds it: the
// attempt is aborted at once (the server sees its connection close), the
// error says the caller cancelled while waiting for the response, and no
// retry follows.
func TestCancelInFlight(t *testing.T) {
	s := newScript(t, stall)
	tr, _ := newTransport(t, fast)
	ctx, cancel := context.WithCancelCause(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL, nil)
	done := roundTrip(tr, req)
	var conn *hanguptest.ServerConn
	select {
	case conn = <-s.Conns():
	case <-time.After(hanguptest.Timeout):
		t.Fatal("the request never reached the server")
	}
	<-conn.FirstRequest()
	cancelled := time.Now()
	cancel(errGaveUp)
	took, err := waitDone(t, done, cancelled)
	if took > promptly {
		t.Errorf("RoundTrip returned %v after the cancel", took)
	}
	checkError(t, err, hangup.Caller, []hangup.Phase{hangup.AwaitHeaders}, hangup.KindUnknown, 1, "")
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errGaveUp) {
		t.Errorf("error %v does not wrap context.Canceled and the cause", err)
	}
	<-conn.Done()
	rec := conn.Record()
	if rec.PeerClosed.IsZero() || rec.PeerClosed.Sub(cancelled) > promptly {
		t.Errorf("server saw the connection close at %v, %v after the cancel", rec.PeerClosed, rec.PeerClosed.Sub(cancelled))
	}
	// The longest backoff of these options is 5ms; wait well past it.
	time.Sleep(promptly)
	if n := s.Accepted(); n != 1 {
		t.Errorf("server accepted %d connections, want 1: an attempt ran after the cancel", n)
	}
}

// TestCancelledBeforeStart sends a request whose context is already done:
// nothing reaches the server, and the body is closed.
func TestCancelledBeforeStart(t *testing.T) {
	s := newScript(t, respond(200, "ok"))
	tr, attempts := newTransport(t, fast)
	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(errGaveUp)
	body := &closeRecorder{}
	req, _ := http.NewRequestWithContext(ctx, "POST", s.URL, body)
	_, err := tr.RoundTrip(req)
	checkError(t, err, hangup.Caller, []hangup.Phase{hangup.PhaseNone}, hangup.KindUnknown, 0, "")
	if !errors.Is(err, errGaveUp) {
		t.Errorf("error %v does not wrap the cause", err)
	}
	if !body.closed {
		t.Error("request body not closed")
	}
	if n := s.Accepted(); n != 0 || len(collect(attempts)) != 0 {
		t.Errorf("%d connections, attempts reported: want none", n)
	}
}

type closeRecorder struct{ closed bool }

func (*closeRecorder) Read([]byte) (int, error) { return 0, errors.New("read after cancel") }
func (c *closeRecorder) Close() error           { c.closed = true; return nil }

// TestDeadline checks the caller's deadline at both ends: a Retry-After that
// would end after it is not waited for (the 503 is returned at once), and a
// server that stalls past it ends in a caller timeout.
func TestDeadline(t *testing.T) {
	t.Run("Retry-After past the deadline", func(t *testing.T) {
		s := newScript(t, respond(503, "busy", "Retry-After: 2"))
		tr, _ := newTransport(t, fast)
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", s.URL, nil)
		start := time.Now()
		res, err := tr.RoundTrip(req)
		if err != nil || res.StatusCode != 503 {
			t.Fatalf("got %v, %v; want the 503", res, err)
		}
		drainClose(t, res)
		if took := time.Since(start); took > promptly {
			t.Errorf("took %v; want the 503 at once", took)
		}
		checkRefusal(t, tr.Stats(), "deadline")
		if n := len(s.seen()); n != 1 {
			t.Errorf("server saw %d requests, want 1", n)
		}
	})
	t.Run("stalled past the deadline", func(t *testing.T) {
		s := newScript(t, stall)
		tr, _ := newTransport(t, fast)
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", s.URL, nil)
		_, err := tr.RoundTrip(req)
		checkError(t, err, hangup.Caller, []hangup.Phase{hangup.AwaitHeaders}, hangup.Timeout, 1, "")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
		}
		if n := len(s.seen()); n != 1 {
			t.Errorf("server saw %d requests, want 1", n)
		}
	})
}

// TestCancelWhileReading cancels a request while its response streams: the
// next read fails at once with a caller error in the stream_response phase,
// and the server sees its connection close.
func TestCancelWhileReading(t *testing.T) {
	u := hanguptest.NewUpstream(t, hanguptest.StreamUntilClosed(10*time.Millisecond))
	tr, _ := newTransport(t, fast)
	ctx, cancel := context.WithCancelCause(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", u.URL, nil)
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if _, err := res.Body.Read(make([]byte, 64)); err != nil {
		t.Fatalf("first read: %v", err)
	}
	cancelled := time.Now()
	cancel(errGaveUp)
	_, err = io.Copy(io.Discard, res.Body)
	if took := time.Since(cancelled); took > promptly {
		t.Errorf("read returned %v after the cancel", took)
	}
	checkError(t, err, hangup.Caller, []hangup.Phase{hangup.StreamResponse}, hangup.KindUnknown, 1, "")
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errGaveUp) {
		t.Errorf("error %v does not wrap context.Canceled and the cause", err)
	}
	c := <-u.Conns()
	<-c.Done()
	if rec := c.Record(); rec.PeerClosed.IsZero() || rec.PeerClosed.Sub(cancelled) > promptly {
		t.Errorf("server saw the close %v after the cancel", rec.PeerClosed.Sub(cancelled))
	}
}
