package proxy_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/hanguptest"
)

// An HTTP/1.1 upstream that answers an upload early (a 413) and then
// neither reads the rest of the body nor closes: the caller gets the answer
// at once, whether it sends its body as fast as it can or stops sending
// midway; switchboard closes the upstream connection at the answer's end,
// and the caller's, whose body it did not read; and it serves the next
// request.
func TestEarlyAnswerFromUpstream(t *testing.T) {
	// The declared body is longer than anything the sockets' buffers could
	// take (loopback buffers grow to tens of MiB), so the body is never
	// read whole: a fast caller sends until its connection ends.
	const size = 1 << 30
	noRetries := "    retries:\n      max_attempts: 1\n"
	for _, tc := range []struct {
		name  string
		sent  int    // body bytes the caller sends before it waits; -1: until the connection ends
		extra string // route YAML
	}{
		{"fast body", -1, ""},
		{"fast body, no retries", -1, noRetries},
		{"body stops midway", 1000, ""},
		{"body stops midway, no retries", 1000, noRetries},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := make(chan struct{})   // the test wants to know if the upload's connection ended
			release := make(chan struct{}) // the test is over
			upClosed := make(chan error, 1)
			up := hanguptest.NewUpstream(t, func(c *hanguptest.ServerConn) {
				for {
					req, err := c.ReadRequest()
					if err != nil {
						return
					}
					if req.URL.Path != "/upload" {
						io.Copy(io.Discard, req.Body)
						c.Write("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfine")
						continue
					}
					c.Write("HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\n\r\ntoo big\n")
					select {
					case <-check:
					case <-release:
						return
					}
					_, _, err = c.WaitPeerClose(wait)
					upClosed <- err
					return
				}
			})
			t.Cleanup(func() { close(release) }) // before the upstream's cleanup
			h := start(t, "", routeOpts{upstream: up.URL, extra: "    max_request_body: 2GiB\n" + tc.extra})

			c := hanguptest.Dial(t, h.addr)
			sent := make(chan error, 1)
			go func() {
				c.Conn.SetWriteDeadline(time.Now().Add(wait))
				_, err := fmt.Fprintf(c.Conn, "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n", size)
				if tc.sent >= 0 {
					if err == nil {
						_, err = io.WriteString(c.Conn, strings.Repeat("x", tc.sent))
					}
					sent <- err
					return
				}
				chunk := []byte(strings.Repeat("x", 64<<10))
				for err == nil {
					_, err = c.Conn.Write(chunk)
				}
				sent <- err
			}()
			c.Conn.SetReadDeadline(time.Now().Add(wait))
			res, err := http.ReadResponse(c.R, &http.Request{Method: "POST"})
			if err != nil {
				t.Fatalf("no early answer within %v: %v", wait, err)
			}
			body, err := io.ReadAll(res.Body)
			if err != nil || res.StatusCode != http.StatusRequestEntityTooLarge || string(body) != "too big\n" {
				t.Fatalf("got %d %q, %v; want the upstream's 413", res.StatusCode, body, err)
			}
			wantLog(t, h.logs.next(t, "/upload"), map[string]any{"status": 413, "side": "none", "action": "ok"})

			close(check)
			if err := recv(t, upClosed, "the upstream to see its connection end"); err != nil {
				t.Errorf("the upstream's connection did not end: %v", err)
			}
			// Not all the body was read: the caller's connection ends too.
			if _, _, err := c.ReadUntilClosed(wait); err != nil {
				t.Errorf("the caller's connection did not end: %v", err)
			}
			recv(t, sent, "the caller's send to end")

			res, err = h1Client(t).Get(h.url("/next"))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK || string(b) != "fine" {
				t.Errorf("next request: %d %q, want 200 \"fine\"", res.StatusCode, b)
			}
			wantLog(t, h.logs.next(t, "/next"), map[string]any{"status": 200, "side": "none", "action": "ok"})
		})
	}
}
