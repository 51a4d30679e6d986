package proxy_test

import (
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/config"
	"github.com/switchboard-proxy/switchboard/internal/proxy"
)

// reloadConfig is a configuration for the reload tests: listeners, an admin
// address and one pool every request goes to.
type reloadConfig struct {
	// listeners holds one listener each: its YAML fields, one per line,
	// unindented, the address first.
	listeners []string
	admin     string // admin.address; "" means "off"
	accessLog string // access_log.path; "" means stdout
	upstream  string
}

func (c reloadConfig) yaml() string {
	var b strings.Builder
	b.WriteString("listeners:\n")
	for _, l := range c.listeners {
		lines := strings.Split(l, "\n")
		fmt.Fprintf(&b, "  - %s\n", lines[0])
		for _, line := range lines[1:] {
			fmt.Fprintf(&b, "    %s\n", line)
		}
	}
	admin := c.admin
	if admin == "" {
		admin = "off"
	}
	fmt.Fprintf(&b, "admin:\n  address: %q\n", admin)
	if c.accessLog != "" {
		fmt.Fprintf(&b, "access_log:\n  path: %s\n", c.accessLog)
	}
	fmt.Fprintf(&b, "drain_timeout: 5s\npools:\n  - name: p\n    endpoints:\n      - url: %s\nroutes:\n  - pool: p\n", c.upstream)
	return b.String()
}

func (c reloadConfig) parse(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Parse("reload.yaml", []byte(c.yaml()))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, c.yaml())
	}
	return cfg
}

// startReload starts a server for c; its access log goes to the returned
// sink.
func startReload(t *testing.T, c reloadConfig) (*proxy.Server, *logSink) {
	t.Helper()
	logs := newLogSink()
	srv, err := proxy.New(c.parse(t), proxy.Options{Stdout: logs})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv, logs
}

// slowUpstream answers /slow with slowBody once release is called (or
// fails it when the request is cancelled), and every other path with "ok".
type slowUpstream struct {
	url     string
	arrived chan struct{} // receives once per /slow request that reached it
	release func()
}

const slowBody = "finished on the configuration it started with"

func newSlowUpstream(t *testing.T) *slowUpstream {
	released := make(chan struct{})
	u := &slowUpstream{arrived: make(chan struct{}, 1), release: sync.OnceFunc(func() { close(released) })}
	u.url = newH1Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" {
			io.WriteString(w, "ok")
			return
		}
		u.arrived <- struct{}{}
		select {
		case <-released:
			io.WriteString(w, slowBody)
		case <-r.Context().Done():
		}
	}))
	// Registered after newH1Server's cleanup, so it runs first and the
	// upstream can close.
	t.Cleanup(u.release)
	return u
}

// result is how a request through the proxy ended.
type result struct {
	status int
	body   string
	err    error
}

// goGet runs a GET of url on c and reports how it ended.
func goGet(c *http.Client, url string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		res, err := c.Get(url)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		ch <- result{status: res.StatusCode, body: string(body), err: err}
	}()
	return ch
}

func wantSlowDone(t *testing.T, ch <-chan result) {
	t.Helper()
	if r := recv(t, ch, "the slow request to finish"); r.err != nil || r.status != 200 || r.body != slowBody {
		t.Errorf("slow request: status %d, body %q, error %v; want 200 and the whole body", r.status, r.body, r.err)
	}
}

// statusWithHeader sends a GET with one header of n bytes over a fresh
// HTTP/1.1 connection and returns the status.
func statusWithHeader(t *testing.T, url string, n int) int {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Big", strings.Repeat("x", n))
	res, err := h1Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// servedLeaf returns the DER of the certificate a TLS listener at addr
// presents.
func servedLeaf(t *testing.T, addr string) []byte {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Raw
}

func certDER(t *testing.T, certFile string) []byte {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("no PEM in %s", certFile)
	}
	return blk.Bytes
}

// holdPort returns a loopback address a test listener holds until the
// test ends, so binding it fails.
func holdPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// wantRefused checks that nothing accepts connections at addr.
func wantRefused(t *testing.T, addr, what string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.Close()
		t.Errorf("%s %s still accepts connections", what, addr)
	}
}

// serverGoroutines returns the stacks of goroutines that run a Server's or
// a socket's methods: accept loops, serve loops, drains. Close waits for
// all of them, so right after it returns there must be none; unlike goleak
// this looks once, without retrying, so a goroutine that would end a moment
// later is caught.
func serverGoroutines() []string {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "switchboard/internal/proxy.(*Server)") || strings.Contains(g, "switchboard/internal/proxy.(*socket)") {
			out = append(out, g)
		}
	}
	return out
}

func wantNoServerGoroutines(t *testing.T) {
	t.Helper()
	if gs := serverGoroutines(); len(gs) > 0 {
		t.Errorf("%d server goroutines outlive Close:\n%s", len(gs), strings.Join(gs, "\n\n"))
	}
}

// A reload that fails at any step changes nothing: the TLS certificate it
// would have re-read is not served, the access log stays where it was, and
// a later good reload does swap the certificate.
func TestReloadFailureChangesNothing(t *testing.T) {
	tests := []struct {
		name    string
		break_  func(t *testing.T, c *reloadConfig) // makes a step after the certificate fail
		wantErr string                              // regexp
	}{
		{"access log", func(t *testing.T, c *reloadConfig) {
			// Its directory exists, so the config is valid, but a
			// directory cannot be opened for writing.
			c.accessLog = t.TempDir()
		}, `^reload\.yaml:\d+:\d+: access_log\.path: `},
		{"new listener", func(t *testing.T, c *reloadConfig) {
			c.listeners = append(c.listeners, "address: "+holdPort(t))
		}, `^reload\.yaml:\d+:\d+: listeners\[1\]\.address: `},
		{"admin address", func(t *testing.T, c *reloadConfig) {
			c.admin = holdPort(t)
		}, `^reload\.yaml:\d+:\d+: admin\.address: `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newSlowUpstream(t)
			certA, keyA := selfSigned(t)
			certB, keyB := selfSigned(t)
			tlsListener := func(cert, key string) string {
				return "address: 127.0.0.1:0\nh2c: false\ntls:\n  cert_file: " + cert + "\n  key_file: " + key
			}
			c := reloadConfig{listeners: []string{tlsListener(certA, keyA)}, upstream: up.url}
			srv, logs := startReload(t, c)
			addr := srv.Addrs()[0]
			if got := servedLeaf(t, addr); string(got) != string(certDER(t, certA)) {
				t.Fatal("the listener does not serve its configured certificate")
			}

			bad := c
			bad.listeners = []string{tlsListener(certB, keyB)}
			tt.break_(t, &bad)
			err := srv.Reload(bad.parse(t))
			if err == nil || !regexp.MustCompile(tt.wantErr).MatchString(err.Error()) {
				t.Fatalf("reload error = %v, want one matching %s", err, tt.wantErr)
			}
			if got := servedLeaf(t, addr); string(got) != string(certDER(t, certA)) {
				t.Error("after a rejected reload the listener serves the rejected config's certificate")
			}
			if got := srv.Addrs(); len(got) != 1 || got[0] != addr {
				t.Errorf("listeners after a rejected reload: %v, want [%s]", got, addr)
			}
			if got := srv.AdminAddr(); got != "" {
				t.Errorf("admin listener %q after a rejected reload, want none", got)
			}
			res := get(t, tlsClient(t, false), "https://"+addr+"/after-rejected")
			res.Body.Close()
			wantLog(t, logs.next(t, "/after-rejected"), map[string]any{"status": 200})

			good := c
			good.listeners = []string{tlsListener(certB, keyB)}
			if err := srv.Reload(good.parse(t)); err != nil {
				t.Fatal(err)
			}
			if got := servedLeaf(t, addr); string(got) != string(certDER(t, certB)) {
				t.Error("a good reload did not swap the certificate")
			}
		})
	}
}

// startTwoListeners starts a server with listeners on 127.0.0.1 and
// localhost and a slow request in flight on the second. It returns the
// server, the config without the second listener, and the slow request.
func startTwoListeners(t *testing.T, up *slowUpstream) (*proxy.Server, *config.Config, <-chan result) {
	t.Helper()
	c := reloadConfig{listeners: []string{"address: 127.0.0.1:0", "address: localhost:0"}, accessLog: "off", upstream: up.url}
	srv, _ := startReload(t, c)
	addrs := srv.Addrs()
	slow := goGet(h1Client(t), "http://"+addrs[1]+"/slow")
	recv(t, up.arrived, "the slow request to reach the upstream")
	c.listeners = c.listeners[:1]
	cfg := c.parse(t)
	return srv, cfg, slow
}

// A listener removed by a reload stops accepting at once, lets its request
// in flight finish, and Close waits for that drain.
func TestReloadRemovedListenerDrains(t *testing.T) {
	up := newSlowUpstream(t)
	srv, cfg, slow := startTwoListeners(t, up)
	removed := srv.Addrs()[1]
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, removed, "removed listener")
	if got := srv.Addrs(); len(got) != 1 {
		t.Errorf("listeners after removing one: %v", got)
	}
	up.release()
	wantSlowDone(t, slow)
	srv.Close()
	wantNoServerGoroutines(t)
}

// Close ends the drain of a removed listener at once: the request in flight
// there is cut, not waited for.
func TestCloseEndsRemovedListenerDrain(t *testing.T) {
	up := newSlowUpstream(t)
	srv, cfg, slow := startTwoListeners(t, up)
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		srv.Close()
		close(done)
	}()
	closed(t, done, "Close to return while a removed listener drains")
	if r := recv(t, slow, "the slow request to end"); r.err == nil {
		t.Errorf("the slow request on the removed listener got %d %q after Close, want a cut connection", r.status, r.body)
	}
	wantNoServerGoroutines(t)
}

// Shutdown drains a listener a reload removed along with the others.
func TestShutdownWaitsForRemovedListener(t *testing.T) {
	up := newSlowUpstream(t)
	srv, cfg, slow := startTwoListeners(t, up)
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(t.Context()) }()
	up.release()
	wantSlowDone(t, slow)
	if err := recv(t, shut, "Shutdown"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	wantNoServerGoroutines(t)
}

// admin.address follows reloads: off to on, moved, to off; an address that
// cannot be bound rejects the reload and keeps the admin listener as it was.
func TestReloadAdminAddress(t *testing.T) {
	up := newSlowUpstream(t)
	c := reloadConfig{listeners: []string{"address: 127.0.0.1:0"}, accessLog: "off", upstream: up.url}
	srv, _ := startReload(t, c)

	// AdminAddr is read while reloads change it (for the race detector).
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				srv.AdminAddr()
			}
		}
	})
	defer func() {
		close(stop)
		readers.Wait()
	}()

	ready := func(addr string) {
		t.Helper()
		res := get(t, h1Client(t), "http://"+addr+"/readyz")
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("admin %s /readyz: %d, want 200", addr, res.StatusCode)
		}
	}
	reload := func(admin string) {
		t.Helper()
		c.admin = admin
		if err := srv.Reload(c.parse(t)); err != nil {
			t.Fatal(err)
		}
	}

	if got := srv.AdminAddr(); got != "" {
		t.Fatalf("admin off, but AdminAddr = %q", got)
	}
	reload("127.0.0.1:0")
	first := srv.AdminAddr()
	if first == "" {
		t.Fatal("admin turned on by reload, but AdminAddr is empty")
	}
	ready(first)

	reload("localhost:0")
	moved := srv.AdminAddr()
	if moved == "" || moved == first {
		t.Fatalf("admin moved by reload: AdminAddr %q, was %q", moved, first)
	}
	ready(moved)
	wantRefused(t, first, "old admin listener")

	c.admin = holdPort(t)
	err := srv.Reload(c.parse(t))
	if want := regexp.MustCompile(`^reload\.yaml:\d+:\d+: admin\.address: `); err == nil || !want.MatchString(err.Error()) {
		t.Fatalf("reload to a held admin address: %v, want an error matching %s", err, want)
	}
	if got := srv.AdminAddr(); got != moved {
		t.Errorf("after a rejected reload AdminAddr = %q, want %q", got, moved)
	}
	ready(moved)

	reload("off")
	if got := srv.AdminAddr(); got != "" {
		t.Errorf("admin turned off by reload, but AdminAddr = %q", got)
	}
	wantRefused(t, moved, "admin listener turned off")
}

// loop requests url on c until stop is closed, counting failures and
// ticking after every success.
type loop struct {
	fails atomic.Int64
	first atomic.Pointer[error]
	tick  chan struct{}
	done  chan struct{}
}

func startLoop(c *http.Client, url string, stop <-chan struct{}) *loop {
	l := &loop{tick: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := getOK(c, url); err != nil {
				l.fails.Add(1)
				l.first.CompareAndSwap(nil, &err)
				continue
			}
			select {
			case l.tick <- struct{}{}:
			default:
			}
		}
	}()
	return l
}

func getOK(c *http.Client, url string) error {
	res, err := c.Get(url)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != 200 || string(body) != "ok" {
		return fmt.Errorf("status %d, body %q", res.StatusCode, body)
	}
	return nil
}

// progress waits for n more successes.
func (l *loop) progress(t *testing.T, n int) {
	t.Helper()
	for range n {
		recv(t, l.tick, "the request loop to make progress")
	}
}

func (l *loop) check(t *testing.T, name string) {
	t.Helper()
	<-l.done
	if n := l.fails.Load(); n > 0 {
		t.Errorf("%s: %d requests failed across reloads; first: %v", name, n, *l.first.Load())
	}
}

// A reload applies a live listener's new settings without closing its
// socket: the port stays, a request in flight finishes under the old
// settings, new connections get the new ones, and callers looping
// requests across the reload see no error.
func TestReloadListenerSettings(t *testing.T) {
	up := newSlowUpstream(t)
	c := reloadConfig{listeners: []string{"address: 127.0.0.1:0\nmax_header_bytes: 64KiB\nidle_timeout: 30s"},
		accessLog: "off", upstream: up.url}
	srv, _ := startReload(t, c)
	addr := srv.Addrs()[0]
	// net/http allows 4KiB beyond MaxHeaderBytes, so 8KiB is what
	// separates 1KiB from 64KiB.
	const big = 8 << 10
	if got := statusWithHeader(t, "http://"+addr+"/", big); got != 200 {
		t.Fatalf("8KiB header under max_header_bytes 64KiB: %d, want 200", got)
	}

	slow := goGet(h1Client(t), "http://"+addr+"/slow")
	recv(t, up.arrived, "the slow request to reach the upstream")
	stop := make(chan struct{})
	loops := map[string]*loop{
		"h1":  startLoop(h1Client(t), "http://"+addr+"/loop", stop),
		"h2c": startLoop(h2cClient(t), "http://"+addr+"/loop", stop),
	}
	for _, l := range loops {
		l.progress(t, 5)
	}

	c.listeners = []string{"address: 127.0.0.1:0\nmax_header_bytes: 1KiB\nidle_timeout: 20s"}
	if err := srv.Reload(c.parse(t)); err != nil {
		t.Fatal(err)
	}
	if got := srv.Addrs(); len(got) != 1 || got[0] != addr {
		t.Errorf("listener address after reload: %v, want [%s]", got, addr)
	}
	if got := statusWithHeader(t, "http://"+addr+"/", big); got != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("8KiB header after reload to max_header_bytes 1KiB: %d, want 431", got)
	}
	if got := statusWithHeader(t, "http://"+addr+"/", 16); got != 200 {
		t.Errorf("small header after reload: %d, want 200", got)
	}
	for _, l := range loops {
		l.progress(t, 5)
	}
	up.release()
	wantSlowDone(t, slow)
	close(stop)
	for name, l := range loops {
		l.check(t, name)
	}
}

// Reloads that replace a listener's http.Server, one after another, lose
// no connection and no request, over every protocol. HTTP/1.1 callers open
// a new connection for every request, so the client cannot hide a lost one
// by retrying; HTTP/2 callers keep theirs, which the replaced server ends
// with GOAWAY.
func TestReloadSwapLosesNoConnection(t *testing.T) {
	cert, key := selfSigned(t)
	const tlsFields = "\nh2c: false\ntls:\n  cert_file: %s\n  key_file: %s"
	tests := []struct {
		name, scheme, fields string
		client               func(t *testing.T) *http.Client
	}{
		{"h1", "http", "", func(t *testing.T) *http.Client { return freshConnClient(t, nil) }},
		{"h1 TLS", "https", fmt.Sprintf(tlsFields, cert, key), func(t *testing.T) *http.Client {
			return freshConnClient(t, &tls.Config{InsecureSkipVerify: true})
		}},
		{"h2c", "http", "", h2cClient},
		{"h2 TLS", "https", fmt.Sprintf(tlsFields, cert, key), func(t *testing.T) *http.Client { return tlsClient(t, true) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newSlowUpstream(t)
			c := reloadConfig{accessLog: "off", upstream: up.url}
			settings := func(i int) []string {
				return []string{fmt.Sprintf("address: 127.0.0.1:0\nmax_header_bytes: %dKiB", 32+i%2) + tt.fields}
			}
			c.listeners = settings(0)
			srv, _ := startReload(t, c)
			url := tt.scheme + "://" + srv.Addrs()[0] + "/loop"
			stop := make(chan struct{})
			var loops []*loop
			for range 3 {
				loops = append(loops, startLoop(tt.client(t), url, stop))
			}
			for i := 1; i <= 30; i++ {
				c.listeners = settings(i)
				if err := srv.Reload(c.parse(t)); err != nil {
					t.Fatal(err)
				}
				for _, l := range loops {
					l.progress(t, 1)
				}
			}
			close(stop)
			for i, l := range loops {
				l.check(t, fmt.Sprintf("caller %d", i))
			}
			srv.Close()
			wantNoServerGoroutines(t)
		})
	}
}

// freshConnClient opens a new connection for every request.
func freshConnClient(t *testing.T, tc *tls.Config) *http.Client {
	tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: tc}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 2 * wait}
}

// Two listeners may both ask for port 0 on the same host; each gets its
// own socket and serve loop, a reload can remove one, and Close ends both.
func TestRepeatedPortZeroListeners(t *testing.T) {
	up := newSlowUpstream(t)
	c := reloadConfig{listeners: []string{"address: 127.0.0.1:0", "address: 127.0.0.1:0"}, accessLog: "off", upstream: up.url}
	srv, _ := startReload(t, c)
	addrs := srv.Addrs()
	if len(addrs) != 2 || addrs[0] == addrs[1] {
		t.Fatalf("listeners %v, want two different addresses", addrs)
	}
	for _, a := range addrs {
		if err := getOK(h1Client(t), "http://"+a+"/"); err != nil {
			t.Errorf("listener %s: %v", a, err)
		}
	}
	c.listeners = c.listeners[:1]
	if err := srv.Reload(c.parse(t)); err != nil {
		t.Fatal(err)
	}
	if got := srv.Addrs(); len(got) != 1 || got[0] != addrs[0] {
		t.Errorf("after removing the second listener: %v, want [%s]", got, addrs[0])
	}
	wantRefused(t, addrs[1], "removed listener")
	if err := getOK(h1Client(t), "http://"+addrs[0]+"/"); err != nil {
		t.Errorf("remaining listener: %v", err)
	}
	srv.Close()
	wantNoServerGoroutines(t)
}

// A replaced server sends GOAWAY to its HTTP/2 connections without waiting
// for their streams to end: while a long stream runs on the old connection,
// new requests move to a new one (served with the new settings), and the
// long stream still finishes.
func TestReloadGoAwayWhileH2StreamRuns(t *testing.T) {
	cert, key := selfSigned(t)
	tests := []struct {
		name, scheme, fields string
		client               func(t *testing.T) *http.Client
	}{
		{"h2c", "http", "", h2cClient},
		{"h2 TLS", "https", fmt.Sprintf("\nh2c: false\ntls:\n  cert_file: %s\n  key_file: %s", cert, key),
			func(t *testing.T) *http.Client { return tlsClient(t, true) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newSlowUpstream(t)
			c := reloadConfig{listeners: []string{"address: 127.0.0.1:0\nidle_timeout: 30s" + tt.fields}, accessLog: "off", upstream: up.url}
			srv, _ := startReload(t, c)
			base := tt.scheme + "://" + srv.Addrs()[0]
			client := tt.client(t)
			slow := goGet(client, base+"/slow")
			recv(t, up.arrived, "the slow request to reach the upstream")
			if !reusedConn(t, client, base+"/before") {
				t.Fatal("the client did not share its connection with the slow request")
			}

			c.listeners = []string{"address: 127.0.0.1:0\nidle_timeout: 20s" + tt.fields}
			if err := srv.Reload(c.parse(t)); err != nil {
				t.Fatal(err)
			}
			// GOAWAY reaches the client asynchronously; until it does,
			// requests may still use the old connection.
			for deadline := time.Now().Add(wait); reusedConn(t, client, base+"/after"); {
				if time.Now().After(deadline) {
					t.Fatal("requests still reuse the replaced server's connection")
				}
			}
			up.release()
			wantSlowDone(t, slow)
		})
	}
}

// reusedConn GETs url and reports whether the request went over a
// connection the client had used before.
func reusedConn(t *testing.T, c *http.Client, url string) bool {
	t.Helper()
	var reused bool
	ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
	})
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, res.StatusCode)
	}
	return reused
}
