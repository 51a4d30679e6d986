package proxy_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-proxy/switchboard/internal/config"
	"github.com/switchboard-proxy/switchboard/internal/hanguptest"
	"github.com/switchboard-proxy/switchboard/internal/proxy"
)

// Server-sent events reach the caller as they are sent, not when the
// response ends.
func TestStreamingFlushes(t *testing.T) {
	next := make(chan struct{})
	url := newH1Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-next:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: two\n\n")
	}))
	h := start(t, "", routeOpts{upstream: url})
	run(t, func(t *testing.T, m mode) {
		res := get(t, m.client(t), h.url("/events"))
		defer res.Body.Close()
		br := bufio.NewReader(res.Body)
		line, err := br.ReadString('\n')
		if err != nil || line != "data: one\n" {
			t.Fatalf("first event = %q, %v (it must arrive before the second is sent)", line, err)
		}
		next <- struct{}{}
		rest, err := io.ReadAll(br)
		if err != nil || string(rest) != "\ndata: two\n\n" {
			t.Fatalf("rest = %q, %v", rest, err)
		}
	})
}

// Trailers pass through, over HTTP/1.1 chunked encoding and HTTP/2.
func TestTrailers(t *testing.T) {
	url := newH1Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "body")
		w.Header().Set("X-Checksum", "abc")
	}))
	h := start(t, "", routeOpts{upstream: url})
	run(t, func(t *testing.T, m mode) {
		res := get(t, m.client(t), h.url("/trailers"))
		io.ReadAll(res.Body)
		res.Body.Close()
		if got := res.Trailer.Get("X-Checksum"); got != "abc" {
			t.Fatalf("trailer X-Checksum = %q, want abc", got)
		}
	})
}

// Hop-by-hop headers (and those the Connection header names) are not
// forwarded; X-Forwarded-* are set, and incoming ones are believed only
// from trusted proxies.
func TestHeaderHygiene(t *testing.T) {
	url := newH1Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Secret")
		w.Header().Set("X-Secret", "hop")
		w.Header().Set("Keep-Alive", "timeout=5")
		json.NewEncoder(w).Encode(r.Header)
	}))
	cases := []struct {
		name    string
		top     string
		wantXFF string
	}{
		{"untrusted", "", "127.0.0.1"},
		{"trusted", "trusted_proxies: [127.0.0.1]\n", "203.0.113.9, 127.0.0.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, tc.top, routeOpts{upstream: url})
			req, _ := http.NewRequest("GET", h.url("/headers"), nil)
			req.Header.Set("Connection", "X-Drop")
			req.Header.Set("X-Drop", "1")
			req.Header.Set("Proxy-Authorization", "secret")
			req.Header.Set("X-Forwarded-For", "203.0.113.9")
			req.Header.Set("X-Forwarded-Proto", "https")
			res, err := h1Client(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var seen http.Header
			if err := json.NewDecoder(res.Body).Decode(&seen); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"X-Drop", "Proxy-Authorization", "Connection"} {
				if v := seen.Get(k); v != "" {
					t.Errorf("upstream saw hop-by-hop %s: %q", k, v)
				}
			}
			if got := seen.Get("X-Forwarded-For"); got != tc.wantXFF {
				t.Errorf("X-Forwarded-For = %q, want %q", got, tc.wantXFF)
			}
			wantProto := map[string]string{"untrusted": "http", "trusted": "https"}[tc.name]
			if got := seen.Get("X-Forwarded-Proto"); got != wantProto {
				t.Errorf("X-Forwarded-Proto = %q, want %q", got, wantProto)
			}
			if got := seen.Get("X-Forwarded-Host"); got != h.addr {
				t.Errorf("X-Forwarded-Host = %q, want %q", got, h.addr)
			}
			if res.Header.Get("X-Secret") != "" || res.Header.Get("Keep-Alive") != "" {
				t.Errorf("caller got hop-by-hop response headers: %v", res.Header)
			}
		})
	}
}

// Bad requests get the right 4xx and never reach the upstream.
func TestBadRequests(t *testing.T) {
	up := hanguptest.NewUpstream(t, hanguptest.Respond(200, "ok"))
	h := start(t, "", routeOpts{upstream: up.URL, prefix: "/app", extra: "    max_request_body: 1KiB\n"})
	cases := []struct {
		name    string
		request string
		status  int
	}{
		{"oversize header", "GET /app HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("a", 16<<10) + "\r\n\r\n", 431},
		{"body over limit by Content-Length", "POST /app HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n", 413},
		{"chunked body over limit", "POST /app/c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n" + strings.Repeat("x", 0x800) + "\r\n0\r\n\r\n", 413},
		{"malformed request line", "GET /app\r\n\r\n", 400},
		{"bad chunk size", "POST /app HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
		{"two Content-Lengths", "POST /app HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
		{"invalid header name", "GET /app HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n", 400},
		{"no route", "GET /other HTTP/1.1\r\nHost: a\r\n\r\n", 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := hanguptest.Dial(t, h.addr)
			c.Send(tc.request)
			res, err := c.ReadResponse("GET")
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d", res.StatusCode, tc.status)
			}
		})
	}
}

// WebSocket through switchboard, and what each side sees when the other
// hangs up inside the tunnel (rule R1, phase tunnel).
func TestWebSocket(t *testing.T) {
	url := newH1Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	}))
	h := start(t, "", routeOpts{upstream: url})
	c, _, err := websocket.Dial(t.Context(), "ws://"+h.addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Write(t.Context(), websocket.MessageText, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	_, msg, err := c.Read(t.Context())
	if err != nil || string(msg) != "hello" {
		t.Fatalf("echo = %q, %v", msg, err)
	}
	c.Close(websocket.StatusNormalClosure, "bye")
	wantLog(t, h.logs.next(t, "/ws"), map[string]any{"status": 101, "phase": "tunnel"})
}

// A raw Upgrade tunnel: the caller's FIN reaches the upstream as a
// half-close (and the upstream can still answer), the caller's RST reaches
// it as a reset.
func TestTunnelHangUps(t *testing.T) {
	for _, hk := range hangUpKinds {
		t.Run(hk.name, func(t *testing.T) {
			seen := make(chan hanguptest.PeerClose, 1)
			up := hanguptest.NewUpstream(t, func(sc *hanguptest.ServerConn) {
				if _, err := sc.ReadRequest(); err != nil {
					return
				}
				sc.Write("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
				buf := make([]byte, 5)
				if _, err := io.ReadFull(sc.R, buf); err != nil {
					return
				}
				sc.Write(string(buf))
				_, pc, err := sc.WaitPeerClose(wait)
				if err != nil {
					return
				}
				if pc == hanguptest.PeerFIN {
					sc.Write("bye") // half-closed: the upstream may still talk
				}
				seen <- pc
			})
			h := start(t, "", routeOpts{upstream: up.URL})
			c := hanguptest.Dial(t, h.addr)
			c.Send("GET /tunnel HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			res, err := c.ReadResponse("GET")
			if err != nil || res.StatusCode != 101 {
				t.Fatalf("upgrade: %v %v", res, err)
			}
			c.Send("hello")
			buf := make([]byte, 5)
			if _, err := io.ReadFull(c.R, buf); err != nil || string(buf) != "hello" {
				t.Fatalf("echo %q %v", buf, err)
			}
			if hk.rst {
				c.Reset()
			} else {
				c.Conn.(*net.TCPConn).CloseWrite()
			}
			if pc := recv(t, seen, "upstream to see the hang-up"); pc != hk.peer {
				t.Fatalf("upstream saw %v, want %v", pc, hk.peer)
			}
			if !hk.rst {
				rest, _ := io.ReadAll(c.R)
				if string(rest) != "bye" {
					t.Errorf("after half-close the caller read %q, want %q", rest, "bye")
				}
			}
			// The caller sent "hello"; it got the echo, and "bye" after
			// a half-close.
			want := map[string]any{"status": 101, "side": "caller", "phase": "tunnel", "kind": hk.kind,
				"level": "INFO", "action": "ok", "bytes_in": 5, "bytes_out": 8}
			if hk.rst {
				want["action"], want["bytes_out"] = "aborted_upstream", 5
			}
			wantLog(t, h.logs.next(t, "/tunnel"), want)
		})
	}
}

// A tunnel the upstream closes in good order is logged as such, at INFO,
// with the bytes copied each way.
func TestTunnelClosedByUpstream(t *testing.T) {
	up := hanguptest.NewUpstream(t, func(sc *hanguptest.ServerConn) {
		if _, err := sc.ReadRequest(); err != nil {
			return
		}
		sc.Write("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		buf := make([]byte, 11)
		if _, err := io.ReadFull(sc.R, buf); err != nil {
			return
		}
		sc.Write(strings.Repeat(string(buf), 3))
		sc.CloseFIN()
	})
	h := start(t, "", routeOpts{upstream: up.URL})
	c := hanguptest.Dial(t, h.addr)
	c.Send("GET /tunnel HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	res, err := c.ReadResponse("GET")
	if err != nil || res.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", res, err)
	}
	c.Send("hello world")
	got, pc, err := c.ReadUntilClosed(wait)
	if err != nil || pc != hanguptest.PeerFIN || len(got) != 33 {
		t.Fatalf("caller read %q, %v, %v; want 33 bytes and a FIN", got, pc, err)
	}
	c.CloseFIN()
	wantLog(t, h.logs.next(t, "/tunnel"), map[string]any{"status": 101, "side": "upstream", "phase": "tunnel",
		"kind": "fin", "action": "ok", "level": "INFO", "bytes_in": 11, "bytes_out": 33})
}

// A TLS listener offers HTTP/2 and HTTP/1.1 by ALPN.
func TestTLSListener(t *testing.T) {
	url := newH1Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	cert, key := selfSigned(t)
	yaml := "listeners:\n  - address: 127.0.0.1:0\n    h2c: false\n    tls:\n      cert_file: " + cert + "\n      key_file: " + key +
		"\nadmin:\n  address: \"off\"\naccess_log:\n  path: \"off\"\npools:\n  - name: p\n    endpoints:\n      - url: " + url +
		"\nroutes:\n  - pool: p\n"
	cfg, err := config.Parse("tls.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(cfg, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	for _, h2 := range []bool{false, true} {
		res := get(t, tlsClient(t, h2), "https://"+srv.Addrs()[0]+"/")
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if want := map[bool]int{false: 1, true: 2}[h2]; res.ProtoMajor != want || string(body) != "ok" {
			t.Errorf("h2=%v: proto %s body %q", h2, res.Proto, body)
		}
	}
}

func selfSigned(t *testing.T) (certFile, keyFile string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

// Dot segments are removed before routing, and the upstream gets the path
// that was routed: "/public/../admin" cannot use the /public route to reach
// "/admin" there.
func TestPathNormalisedBeforeRouting(t *testing.T) {
	public := newScripted(t, func(int, *http.Request) string { return ok200 })
	rest := newScripted(t, func(int, *http.Request) string { return ok200 })
	h := start(t, "", routeOpts{prefix: "/public/", upstream: public.URL}, routeOpts{upstream: rest.URL})
	c := hanguptest.Dial(t, h.addr)
	c.Send("GET /public/../admin HTTP/1.1\r\nHost: app\r\n\r\n")
	res, err := c.ReadResponse("GET")
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	if public.count("/admin")+public.count("/public/../admin") != 0 || rest.count("/admin") != 1 {
		t.Fatalf("public saw %v, the default route saw %v", public.seen, rest.seen)
	}
	wantLog(t, h.logs.next(t, "/admin"), map[string]any{"route": "r1"})
}
