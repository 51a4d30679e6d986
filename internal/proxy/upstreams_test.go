package proxy_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// newH1Server runs h on an HTTP/1.1 loopback server and returns its URL.
func newH1Server(t *testing.T, h http.Handler) string {
	s := httptest.NewServer(h)
	t.Cleanup(func() {
		s.CloseClientConnections()
		s.Close()
	})
	return s.URL
}
