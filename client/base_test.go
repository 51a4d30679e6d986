package client_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-proxy/switchboard/client"
	"github.com/switchboard-proxy/switchboard/hangup"
	"github.com/switchboard-proxy/switchboard/internal/hanguptest"
)

// wrapper is a RoundTripper the Transport knows nothing about.
type wrapper struct{ http.RoundTripper }

var _ http.RoundTripper = wrapper{}

// TestRefusedWithEveryBase checks that a refused POST is retried — it
// provably wrote nothing — whatever the base RoundTripper: the default, a
// caller's *http.Transport, or an unknown wrapper, all of which report the
// failed dial as a typed error.
func TestRefusedWithEveryBase(t *testing.T) {
	cases := []struct {
		name string
		base func() http.RoundTripper
	}{
		{"default", func() http.RoundTripper { return nil }},
		{"*http.Transport", func() http.RoundTripper { return &http.Transport{} }},
		{"unknown RoundTripper", func() http.RoundTripper { return wrapper{&http.Transport{}} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := fast
			opts.Base = tc.base()
			tr, attempts := newTransport(t, opts)
			req, _ := http.NewRequestWithContext(t.Context(), "POST", "http://"+refusedAddr(t), strings.NewReader("x"))
			_, err := tr.RoundTrip(req)
			checkError(t, err, hangup.Upstream, []hangup.Phase{hangup.Connect}, hangup.Refused, 3, "attempts_exhausted")
			for _, a := range collect(attempts) {
				if !a.NothingWritten || a.Reason == "" {
					t.Errorf("attempt %+v: want nothing written", a)
				}
			}
		})
	}
}

// TestNoConnectionNothingWritten holds the only connection a base transport
// may open (MaxConnsPerHost 1) with a stalled GET, and sends a POST that
// can only wait for it. Its per-try timeout ends each attempt before any
// connection was handed over, so with a *http.Transport base the POST
// provably wrote nothing and is retried; behind an unknown wrapper that
// cannot be known, and the POST is not retried. Either way the server never
// sees the POST.
func TestNoConnectionNothingWritten(t *testing.T) {
	cases := []struct {
		name     string
		wrap     bool
		attempts int
		noRetry  string
	}{
		{"*http.Transport", false, 3, "attempts_exhausted"},
		{"unknown RoundTripper", true, 1, "not_idempotent"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newScript(t, stall)
			base := &http.Transport{MaxConnsPerHost: 1}
			t.Cleanup(base.CloseIdleConnections)
			opts := fast
			opts.Base = base
			if tc.wrap {
				opts.Base = wrapper{base}
			}
			opts.PerTryTimeout = 50 * time.Millisecond
			tr, _ := newTransport(t, opts)

			// The GET holds the connection until the test ends.
			ctx, cancel := context.WithCancel(t.Context())
			get, _ := http.NewRequestWithContext(ctx, "GET", s.URL, nil)
			getDone := roundTrip(client.NewTransport(client.Options{Base: base, MaxAttempts: 1}), get)
			defer func() { cancel(); <-getDone }()
			c := <-s.Conns()
			<-c.FirstRequest()

			post, _ := http.NewRequestWithContext(t.Context(), "POST", s.URL, strings.NewReader("x"))
			_, err := tr.RoundTrip(post)
			checkError(t, err, hangup.Upstream, []hangup.Phase{hangup.Connect}, hangup.Timeout, tc.attempts, tc.noRetry)
			if seen := s.seen(); len(seen) != 1 || seen[0].method != "GET" {
				t.Errorf("server saw %+v; want only the GET", seen)
			}
		})
	}
}

// TestHTTP2 runs the main cases over HTTP/2 (TLS, ALPN) against a Go
// server: a stream reset by the server (RST_STREAM) is retried for a GET
// and not for a POST, a 503 is retried, and a caller's cancel resets the
// stream at once (the server's handler context ends).
func TestHTTP2(t *testing.T) {
	var resets atomic.Int32 // streams still to reset
	var status atomic.Int32 // the status after the resets
	rec := hanguptest.NewRecorder()
	srv := hanguptest.NewTLSServer(t, rec.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/stall" {
			<-r.Context().Done()
			return
		}
		if resets.Add(-1) >= 0 {
			panic(http.ErrAbortHandler) // HTTP/2: RST_STREAM
		}
		w.WriteHeader(int(status.Swap(200)))
	})), true)
	base := srv.Client().Transport.(*http.Transport)
	t.Cleanup(base.CloseIdleConnections)

	cases := []struct {
		name     string
		method   string
		resets   int32
		status   int32
		want     int // status; 0 for an error
		arrivals int
		noRetry  string
	}{
		{"GET reset then answered", "GET", 1, 200, 200, 2, ""},
		{"GET reset every time", "GET", 3, 200, 0, 3, "attempts_exhausted"},
		{"POST reset is not retried", "POST", 1, 200, 0, 1, "not_idempotent"},
		{"GET 503 then answered", "GET", 0, 503, 200, 2, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resets.Store(tc.resets)
			status.Store(tc.status)
			before := len(rec.Records())
			opts := fast
			opts.Base = base
			tr, _ := newTransport(t, opts)
			req, _ := http.NewRequestWithContext(t.Context(), tc.method, srv.URL, strings.NewReader("x"))
			res, err := tr.RoundTrip(req)
			if tc.want != 0 {
				if err != nil || res.StatusCode != tc.want || res.ProtoMajor != 2 {
					t.Fatalf("got %v, %v; want %d over HTTP/2", res, err, tc.want)
				}
				drainClose(t, res)
			} else {
				checkError(t, err, hangup.Upstream, []hangup.Phase{hangup.SendRequest, hangup.AwaitHeaders}, hangup.Reset, tc.arrivals, tc.noRetry)
			}
			if n := len(rec.Records()) - before; n != tc.arrivals {
				t.Errorf("server handled %d requests, want %d", n, tc.arrivals)
			}
		})
	}

	t.Run("cancel resets the stream", func(t *testing.T) {
		tr, _ := newTransport(t, client.Options{Base: base})
		ctx, cancel := context.WithCancelCause(t.Context())
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/stall", nil)
		done := roundTrip(tr, req)
		for r := range rec.Started() {
			if r.Path == "/stall" {
				break
			}
		}
		cancelled := time.Now()
		cancel(errGaveUp)
		_, err := waitDone(t, done, cancelled)
		// HTTP/2 reports the headers written only after flushing them,
		// on another goroutine: the server may see them first.
		checkError(t, err, hangup.Caller, sendBoth, hangup.KindUnknown, 1, "")
		timeout := time.After(hanguptest.Timeout)
		for {
			select {
			case r := <-rec.Ended():
				if r.Path != "/stall" {
					continue
				}
				if r.CtxDone.IsZero() || r.CtxDone.Sub(cancelled) > promptly {
					t.Errorf("handler context ended %v after the cancel", r.CtxDone.Sub(cancelled))
				}
				return
			case <-timeout:
				t.Fatal("handler still running after the cancel")
			}
		}
	})
}
