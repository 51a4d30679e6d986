package proxy_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-proxy/switchboard/internal/config"
	"github.com/switchboard-proxy/switchboard/internal/proxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait is how long any expected event may take before a test fails. It is a
// bound against hangs, not a performance target.
const wait = 5 * time.Second

// harness is a running switchboard in front of test upstreams.
type harness struct {
	srv  *proxy.Server
	addr string
	logs *logSink
}

// routeOpts is one route of a test config.
type routeOpts struct {
	prefix, upstream, protocol string
	extra                      string // extra route YAML lines, indented 4 spaces
	poolExtra                  string // extra pool YAML lines, indented 4 spaces
}

// start runs switchboard with one listener on 127.0.0.1:0 and the routes.
func start(t testing.TB, top string, routes ...routeOpts) *harness {
	t.Helper()
	return startListener(t, "read_header_timeout: 2s\n    max_header_bytes: 8KiB", top, routes...)
}

// startListener is start with the given settings (YAML at the indentation
// of a listener's fields) for the listener.
func startListener(t testing.TB, listener, top string, routes ...routeOpts) *harness {
	t.Helper()
	var b strings.Builder
	b.WriteString("listeners:\n  - address: 127.0.0.1:0\n    " + listener + "\nadmin:\n  address: \"off\"\ndrain_timeout: 2s\n")
	b.WriteString(top)
	b.WriteString("pools:\n")
	for i, r := range routes {
		proto := r.protocol
		if proto == "" {
			proto = "http1"
		}
		fmt.Fprintf(&b, "  - name: p%d\n    protocol: %s\n    endpoints:\n      - url: %s\n%s", i, proto, r.upstream, r.poolExtra)
	}
	b.WriteString("routes:\n")
	for i, r := range routes {
		prefix := r.prefix
		if prefix == "" {
			prefix = "/"
		}
		fmt.Fprintf(&b, "  - name: r%d\n    pool: p%d\n    match:\n      path_prefix: %s\n%s", i, i, prefix, r.extra)
	}
	cfg, err := config.Parse("test.yaml", []byte(b.String()))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, b.String())
	}
	logs := newLogSink()
	srv, err := proxy.New(cfg, proxy.Options{Stdout: logs})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return &harness{srv: srv, addr: srv.Addrs()[0], logs: logs}
}

func (h *harness) url(path string) string { return "http://" + h.addr + path }

// logSink collects access-log records, one JSON object per Write.
type logSink struct {
	mu   sync.Mutex
	recs []map[string]any
	more chan struct{} // closed and replaced on every record
}

func newLogSink() *logSink { return &logSink{more: make(chan struct{})} }

func (s *logSink) Write(p []byte) (int, error) {
	var rec map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(p), &rec); err != nil {
		return 0, fmt.Errorf("access log line is not JSON: %v: %q", err, p)
	}
	s.mu.Lock()
	s.recs = append(s.recs, rec)
	close(s.more)
	s.more = make(chan struct{})
	s.mu.Unlock()
	return len(p), nil
}

// next waits for the access-log record of a request to path.
func (s *logSink) next(t *testing.T, path string) map[string]any {
	t.Helper()
	deadline := time.After(wait)
	for {
		s.mu.Lock()
		for _, r := range s.recs {
			if r["path"] == path {
				s.mu.Unlock()
				return r
			}
		}
		more := s.more
		s.mu.Unlock()
		select {
		case <-more:
		case <-deadline:
			t.Fatalf("no access-log record for %s; have %v", path, s.recs)
		}
	}
}

// wantLog checks fields of an access-log record.
func wantLog(t *testing.T, rec map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		got := rec[k]
		if f, ok := got.(float64); ok {
			if iv, ok := v.(int); ok && f == float64(iv) {
				continue
			}
		}
		if got != v {
			t.Errorf("access log %s = %v, want %v (record %v)", k, got, v, rec)
		}
	}
}

// mode is how a test caller speaks to switchboard: HTTP/1.1 or HTTP/2
// (h2c prior knowledge; the TLS path is covered by its own test).
type mode struct {
	name   string
	client func(t *testing.T) *http.Client
	proto  string
}

var modes = []mode{
	{"h1", h1Client, "HTTP/1.1"},
	{"h2", h2cClient, "HTTP/2.0"},
}

// run runs f once per mode.
func run(t *testing.T, f func(t *testing.T, m mode)) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { f(t, m) })
	}
}

func h1Client(t *testing.T) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 2 * wait}
}

func h2cClient(t *testing.T) *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: p, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 2 * wait}
}

func tlsClient(t *testing.T, h2 bool) *http.Client {
	p := new(http.Protocols)
	p.SetHTTP1(!h2)
	p.SetHTTP2(h2)
	tr := &http.Transport{Protocols: p, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 2 * wait}
}

// recv waits for a value from ch.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// closed waits for ch to be closed.
func closed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(wait):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// refusedAddr returns a loopback address nothing listens on.
func refusedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func ctxWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithCancel(t.Context())
}
