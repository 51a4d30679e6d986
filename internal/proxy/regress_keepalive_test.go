package proxy_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// Rule R6: the first connection to an endpoint that advertises
// "Keep-Alive: timeout=1" is retired before 1 s, whatever the response.
func TestKeepAliveHintOnBodylessResponse(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
	}{{"with body", "hello"}, {"bodyless 204", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			var closedConns atomic.Int32
			up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Keep-Alive", "timeout=1")
				if tc.body == "" {
					w.WriteHeader(204)
					return
				}
				io.WriteString(w, tc.body)
			}))
			up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateClosed {
					closedConns.Add(1)
				}
			}
			up.Start()
			defer up.Close()
			h := start(t, "", routeOpts{upstream: up.URL})
			send(t, h1Client(t), "GET", h.url("/k"), "")
			time.Sleep(1100 * time.Millisecond) // past retireAfter (750ms) and the hint
			if closedConns.Load() == 0 {
				t.Fatalf("the idle upstream connection is still open after the advertised keep-alive timeout")
			}
		})
	}
}
