package main

// These tests run the real switchboard binary as a child process and talk to
// it over loopback, the way an operator and its callers do: exit codes and
// stderr of "check" and "serve", and rule R7 (reload, drain, forced stop)
// under keep-alive load over HTTP/1.1 and h2c. They synchronise on the
// process's stderr log lines and on channels, never on sleeps.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// binPath is the switchboard binary TestMain builds once for all tests.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "switchboard-process-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "switchboard")
	build := exec.Command("go", "build", "-o", binPath, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build switchboard:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// Limits that keep the process tests lean on a small machine.
const (
	drainTimeout    = 10 * time.Second // drain_timeout in every serve config below
	loadFor         = 4 * time.Second  // a load caller stops starting requests after this long
	maxLoadRequests = 2000             // … or after this many requests
	waitLong        = 10 * time.Second // upper bound for any single wait
	slowFor         = 1500 * time.Millisecond
)

// slowBody is what the upstream's /slow answers after slowFor: large enough
// that a truncated copy cannot pass for the real thing.
var slowBody = bytes.Repeat([]byte("switchboard drains in-flight requests\n"), 4096)

// TestCheck covers the exit codes and error messages an operator relies on:
// a valid config passes check, a bad one fails check and serve with exit 2
// and file:line:col plus the field, and a port that cannot be bound fails
// serve naming the config field, with nothing left bound.
func TestCheck(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string // prefix of stderr
	}{
		{
			name:       "example ok",
			args:       []string{"check", "--config", "../../switchboard.example.yaml"},
			wantCode:   0,
			wantStdout: "../../switchboard.example.yaml: ok (1 listeners, 2 routes, 1 pools)\n",
		},
		{
			name:       "unknown field",
			args:       []string{"check", "--config", "testdata/unknown_field.yaml"},
			wantCode:   2,
			wantStderr: `switchboard: testdata/unknown_field.yaml:10:5: routes[0].tiemouts: unknown field "tiemouts"` + "\n",
		},
		{
			name:       "bad duration",
			args:       []string{"check", "--config", "testdata/bad_duration.yaml"},
			wantCode:   2,
			wantStderr: `switchboard: testdata/bad_duration.yaml:11:16: routes[0].timeouts.connect: invalid duration "5x"`,
		},
		{
			name:       "serve bad duration",
			args:       []string{"serve", "--config", "testdata/bad_duration.yaml"},
			wantCode:   2,
			wantStderr: `switchboard: testdata/bad_duration.yaml:11:16: routes[0].timeouts.connect: invalid duration "5x"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runBinary(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			if stdout != tt.wantStdout {
				t.Errorf("stdout %q, want %q", stdout, tt.wantStdout)
			}
			if !strings.HasPrefix(stderr, tt.wantStderr) || (tt.wantStderr == "") != (stderr == "") {
				t.Errorf("stderr %q, want prefix %q", stderr, tt.wantStderr)
			}
		})
	}
	t.Run("serve port clash", testPortClash)
}

// testPortClash holds a port, then starts serve with a config that needs it.
// Start binds everything or nothing: the run fails (exit 1, a runtime
// failure rather than a usage mistake), stderr names the field at its
// position in the file, and the other configured address is not bound.
func testPortClash(t *testing.T) {
	tests := []struct {
		name      string
		clash     string // which address takes the held port: "listener" or "admin"
		wantField string // position and field that stderr must name
	}{
		{name: "listener", clash: "listener", wantField: ":2:14: listeners[0].address: "},
		{name: "admin", clash: "admin", wantField: ":4:12: admin.address: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			held, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close()
			other := freePort(t)
			listen, admin := held.Addr().String(), other
			if tt.clash == "admin" {
				listen, admin = other, held.Addr().String()
			}
			path := filepath.Join(t.TempDir(), "clash.yaml")
			writeFile(t, path, fmt.Sprintf(clashConfig, listen, admin))

			code, stdout, stderr := runBinary(t, "serve", "--config", path)
			if code != 1 {
				t.Errorf("exit code %d, want 1; stderr:\n%s", code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			want := "switchboard: " + path + tt.wantField
			if !strings.Contains(stderr, want) || !strings.Contains(stderr, "address already in use") {
				t.Errorf("stderr %q, want it to contain %q and the bind error", stderr, want)
			}
			if strings.Contains(stderr, "switchboard started") {
				t.Errorf("stderr says the server started:\n%s", stderr)
			}
			if c, err := net.DialTimeout("tcp", other, waitLong); err == nil {
				c.Close()
				t.Errorf("%s is still bound after the failed start", other)
			} else if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("dial %s: %v, want connection refused", other, err)
			}
		})
	}
}

// clashConfig has the listener address on line 2 col 14 and the admin
// address on line 4 col 12; testPortClash checks those positions.
const clashConfig = `listeners:
  - address: %s
admin:
  address: %s
access_log:
  path: "off"
pools:
  - name: app
    endpoints:
      - url: http://127.0.0.1:3000
routes:
  - pool: app
`

// mode is how a test caller speaks to switchboard.
type mode struct {
	name   string
	proto  string // r.Proto the proxy must see, as written in the access log
	protos func() *http.Protocols
}

var (
	modeH1 = mode{name: "h1", proto: "HTTP/1.1", protos: func() *http.Protocols {
		p := new(http.Protocols)
		p.SetHTTP1(true)
		return p
	}}
	modeH2C = mode{name: "h2c", proto: "HTTP/2.0", protos: func() *http.Protocols {
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		return p
	}}
)

// client returns a keep-alive client speaking m only; the caller closes its
// idle connections when done.
func (m mode) client() (*http.Client, *http.Transport) {
	tr := &http.Transport{Protocols: m.protos(), MaxIdleConnsPerHost: 1}
	return &http.Client{Transport: tr, Timeout: waitLong}, tr
}

// TestDrainUnderLoad is rule R7 over HTTP/1.1 keep-alive: reloads (good,
// bad, good) under load drop nothing, and SIGTERM drains — the long request
// in flight completes, every response that arrived is complete, the only
// errors are refused dials once the listener is gone, /readyz says 503, the
// process exits 0 well within drain_timeout, and the access log has one
// clean record per completed request.
func TestDrainUnderLoad(t *testing.T) {
	testDrain(t, modeH1, 8)
}

// TestDrainHTTP2 is TestDrainUnderLoad over h2c: the slow request in flight
// at SIGTERM completes after GOAWAY, and the load sees only refused dials.
func TestDrainHTTP2(t *testing.T) {
	testDrain(t, modeH2C, 4)
}

func testDrain(t *testing.T, m mode, callers int) {
	up := newUpstream(t)
	dir := t.TempDir()
	cfg := serveConfig{
		upstream:  up.URL,
		accessLog: filepath.Join(dir, "access.log"),
	}
	cfgPath := filepath.Join(dir, "switchboard.yaml")
	writeFile(t, cfgPath, cfg.yaml())
	p := startSwitchboard(t, "serve", "--config", cfgPath)
	addr, adminAddr := p.started(t)
	base := "http://" + addr

	probe := newProber(t, m, base)
	probe.get(t, "/extra/probe0") // before any reload: route "main"
	if got := getStatus(t, "http://"+adminAddr+"/readyz"); got != http.StatusOK {
		t.Fatalf("/readyz before SIGTERM: %d, want 200", got)
	}

	var termSent atomic.Bool
	prog := newProgress()
	load := startLoad(t, m, base, callers, &termSent, prog)
	prog.waitFor(t, int64(20*callers))

	// Reload with an extra route and changed timeouts.
	cfg.extraRoute = true
	cfg.responseHeader = "30s"
	reloadWith(t, p, cfgPath, cfg, "configuration reloaded")
	probe.get(t, "/extra/probe1") // route "extra"

	// A bad config is rejected and the previous one stays in force.
	bad := cfg
	bad.broken = true
	reloadWith(t, p, cfgPath, bad, "reload rejected; the previous configuration stays in force")
	prog.waitFor(t, prog.n.Load()+int64(10*callers)) // traffic still flows
	probe.get(t, "/extra/probe2")                    // still route "extra"

	// Back to the original configuration.
	reloadWith(t, p, cfgPath, serveConfig{upstream: up.URL, accessLog: cfg.accessLog}, "configuration reloaded")
	probe.get(t, "/extra/probe3") // route "main" again
	probe.close()
	prog.waitFor(t, prog.n.Load()+int64(10*callers))

	// A long request is in flight at the upstream when SIGTERM arrives.
	slow := startSlow(t, m, base+"/slow", up)
	termSent.Store(true)
	sigAt := time.Now()
	p.signal(t, syscall.SIGTERM)
	p.waitLog(t, "draining")
	checkReadyzDraining(t, "http://"+adminAddr+"/readyz")
	if err := slow.result(t); err != nil {
		t.Errorf("slow request in flight at SIGTERM: %v", err)
	}
	p.waitLog(t, "drained; bye")
	if code := p.waitExit(t, drainTimeout-time.Since(sigAt)); code != 0 {
		t.Errorf("exit code %d after drain, want 0", code)
	}
	t.Logf("%s: SIGTERM to exit %v", m.name, time.Since(sigAt).Round(time.Millisecond))

	loadOK, atTerm := load.wait(t)
	if atTerm == 0 {
		t.Errorf("every load caller had stopped before SIGTERM: the drain was not under load")
	}
	completed := map[string]string{
		"/extra/probe0": "main", "/extra/probe1": "extra", "/extra/probe2": "extra", "/extra/probe3": "main",
	}
	checkAccessLog(t, cfg.accessLog, m, loadOK+len(completed)+1, completed)
	if c, err := net.DialTimeout("tcp", addr, waitLong); err == nil {
		c.Close()
		t.Errorf("listener %s still accepts after exit", addr)
	}
}

// reloadWith writes c to path, sends SIGHUP and waits for want on stderr.
func reloadWith(t *testing.T, p *proc, path string, c serveConfig, want string) {
	t.Helper()
	writeFile(t, path, c.yaml())
	p.signal(t, syscall.SIGHUP)
	p.waitLog(t, want)
}

// checkReadyzDraining asks the admin listener, which closes last, for
// /readyz while the drain waits for the slow request: 503. The admin being
// already closed is tolerated.
func checkReadyzDraining(t *testing.T, url string) {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr, Timeout: waitLong}).Get(url)
	if errors.Is(err, syscall.ECONNREFUSED) {
		t.Logf("admin already closed: %v", err)
		return
	}
	if err != nil {
		t.Fatalf("/readyz while draining: %v", err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining: %d, want 503", res.StatusCode)
	}
}

// TestSecondSignalForces: a second SIGTERM during a drain closes everything
// at once instead of waiting out drain_timeout for a 30 s request. The code
// (serve.go drain) treats it as a finished drain: it logs "second stop
// signal: closing now" and "drain ended at the deadline", and exits 0.
func TestSecondSignalForces(t *testing.T) {
	up := newUpstream(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "switchboard.yaml")
	writeFile(t, cfgPath, serveConfig{upstream: up.URL, accessLog: filepath.Join(dir, "access.log")}.yaml())
	p := startSwitchboard(t, "serve", "--config", cfgPath)
	addr, _ := p.started(t)

	hang := startSlow(t, modeH1, "http://"+addr+"/hang", up)
	p.signal(t, syscall.SIGTERM)
	p.waitLog(t, "draining")
	forcedAt := time.Now()
	p.signal(t, syscall.SIGTERM)
	p.waitLog(t, "second stop signal: closing now")
	if code := p.waitExit(t, 5*time.Second); code != 0 {
		t.Errorf("exit code %d after a forced stop, want 0", code)
	}
	t.Logf("second SIGTERM to exit %v", time.Since(forcedAt).Round(time.Millisecond))
	if p.logged("drained; bye") {
		t.Errorf(`a forced stop logged "drained; bye"`)
	}
	if res := hang.result(t); res == nil {
		t.Errorf("the 30 s request succeeded; want it cut off by the forced stop")
	}
	select {
	case <-up.hangAborted:
	case <-time.After(waitLong):
		t.Fatal("the upstream's 30 s request was not aborted")
	}
}

// serveConfig renders the serve config the drain tests use.
type serveConfig struct {
	upstream       string
	accessLog      string
	responseHeader string // route "main" timeouts.response_header; default 40s (above /hang's 30 s)
	extraRoute     bool   // add route "extra" for /extra before "main"
	broken         bool   // make the file invalid
}

func (c serveConfig) yaml() string {
	rh := c.responseHeader
	if rh == "" {
		rh = "40s"
	}
	var routes strings.Builder
	if c.extraRoute {
		connect := "2s"
		if c.broken {
			connect = "2x"
		}
		fmt.Fprintf(&routes, `  - name: extra
    match:
      path_prefix: /extra
    pool: app
    timeouts:
      connect: %s
      response_header: 20s
`, connect)
	}
	fmt.Fprintf(&routes, `  - name: main
    match:
      path_prefix: /
    pool: app
    timeouts:
      response_header: %s
`, rh)
	return fmt.Sprintf(`listeners:
  - address: 127.0.0.1:0
admin:
  address: 127.0.0.1:0
access_log:
  path: %q
drain_timeout: %s
pools:
  - name: app
    endpoints:
      - url: %s
routes:
%s`, c.accessLog, drainTimeout, c.upstream, routes.String())
}

// upstream is a Go upstream on loopback. "/" answers "ok <path>" after
// 0–20 ms; "/slow" answers slowBody after slowFor, "/hang" after 30 s. /slow and /hang report their start on started, and /hang its abort
// on hangAborted.
type upstream struct {
	*httptest.Server
	started     chan struct{} // size 1: one slow request per test
	hangAborted chan struct{} // size 1: one hanging request per test
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{started: make(chan struct{}, 1), hangAborted: make(chan struct{}, 1)}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serveHTTP))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) serveHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/slow":
		u.started <- struct{}{}
		if !work(r.Context(), slowFor) {
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(slowBody)))
		w.Write(slowBody)
	case "/hang":
		u.started <- struct{}{}
		if !work(r.Context(), 30*time.Second) {
			u.hangAborted <- struct{}{}
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(slowBody)))
		w.Write(slowBody)
	default:
		if !work(r.Context(), time.Duration(rand.N(21))*time.Millisecond) {
			return
		}
		io.WriteString(w, "ok "+r.URL.Path)
	}
}

// work stands for d of upstream work; it reports false if the request was
// aborted first.
func work(ctx context.Context, d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// slowCall is one long request running in its own goroutine.
type slowCall struct {
	done chan error // size 1: the goroutine never blocks on it
}

// startSlow GETs url (/slow or /hang) and returns once the upstream has
// the request, so it is in flight through the proxy.
func startSlow(t *testing.T, m mode, url string, up *upstream) *slowCall {
	t.Helper()
	s := &slowCall{done: make(chan error, 1)}
	c, tr := m.client()
	c.Timeout = 0 // the request itself is the point; the test's waits bound it
	ctx := t.Context()
	go func() {
		defer tr.CloseIdleConnections()
		s.done <- getSlow(ctx, c, url, m)
	}()
	t.Cleanup(func() { s.result(t) })
	select {
	case <-up.started:
	case err := <-s.done:
		s.done <- err
		t.Fatalf("GET %s ended before reaching the upstream: %v", url, err)
	case <-time.After(waitLong):
		t.Fatalf("GET %s did not reach the upstream", url)
	}
	return s
}

// getSlow fetches /slow or /hang and checks for a complete slowBody; any
// failure is returned.
func getSlow(ctx context.Context, c *http.Client, url string, m mode) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	switch {
	case err != nil:
		return fmt.Errorf("read body after %d bytes: %w", len(body), err)
	case res.StatusCode != http.StatusOK:
		return fmt.Errorf("status %d", res.StatusCode)
	case res.Proto != m.proto:
		return fmt.Errorf("answered over %s, want %s", res.Proto, m.proto)
	case !bytes.Equal(body, slowBody):
		return fmt.Errorf("body of %d bytes, want the %d-byte slow body", len(body), len(slowBody))
	}
	return nil
}

// result waits for the slow request's outcome (nil: a complete 200). It may
// be called more than once.
func (s *slowCall) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err
		return err
	case <-time.After(drainTimeout + waitLong):
		t.Fatal("the slow request did not end")
		return nil
	}
}

// loadRun is a set of keep-alive callers, each with its own client, issuing
// sequential GETs for at most loadFor or maxLoadRequests.
type loadRun struct {
	results chan loadResult // one slot per caller: no caller blocks on it
	callers int
	got     int // results received; owned by the test goroutine
}

// loadResult is one caller's tally.
type loadResult struct {
	ok, refused int
	failure     error // the first request that failed in a way R7 forbids
	atTerm      bool  // the caller was still sending requests when SIGTERM was sent
}

func startLoad(t *testing.T, m mode, base string, callers int, termSent *atomic.Bool, prog *progress) *loadRun {
	l := &loadRun{results: make(chan loadResult, callers), callers: callers}
	ctx := t.Context() // cancelled if the test ends early: the callers stop
	for id := range callers {
		go func() { l.results <- loadCaller(ctx, m, base, id, termSent, prog) }()
	}
	t.Cleanup(func() {
		for ; l.got < l.callers; l.got++ {
			<-l.results
		}
	})
	return l
}

// wait collects every caller's result, fails the test for any forbidden
// error, and returns the number of complete 200 responses and of callers
// that were still running at SIGTERM.
func (l *loadRun) wait(t *testing.T) (ok, atTerm int) {
	t.Helper()
	var refused int
	timeout := time.After(loadFor + waitLong)
	for ; l.got < l.callers; l.got++ {
		select {
		case r := <-l.results:
			ok += r.ok
			refused += r.refused
			if r.atTerm {
				atTerm++
			}
			if r.failure != nil {
				t.Errorf("load: %v", r.failure)
			}
		case <-timeout:
			t.Fatal("load callers did not finish")
		}
	}
	t.Logf("load: %d complete responses, %d refused dials after SIGTERM, %d/%d callers running at SIGTERM",
		ok, refused, atTerm, l.callers)
	return ok, atTerm
}

// loadCaller runs one caller until its bounds, a refused dial after SIGTERM
// (the listener is gone), a forbidden failure, or the test's end.
func loadCaller(ctx context.Context, m mode, base string, id int, termSent *atomic.Bool, prog *progress) loadResult {
	c, tr := m.client()
	defer tr.CloseIdleConnections()
	var r loadResult
	start := time.Now()
	for i := 0; i < maxLoadRequests && time.Since(start) < loadFor; i++ {
		r.atTerm = termSent.Load()
		err := getOK(ctx, c, fmt.Sprintf("%s/load/%d/%d", base, id, i), m)
		switch {
		case err == nil:
			r.ok++
			prog.add()
			continue
		case ctx.Err() != nil:
			return r // the test is over
		case errors.Is(err, syscall.ECONNREFUSED) && termSent.Load():
			r.refused++
			r.atTerm = true
			return r
		}
		r.failure = fmt.Errorf("caller %d request %d: %w", id, i, err)
		return r
	}
	return r
}

// getOK GETs url and checks for a complete "ok <path>" answer over m.
func getOK(ctx context.Context, c *http.Client, url string, m mode) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	want := "ok " + req.URL.Path
	switch {
	case err != nil:
		return fmt.Errorf("truncated body %q: %w", body, err)
	case res.StatusCode != http.StatusOK:
		return fmt.Errorf("status %d, body %q", res.StatusCode, body)
	case res.Proto != m.proto:
		return fmt.Errorf("answered over %s, want %s", res.Proto, m.proto)
	case string(body) != want:
		return fmt.Errorf("body %q, want %q", body, want)
	}
	return nil
}

// progress counts complete load responses; waitFor blocks until enough.
type progress struct {
	n      atomic.Int64
	notify chan struct{} // size 1: a pending wake-up, never blocks a caller
}

func newProgress() *progress { return &progress{notify: make(chan struct{}, 1)} }

func (p *progress) add() {
	p.n.Add(1)
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

func (p *progress) waitFor(t *testing.T, n int64) {
	t.Helper()
	timeout := time.After(waitLong)
	for p.n.Load() < n {
		select {
		case <-p.notify:
		case <-timeout:
			t.Fatalf("load made %d complete responses, waited for %d", p.n.Load(), n)
		}
	}
}

// prober sends single checked requests from the test goroutine.
type prober struct {
	m    mode
	base string
	c    *http.Client
	tr   *http.Transport
}

func newProber(t *testing.T, m mode, base string) *prober {
	c, tr := m.client()
	t.Cleanup(tr.CloseIdleConnections)
	return &prober{m: m, base: base, c: c, tr: tr}
}

func (p *prober) get(t *testing.T, path string) {
	t.Helper()
	if err := getOK(t.Context(), p.c, p.base+path, p.m); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

func (p *prober) close() { p.tr.CloseIdleConnections() }

// getStatus GETs url on a fresh connection and returns the status.
func getStatus(t *testing.T, url string) int {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr, Timeout: waitLong}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// checkAccessLog reads the access log after the process exited: exactly
// want records, each a clean 200 (side "none") over m's protocol, and each
// probe path logged under the route its configuration at the time chose.
func checkAccessLog(t *testing.T, path string, m mode, want int, routes map[string]string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	clean := 0
	for _, line := range lines {
		var rec struct {
			Msg, Side, Proto, Path, Route string
			Status                        int
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("access log line %q: %v", line, err)
			continue
		}
		if rec.Msg != "request" || rec.Status != http.StatusOK || rec.Side != "none" || rec.Proto != m.proto {
			t.Errorf("access log record is not a clean %s 200: %s", m.proto, line)
			continue
		}
		clean++
		if r, ok := routes[rec.Path]; ok && rec.Route != r {
			t.Errorf("%s was served by route %q, want %q", rec.Path, rec.Route, r)
		}
	}
	if clean != want {
		t.Errorf("access log has %d clean records, want %d (one per completed request)", clean, want)
	}
}

// proc is one running switchboard process. Its stderr is read line by line
// by the goroutine readStderr, which also reaps the process.
type proc struct {
	cmd    *exec.Cmd
	notify chan struct{} // size 1: a pending "new line or exit" wake-up
	exited chan struct{} // closed once the process is reaped

	mu    sync.Mutex // guards lines and eof
	lines []string
	eof   bool

	next int // the next line waitLog looks at; owned by the test goroutine
}

// startSwitchboard starts the binary with args; a cleanup kills it (by its
// PID) if it is still running and waits for it.
func startSwitchboard(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{
		cmd:    exec.Command(binPath, args...),
		notify: make(chan struct{}, 1),
		exited: make(chan struct{}),
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go p.readStderr(stderr)
	t.Cleanup(func() { p.stop(t) })
	return p
}

// readStderr collects stderr lines until the process closes it, then
// reaps the process.
func (p *proc) readStderr(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		p.mu.Lock()
		p.lines = append(p.lines, sc.Text())
		p.mu.Unlock()
		p.wake()
	}
	io.Copy(io.Discard, r) // a too-long line stopped the scanner: keep the pipe flowing
	p.cmd.Wait()           // the exit status is read from cmd.ProcessState
	p.mu.Lock()
	p.eof = true
	p.mu.Unlock()
	close(p.exited)
	p.wake()
}

func (p *proc) wake() {
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

func (p *proc) stop(t *testing.T) {
	select {
	case <-p.exited:
	default:
		p.cmd.Process.Kill()
	}
	select {
	case <-p.exited:
	case <-time.After(waitLong):
		t.Errorf("switchboard (pid %d) did not exit after SIGKILL", p.cmd.Process.Pid)
	}
	if t.Failed() {
		p.mu.Lock()
		t.Logf("switchboard stderr:\n%s", strings.Join(p.lines, "\n"))
		p.mu.Unlock()
	}
}

func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// logRecord is an operational log line: its message, and the whole line
// for the fields that depend on the message.
type logRecord struct {
	Msg  string `json:"msg"`
	line []byte
}

// waitLog waits for the next stderr record with message msg, past every
// record an earlier waitLog consumed.
func (p *proc) waitLog(t *testing.T, msg string) logRecord {
	t.Helper()
	timeout := time.After(waitLong)
	for {
		p.mu.Lock()
		lines, eof := p.lines[p.next:], p.eof
		p.mu.Unlock()
		for _, line := range lines {
			p.next++
			rec := logRecord{line: []byte(line)}
			if json.Unmarshal(rec.line, &rec) == nil && rec.Msg == msg {
				return rec
			}
		}
		if eof {
			t.Fatalf("switchboard exited without logging %q", msg)
		}
		select {
		case <-p.notify:
		case <-timeout:
			t.Fatalf("switchboard did not log %q within %v", msg, waitLong)
		}
	}
}

// logged reports whether any stderr record so far has message msg.
func (p *proc) logged(msg string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, line := range p.lines {
		var rec logRecord
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == msg {
			return true
		}
	}
	return false
}

// started waits for "switchboard started" and returns the bound listener
// and admin addresses.
func (p *proc) started(t *testing.T) (listener, admin string) {
	t.Helper()
	var rec struct {
		Listeners []string `json:"listeners"`
		Admin     string   `json:"admin"`
	}
	if err := json.Unmarshal(p.waitLog(t, "switchboard started").line, &rec); err != nil {
		t.Fatal(err)
	}
	if len(rec.Listeners) != 1 || rec.Admin == "" {
		t.Fatalf("started with listeners %q and admin %q, want one of each", rec.Listeners, rec.Admin)
	}
	return rec.Listeners[0], rec.Admin
}

// waitExit waits up to d for the process to exit and returns its code.
func (p *proc) waitExit(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		t.Fatalf("switchboard did not exit within %v", d)
		return -1
	}
}

// runBinary runs a short-lived switchboard command.
func runBinary(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLong)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run switchboard %q: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// freePort returns a loopback address that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
