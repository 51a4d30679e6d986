package hanguptest

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// NewH2CServer starts an httptest server on 127.0.0.1 that speaks only
// unencrypted HTTP/2 with prior knowledge (h2c), so a peer speaking HTTP/1.1
// to it fails loudly. Its Client speaks h2c too. In t.Cleanup it closes all
// client connections, which ends every request's context, and then closes.
func NewH2CServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	s := httptest.NewUnstartedServer(h)
	s.Config.Protocols = &protos
	s.Start()
	s.Client().Transport.(*http.Transport).Protocols = &protos
	t.Cleanup(func() { closeServer(s) })
	return s
}

// NewTLSServer starts an httptest TLS server on 127.0.0.1, offering HTTP/2
// through ALPN if h2 is set and HTTP/1.1 otherwise. Its Client trusts its
// certificate. In t.Cleanup it closes all client connections, which ends
// every request's context, and then closes.
func NewTLSServer(t testing.TB, h http.Handler, h2 bool) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.EnableHTTP2 = h2
	s.StartTLS()
	t.Cleanup(func() { closeServer(s) })
	return s
}

// closeServer closes s without waiting for long-running handlers to notice
// on their own: httptest.Server.Close waits for active requests, and an
// HTTP/2 connection stays active while it is open.
func closeServer(s *httptest.Server) {
	s.CloseClientConnections()
	s.Close()
	s.Client().CloseIdleConnections()
}
