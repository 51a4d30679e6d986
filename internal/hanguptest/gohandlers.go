package hanguptest

import (
	"fmt"
	"io"
	"net/http"
	"time"
)

// Canned net/http handlers, to be wrapped by a Recorder. Each stops as soon
// as the request's context is done and never writes to a response whose
// context ended, except in the race between a tick and the abort, which
// RequestRecord.WritesAfterDone then shows.

// SlowHandler returns a handler that answers 200 "slow\n" after d, or
// returns without writing as soon as the request's context is done.
func SlowHandler(d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			_, _ = io.WriteString(w, "slow\n")
		case <-r.Context().Done():
		}
	})
}

// StreamHandler returns a handler that streams a 200 text/plain body, one
// flushed line ("i\n" for i = 0, 1, …) at once and every interval, until the
// request's context is done or a write fails.
func StreamHandler(interval time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		rc := http.NewResponseController(w)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "%d\n", i); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			select {
			case <-tick.C:
			case <-r.Context().Done():
				return
			}
		}
	})
}

// EchoHandler returns a handler that answers 200 with the request body,
// flushing as it reads (full duplex on HTTP/1.1 too), with the request's
// Content-Type.
func EchoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		rc := http.NewResponseController(w)
		// Without full duplex an HTTP/1.1 server consumes the rest of the
		// body before the first write, which would break streaming echo.
		_ = rc.EnableFullDuplex()
		w.WriteHeader(http.StatusOK)
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
				if werr := rc.Flush(); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
}

// SSEHandler returns a handler that sends a text/event-stream of n events
// "data: i\n\n" (i = 0 … n-1), the first at once and then one every
// interval, stopping early when the request's context is done. n = 0 means
// until the context is done.
func SSEHandler(n int, interval time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		rc := http.NewResponseController(w)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; n == 0 || i < n; i++ {
			if i > 0 {
				select {
				case <-tick.C:
				case <-r.Context().Done():
					return
				}
			}
			if _, err := fmt.Fprintf(w, "data: %d\n\n", i); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	})
}
