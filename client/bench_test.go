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
