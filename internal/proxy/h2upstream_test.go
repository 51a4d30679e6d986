package proxy_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/hanguptest"
)

// An "h2" pool speaks HTTP/2 over TLS to its upstream; a caller's hang-up
// resets the upstream stream, and an upstream stream reset mid-body aborts
// the caller (rules R1 and R4 over an h2 upstream).
func TestH2TLSUpstream(t *testing.T) {
	recd := hanguptest.NewRecorder()
	mux := http.NewServeMux()
	mux.Handle("/slow", recd.Wrap(hanguptest.SlowHandler(time.Minute)))
	mux.Handle("/midbody", abortMidBody(true))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) })
	up := hanguptest.NewTLSServer(t, mux, true)
	h := start(t, "", routeOpts{upstream: up.URL, protocol: "h2",
		poolExtra: "    tls:\n      insecure_skip_verify: true\n"})
	run(t, func(t *testing.T, m mode) {
		res := get(t, m.client(t), h.url("/proto"))
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(body) != "HTTP/2.0" {
			t.Fatalf("upstream saw %q, want HTTP/2.0", body)
		}
		wantAbort(t, m.client(t), h.url("/midbody"))
	})
	c := hanguptest.Dial(t, h.addr)
	c.Send("GET /slow HTTP/1.1\r\nHost: app\r\n\r\n")
	recv(t, recd.Started(), "request at the upstream")
	c.Reset()
	if ended := recv(t, recd.Ended(), "upstream handler to end"); ended.CtxDone.IsZero() {
		t.Fatalf("upstream stream was not reset: %+v", ended)
	}
	wantLog(t, h.logs.next(t, "/slow"), map[string]any{"status": 499, "side": "caller", "kind": "reset", "action": "aborted_upstream"})
}
