package client_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/switchboard-proxy/switchboard/client"
)

// BenchmarkGet measures the Transport's cost per request against a plain
// http.Client, on a loopback keep-alive GET of 13 bytes that succeeds the
// first time (the common case: the Transport's overhead, not retries).
// Compare with benchstat over -count=10: benchstat -col /rt FILE.
func BenchmarkGet(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello, world\n")
	}))
	defer srv.Close()
	plain := http.DefaultTransport.(*http.Transport).Clone()
	retrying := client.NewTransport(client.Options{})
	for _, bc := range []struct {
		name string
		rt   http.RoundTripper
	}{
		{"rt=plain", plain},
		{"rt=client", retrying},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := &http.Client{Transport: bc.rt}
			defer c.CloseIdleConnections()
			b.ReportAllocs()
			for b.Loop() {
				res, err := c.Get(srv.URL)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		})
	}
}

// roundTripFunc is a base RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

var _ http.RoundTripper = roundTripFunc(nil)

// BenchmarkOverhead isolates the Transport's own cost per request from the
// network's: the base answers at once from memory, so the difference between
// rt=plain (the base alone) and rt=client is what the Transport adds (trace
// hooks, the attempt loop, the budget, counters), without the loopback round
// trip whose noise dominates BenchmarkGet on a busy machine.
func BenchmarkOverhead(b *testing.B) {
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
	})
	for _, bc := range []struct {
		name string
		rt   http.RoundTripper
	}{
		{"rt=plain", base},
		{"rt=client", client.NewTransport(client.Options{Base: base})},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req, err := http.NewRequest("GET", "http://example.test/", nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				res, err := bc.rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				res.Body.Close()
			}
		})
	}
}
