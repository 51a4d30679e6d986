package proxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkKeepAliveGET is a plain keep-alive GET through switchboard to a
// loopback upstream: the hot path issue 4 measures. Allocations include
// net/http's on both sides; run with -memprofile to see switchboard's own.
func BenchmarkKeepAliveGET(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "hello, world\n")
	}))
	defer up.Close()
	h := start(b, "access_log:\n  path: \"off\"\n", routeOpts{upstream: up.URL})
	for _, target := range []struct{ name, url string }{{"direct", up.URL + "/bench"}, {"switchboard", h.url("/bench")}} {
		b.Run(target.name, func(b *testing.B) { benchGET(b, target.url) })
	}
}

func benchGET(b *testing.B, url string) {
	tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	b.ReportAllocs()
	for b.Loop() {
		res, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
}
