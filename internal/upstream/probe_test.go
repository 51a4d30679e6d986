package upstream

import (
	"cmp"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-proxy/switchboard/internal/config"
)

// healthServer is a loopback upstream whose health answer the test sets.
type healthServer struct {
	*httptest.Server
	status atomic.Int32 // answer to probes
	probes atomic.Int32 // probes seen

	mu   sync.Mutex // guards last
	last *http.Request
}

// newHealthServer starts a server speaking protocol (as a pool names it)
// that answers status until told otherwise; it is closed at the end of the
// test.
func newHealthServer(t *testing.T, protocol string, status int) *healthServer {
	t.Helper()
	hs := &healthServer{}
	hs.status.Store(int32(status))
	hs.Server = httptest.NewUnstartedServer(http.HandlerFunc(hs.serveHTTP))
	switch protocol {
	case config.ProtoH2:
		hs.EnableHTTP2 = true
		hs.StartTLS()
	case config.ProtoH2C:
		hs.Config.Protocols = new(http.Protocols)
		hs.Config.Protocols.SetUnencryptedHTTP2(true)
		hs.Start()
	default:
		hs.Start()
	}
	t.Cleanup(hs.Close)
	return hs
}

func (hs *healthServer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	hs.mu.Lock()
	hs.last = r
	hs.mu.Unlock()
	hs.probes.Add(1)
	w.WriteHeader(int(hs.status.Load()))
	w.Write([]byte("a body to drain"))
}

func (hs *healthServer) lastProbe() *http.Request {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return hs.last
}

// endpoint returns the server as a pool endpoint.
func (hs *healthServer) endpoint() config.Endpoint {
	scheme, host, _ := strings.Cut(hs.URL, "://")
	return config.Endpoint{Scheme: scheme, Host: host, Weight: 1}
}

// trustServer returns pool TLS settings that trust hs's certificate.
func trustServer(t *testing.T, hs *healthServer) *config.TLS {
	t.Helper()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return &config.TLS{CAFile: ca}
}

// eventually polls cond until it holds, failing the test after a generous
// deadline; active checks run on real time.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		<-tick.C
	}
}

func healthy(p *Pool, i int) func() bool {
	return func() bool { return p.Endpoints()[i].Healthy }
}

func unhealthy(p *Pool, i int) func() bool {
	return func() bool { return !p.Endpoints()[i].Healthy }
}

// Active checks mark a failing endpoint unhealthy, keep attempts off it,
// and mark it healthy again once it recovers, over each pool protocol.
func TestActiveHealth(t *testing.T) {
	tests := []struct {
		protocol  string
		wantMajor int
	}{
		{config.ProtoHTTP1, 1},
		{config.ProtoH2C, 2},
		{config.ProtoH2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.protocol, func(t *testing.T) {
			good := newHealthServer(t, tt.protocol, http.StatusNoContent)
			flaky := newHealthServer(t, tt.protocol, http.StatusServiceUnavailable)
			pc := config.Pool{Protocol: tt.protocol, Endpoints: []config.Endpoint{good.endpoint(), flaky.endpoint()},
				Health: config.Health{Active: &config.ActiveHealth{Path: "/healthz?deep=1",
					Interval: config.Duration(10 * time.Millisecond)}}}
			if good.TLS != nil {
				pc.TLS = trustServer(t, good) // httptest servers share one certificate
			}
			p := newTestPool(t, pc)
			p.Start()
			p.Start() // idempotent
			eventually(t, "the flaky endpoint is unhealthy", unhealthy(p, 1))
			for range 20 {
				l := mustAcquire(t, p)
				if l.Endpoint.Host != good.endpoint().Host {
					t.Fatalf("attempt on unhealthy endpoint %s", l.Endpoint.Host)
				}
				l.Release(ResultOK)
			}
			flaky.status.Store(http.StatusFound) // 3xx is healthy too
			eventually(t, "the flaky endpoint is healthy again", healthy(p, 1))
			if !p.Endpoints()[0].Healthy {
				t.Fatal("good endpoint marked unhealthy")
			}
			r := good.lastProbe()
			if r.Method != http.MethodGet || r.URL.String() != "/healthz?deep=1" || r.Host != good.endpoint().Host ||
				r.UserAgent() != "switchboard-health" || r.ProtoMajor != tt.wantMajor {
				t.Errorf("probe = %s %s %s Host %s User-Agent %q", r.Method, r.URL, r.Proto, r.Host, r.UserAgent())
			}
		})
	}
}

// The first probe runs at Start, not an interval later; with every
// endpoint unhealthy, Acquire fails at once.
func TestActiveHealthFirstProbeAtStart(t *testing.T) {
	hs := newHealthServer(t, config.ProtoHTTP1, http.StatusInternalServerError)
	p := newTestPool(t, config.Pool{Endpoints: []config.Endpoint{hs.endpoint()}, MaxConnsPerEndpoint: 1,
		Health: config.Health{Active: &config.ActiveHealth{Path: "/", Interval: config.Duration(time.Hour),
			UnhealthyThreshold: 1}}})
	p.Start()
	eventually(t, "the endpoint is unhealthy", unhealthy(p, 0))
	_, err := p.Acquire(t.Context(), nil)
	if !errors.Is(err, ErrNoEndpoint) {
		t.Fatalf("Acquire = %v, want ErrNoEndpoint", err)
	}
}

// A probe succeeds on 2xx and 3xx (redirects are not followed) within the
// timeout, and fails otherwise.
func TestProbe(t *testing.T) {
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedAddr := refused.Addr().String()
	refused.Close()
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer stall.Close()
	hs := newHealthServer(t, config.ProtoHTTP1, 0)
	tests := []struct {
		name   string
		host   string
		status int
		want   bool
	}{
		{"200", "", 200, true},
		{"204", "", 204, true},
		{"301", "", 301, true},
		{"399", "", 399, true},
		{"404", "", 404, false},
		{"500", "", 500, false},
		{"503", "", 503, false},
		{"refused", refusedAddr, 0, false},
		{"timeout", strings.TrimPrefix(stall.URL, "http://"), 0, false},
	}
	// A probe that should answer gets a timeout no busy machine reaches;
	// only the stalled one runs into a short one.
	pool := func(timeout time.Duration) *Pool {
		return newTestPool(t, config.Pool{Endpoints: []config.Endpoint{hs.endpoint()},
			Health: config.Health{Active: &config.ActiveHealth{Path: "/", Timeout: config.Duration(timeout)}}})
	}
	answering, stalled := pool(10*time.Second), pool(50*time.Millisecond)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs.status.Store(int32(tt.status))
			p := answering
			if tt.name == "timeout" {
				p = stalled
			}
			e := &Endpoint{Scheme: "http", Host: cmp.Or(tt.host, hs.endpoint().Host), Weight: 1}
			if got := p.probe(t.Context(), e, "http://"+e.Host+"/"); got != tt.want {
				t.Errorf("probe = %v, want %v", got, tt.want)
			}
		})
	}
}

// Close stops the checkers and waits for them; Start after Close does
// nothing.
func TestCloseStopsCheckers(t *testing.T) {
	before := goleak.IgnoreCurrent()
	hs := newHealthServer(t, config.ProtoHTTP1, http.StatusOK)
	p := newTestPool(t, config.Pool{Endpoints: []config.Endpoint{hs.endpoint(), hs.endpoint()},
		Health: config.Health{Active: &config.ActiveHealth{Path: "/", Interval: config.Duration(5 * time.Millisecond)}}})
	p.Start()
	eventually(t, "probes arrive", func() bool { return hs.probes.Load() >= 4 })
	p.Close()
	buf := make([]byte, 1<<20)
	if stacks := string(buf[:runtime.Stack(buf, true)]); strings.Contains(stacks, ".checkEndpoint(") {
		t.Fatalf("a checker still runs after Close returned:\n%s", stacks)
	}
	p.Close() // idempotent
	p.Start() // refused after Close
	hs.Close()
	goleak.VerifyNone(t, before)
}
