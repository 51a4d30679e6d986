package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/config"
)

// These tests are in package proxy so that they can watch what the
// listening socket accepts (Server.listen): when a socket closes, the
// kernel resets the connections still waiting in its listen backlog, which
// the proxy never saw. Rule R7 is about the connections it did accept.

const drainWait = 5 * time.Second // bound on any awaited event, against hangs

// acceptLog is a listener that notes the callers whose connections it
// accepted.
type acceptLog struct {
	net.Listener
	mu   sync.Mutex
	seen map[string]bool // by the caller's address
	more chan struct{}   // closed and replaced on every accept
}

func (l *acceptLog) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen[c.RemoteAddr().String()] = true
	close(l.more)
	l.more = make(chan struct{})
	return c, nil
}

// accepted reports whether the connection from caller was accepted.
func (l *acceptLog) accepted(caller string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[caller]
}

// waitAccepted waits until the connection from caller is accepted.
func (l *acceptLog) waitAccepted(t *testing.T, caller string) {
	t.Helper()
	deadline := time.After(drainWait)
	for {
		l.mu.Lock()
		seen, more := l.seen[caller], l.more
		l.mu.Unlock()
		if seen {
			return
		}
		select {
		case <-more:
		case <-deadline:
			t.Fatalf("the proxy did not accept the connection from %s", caller)
		}
	}
}

// msgSignal is a slog.Handler that closes ch when msg is logged.
type msgSignal struct {
	msg  string
	once sync.Once
	ch   chan struct{}
}

func (h *msgSignal) Enabled(context.Context, slog.Level) bool { return true }
func (h *msgSignal) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *msgSignal) WithGroup(string) slog.Handler            { return h }

func (h *msgSignal) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.once.Do(func() { close(h.ch) })
	}
	return nil
}

// drainProxy is a running proxy with one listener.
type drainProxy struct {
	srv      *Server
	url      string
	accepts  *acceptLog
	draining <-chan struct{} // closed once Shutdown has closed the socket
}

// startDrainProxy runs a proxy with one listener in front of upstream.
func startDrainProxy(t *testing.T, upstream string) *drainProxy {
	t.Helper()
	yaml := "listeners:\n  - address: 127.0.0.1:0\n    read_header_timeout: 2s\nadmin:\n  address: \"off\"\n" +
		"access_log:\n  path: \"off\"\ndrain_timeout: 5s\npools:\n  - name: p\n    endpoints:\n      - url: " +
		upstream + "\nroutes:\n  - pool: p\n"
	cfg, err := config.Parse("drain.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	sig := &msgSignal{msg: "draining", ch: make(chan struct{})}
	srv, err := New(cfg, Options{Log: slog.New(sig)})
	if err != nil {
		t.Fatal(err)
	}
	p := &drainProxy{srv: srv, draining: sig.ch}
	srv.listen = func(network, address string) (net.Listener, error) {
		ln, err := net.Listen(network, address)
		if err != nil {
			return nil, err
		}
		p.accepts = &acceptLog{Listener: ln, seen: map[string]bool{}, more: make(chan struct{})}
		return p.accepts, nil
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	p.url = "http://" + srv.Addrs()[0]
	return p
}

// shutdown runs Shutdown with a deadline of drainWait and reports its
// result on the returned channel.
func (p *drainProxy) shutdown() <-chan error {
	ch := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), drainWait)
		defer cancel()
		ch <- p.srv.Shutdown(ctx)
	}()
	return ch
}

// newUpstream runs h on an HTTP/1.1 loopback server and returns its URL.
func newUpstream(t *testing.T, h http.Handler) string {
	s := httptest.NewServer(h)
	t.Cleanup(func() {
		s.CloseClientConnections()
		s.Close()
	})
	return s.URL
}

// slowOK answers "ok" after delay, so that under load many requests are in
// flight at the upstream when a drain starts.
func slowOK(delay time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(delay):
			io.WriteString(w, "ok")
		case <-r.Context().Done():
		}
	})
}

// Callers: a new connection per request, HTTP/1.1 keep-alive, and h2c
// (prior knowledge).
func freshCaller(t *testing.T) *http.Client {
	return drainClient(t, &http.Transport{DisableKeepAlives: true})
}

func keepAliveCaller(t *testing.T) *http.Client { return drainClient(t, &http.Transport{}) }

func h2cCaller(t *testing.T) *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return drainClient(t, &http.Transport{Protocols: p})
}

func drainClient(t *testing.T, tr *http.Transport) *http.Client {
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 2 * drainWait}
}

// drainLoad is what callers saw across one Shutdown under load.
type drainLoad struct {
	accepts  *acceptLog
	busy     int64         // complete responses after which the load is under way
	underway chan struct{} // closed after busy complete responses
	stop     chan struct{} // closed to end callers that are never refused
	ok       atomic.Int64  // complete 200 responses
	refused  atomic.Int64  // dials refused: the socket was closed
	backlog  atomic.Int64  // resets of connections the proxy never accepted
	mu       sync.Mutex    // guards lost
	lost     []string      // requests on accepted connections that got no complete response
}

func (d *drainLoad) lose(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lost = append(d.lost, fmt.Sprintf(format, args...))
}

// callUntilRefused requests url on c until a dial is refused: the proxy's
// socket is closed. An error on a connection the proxy never accepted (or
// a dial that failed otherwise) is counted apart; any other error, and any
// incomplete response, is a lost request.
func (d *drainLoad) callUntilRefused(c *http.Client, url string) {
	for {
		select {
		case <-d.stop:
			return
		default:
		}
		var caller atomic.Pointer[string] // the caller's address on the connection used
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) {
				a := i.Conn.LocalAddr().String()
				caller.Store(&a)
			},
		})
		req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
		if err != nil {
			panic(err)
		}
		res, err := c.Do(req)
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			d.refused.Add(1)
			return
		case err != nil && (caller.Load() == nil || !d.accepts.accepted(*caller.Load())):
			d.backlog.Add(1)
			continue
		case err != nil:
			d.lose("%v", err)
			continue
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != 200 || string(body) != "ok" {
			d.lose("status %d, body %q, error %v", res.StatusCode, body, err)
			continue
		}
		if d.ok.Add(1) == d.busy {
			close(d.underway)
		}
	}
}

// Shutdown under load loses no request (rule R7). Callers loop requests
// as fast as they can, most on a new connection each time, some on
// keep-alive HTTP/1.1 and h2c connections, while Shutdown drains. A
// connection the proxy accepted just before the drain, whose request
// arrives a moment later, must be served (with Connection: close), not
// closed: no client retries a request on a fresh connection. A caller may
// see its dial refused once the socket is closed, and a reset of a
// connection the proxy never accepted (it was in the kernel's listen
// backlog when the socket closed), and nothing else. Repeated, because
// the race is narrow.
func TestShutdownUnderLoadLosesNoRequest(t *testing.T) {
	const rounds = 20
	up := newUpstream(t, slowOK(20*time.Millisecond))
	var sum struct{ ok, refused, backlog, lost, lossy int64 }
	for i := range rounds {
		d := shutdownUnderLoad(t, up)
		sum.ok += d.ok.Load()
		sum.refused += d.refused.Load()
		sum.backlog += d.backlog.Load()
		if len(d.lost) > 0 {
			sum.lost += int64(len(d.lost))
			sum.lossy++
			t.Errorf("shutdown %d: %d requests on accepted connections lost; first: %s", i, len(d.lost), d.lost[0])
		}
	}
	t.Logf("%d shutdowns, %d losing requests: %d requests lost, %d complete, %d dials refused, "+
		"%d resets of connections never accepted", rounds, sum.lossy, sum.lost, sum.ok, sum.refused, sum.backlog)
}

// shutdownUnderLoad starts a proxy in front of up, puts it under load and
// shuts it down once every caller has had an answer.
func shutdownUnderLoad(t *testing.T, up string) *drainLoad {
	t.Helper()
	p := startDrainProxy(t, up)
	var callers []*http.Client
	for range 32 {
		callers = append(callers, freshCaller(t))
	}
	for range 4 {
		callers = append(callers, keepAliveCaller(t), h2cCaller(t))
	}
	// Under way once there were as many answers as callers; the
	// upstream's delay keeps their next requests in flight.
	d := &drainLoad{accepts: p.accepts, busy: int64(len(callers)), underway: make(chan struct{}), stop: make(chan struct{})}
	var wg sync.WaitGroup
	for _, c := range callers {
		wg.Go(func() { d.callUntilRefused(c, p.url+"/load") })
	}
	select {
	case <-d.underway:
	case <-time.After(drainWait):
		t.Errorf("no load: %d complete requests", d.ok.Load())
	}
	if err := <-p.shutdown(); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	ended := make(chan struct{})
	go func() {
		wg.Wait()
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(drainWait):
		t.Errorf("callers still not refused after Shutdown returned")
		close(d.stop)
		<-ended
	}
	return d
}

// A connection accepted before Shutdown, whose request arrives after the
// drain turned keep-alives off, gets a complete response with Connection: close rather than
// EOF (net/http drops an HTTP/1 request it reads once http.Server.Shutdown
// has begun).
func TestShutdownServesRequestAfterAccept(t *testing.T) {
	p := startDrainProxy(t, newUpstream(t, slowOK(0)))
	c, err := net.Dial("tcp", p.srv.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p.accepts.waitAccepted(t, c.LocalAddr().String())
	shut := p.shutdown()
	p.waitKeepAlivesOff(t)
	c.SetDeadline(time.Now().Add(drainWait))
	if _, err := io.WriteString(c, "GET /late HTTP/1.1\r\nHost: late\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("request written after the drain began, on a connection accepted before: %v", err)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 || string(body) != "ok" || !res.Close {
		t.Errorf("got %d %q (Connection: close %t, error %v), want 200 \"ok\" with Connection: close",
			res.StatusCode, body, res.Close, err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// waitKeepAlivesOff waits until the drain of p's listener has turned
// keep-alives off and waits for its HTTP/1 connections to finish.
func (p *drainProxy) waitKeepAlivesOff(t *testing.T) {
	t.Helper()
	p.srv.mu.Lock()
	var cs *connSet
	for _, l := range p.srv.listeners {
		cs = l.srv.conns
	}
	p.srv.mu.Unlock()
	for deadline := time.Now().Add(drainWait); ; time.Sleep(time.Millisecond) {
		cs.mu.Lock()
		waiting := cs.h1Gone != nil
		cs.mu.Unlock()
		if waiting {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the drain does not wait for HTTP/1 connections")
		}
	}
}

// waitGoAway waits until c's requests no longer go over the connection
// they shared before Shutdown: they are refused. Until GOAWAY reaches c,
// they may still be served on that connection.
func (p *drainProxy) waitGoAway(t *testing.T, c *http.Client) {
	t.Helper()
	<-p.draining
	for deadline := time.Now().Add(drainWait); ; {
		res, err := c.Get(p.url + "/next")
		if errors.Is(err, syscall.ECONNREFUSED) {
			return
		}
		if err != nil {
			t.Fatalf("a request after the drain began: %v; want it served or refused", err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("requests still go over the draining connection: no GOAWAY")
		}
	}
}

// A request in flight when Shutdown starts finishes: over HTTP/1.1 with
// Connection: close; over h2c the connection gets GOAWAY at once, so new
// requests go to a new connection (refused), while the stream runs to its
// end.
func TestShutdownFinishesInFlight(t *testing.T) {
	tests := []struct {
		name     string
		caller   func(t *testing.T) *http.Client
		draining func(p *drainProxy, t *testing.T, c *http.Client) // waits until the drain has reached c
		proto    string
		close    bool // the response says Connection: close
	}{
		{"h1", keepAliveCaller, func(p *drainProxy, t *testing.T, _ *http.Client) { p.waitKeepAlivesOff(t) }, "HTTP/1.1", true},
		{"h2c", h2cCaller, (*drainProxy).waitGoAway, "HTTP/2.0", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			arrived, released := make(chan struct{}, 1), make(chan struct{})
			release := sync.OnceFunc(func() { close(released) })
			up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/slow" {
					io.WriteString(w, "ok")
					return
				}
				arrived <- struct{}{}
				select {
				case <-released:
					io.WriteString(w, "finished")
				case <-r.Context().Done():
				}
			}))
			// Registered after newUpstream's cleanup, so it runs first
			// and the upstream can close.
			t.Cleanup(release)
			p := startDrainProxy(t, up)
			c := tt.caller(t)
			slow := make(chan *http.Response, 1)
			go func() {
				res, err := c.Get(p.url + "/slow")
				if err != nil {
					t.Errorf("the request in flight: %v", err)
				}
				slow <- res
			}()
			select {
			case <-arrived:
			case <-time.After(drainWait):
				t.Fatal("the slow request did not reach the upstream")
			}
			shut := p.shutdown()
			tt.draining(p, t, c)
			release()
			res := <-slow
			if res == nil {
				t.FailNow()
			}
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil || res.StatusCode != 200 || string(body) != "finished" || res.Proto != tt.proto || res.Close != tt.close {
				t.Errorf("the request in flight: %s %d %q, Connection: close %t, error %v; want %s 200 \"finished\", Connection: close %t",
					res.Proto, res.StatusCode, body, res.Close, err, tt.proto, tt.close)
			}
			if err := <-shut; err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		})
	}
}

// drain_delay: after Shutdown starts, /readyz answers 503 while the
// listener still accepts and serves; the socket closes only after the delay.
func TestDrainDelayKeepsAccepting(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	cfg, err := config.Parse("test.yaml", []byte("listeners:\n  - address: 127.0.0.1:0\nadmin:\n  address: 127.0.0.1:0\naccess_log:\n  path: \"off\"\ndrain_delay: 300ms\npools:\n  - name: p\n    endpoints:\n      - url: "+up.URL+"\nroutes:\n  - pool: p\n"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	addr, admin := srv.Addrs()[0], srv.AdminAddr()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- srv.Shutdown(context.Background()) }()
	get := func(url string) (int, error) {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
		res, err := c.Get(url)
		if err != nil {
			return 0, err
		}
		res.Body.Close()
		return res.StatusCode, nil
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if code, err := get("http://" + admin + "/readyz"); err == nil && code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz never turned 503")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if time.Since(start) < 250*time.Millisecond {
		if code, err := get("http://" + addr + "/"); err != nil || code != 200 {
			t.Fatalf("during drain_delay: %d, %v; want 200", code, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Fatal("Shutdown returned before drain_delay")
	}
	if _, err := get("http://" + addr + "/"); err == nil {
		t.Fatal("still accepting after the drain")
	}
}
