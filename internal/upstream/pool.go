package upstream

import (
	"container/list"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/config"
)

// Endpoint is one upstream server of a pool.
type Endpoint struct {
	Scheme string // "http" or "https"
	Host   string // host:port
	Weight int

	current int           // smooth weighted round robin state, guarded by Pool.mu
	st      endpointState // load and health, guarded by Pool.mu

	// keepAlive is the idle timeout the endpoint advertised in its last
	// Keep-Alive response header, in nanoseconds plus one; 0 if none was
	// seen. See keepalive.go (rule R6).
	keepAlive atomic.Int64
}

// Pool is a set of endpoints that serve the same content, with one HTTP
// transport (and so one connection pool) shared by all of them. A Pool is
// safe for concurrent use.
//
// Attempts take an endpoint with [Pool.Acquire] and give it back with
// [Lease.Release], which balances load, enforces max_conns_per_endpoint and
// feeds passive health. [Pool.Start] starts active health checks;
// [Pool.Close] stops them.
type Pool struct {
	Name string
	// RoundTripper sends the pool's requests: switchboard's own HTTP/1.1
	// transport for an http1 pool (see h1Transport), else Transport.
	RoundTripper http.RoundTripper
	// Transport is net/http's transport to the endpoints. It serves every
	// request of an h2, h2c or auto pool, and an http1 pool's Upgrade
	// requests, which need its handling of 101 Switching Protocols.
	Transport *http.Transport
	h1        *h1Transport // nil unless the pool speaks only HTTP/1.1

	balance      string        // config.BalanceRoundRobin or config.BalanceLeastOutstanding
	maxConns     int           // attempts in flight per endpoint; 0 = no limit
	maxQueue     int           // attempts that may wait for a slot
	queueTimeout time.Duration // how long one may wait
	passive      passiveHealth
	active       *activeHealth    // nil: no active checks
	health       *http.Transport  // probes; nil without active checks
	now          func() time.Time // the clock for ejections; tests set their own

	mu        sync.Mutex // guards endpoints' balancing and health state, waiters and the wake timer
	endpoints []*Endpoint
	total     int
	waiters   list.List   // of *waiter, first come first served
	wake      *time.Timer // serves the queue when an ejection ends
	wakeAt    time.Time

	life    sync.Mutex // guards started, closed and stop
	started bool
	closed  bool
	stop    context.CancelFunc // ends the health checkers
	checks  sync.WaitGroup     // the health checkers
}

// Defaults for zero-valued pool settings, the same as config applies, so a
// hand-built config.Pool behaves like a parsed one.
const (
	defaultMaxQueue     = 100
	defaultQueueTimeout = time.Second
)

// NewPool builds a pool from validated configuration. Zero-valued settings
// take their documented defaults.
func NewPool(pc *config.Pool) (*Pool, error) {
	tlsCfg, err := clientTLS(pc)
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", pc.Name, err)
	}
	d := newDialer(tlsCfg)
	p := &Pool{
		Name:         pc.Name,
		Transport:    newTransport(pc, d),
		balance:      pc.Balance,
		maxConns:     max(pc.MaxConnsPerEndpoint, 0),
		maxQueue:     orInt(pc.MaxQueue, defaultMaxQueue),
		queueTimeout: orDuration(pc.QueueTimeout.D(), defaultQueueTimeout),
		passive:      newPassiveHealth(&pc.Health.Passive),
		now:          time.Now,
	}
	p.RoundTripper = p.Transport
	if pc.Protocol == config.ProtoHTTP1 || pc.Protocol == "" {
		p.h1 = newH1Transport(d, pc.MaxIdlePerEndpoint, pc.IdleConnTimeout.D())
		p.RoundTripper = p.h1
	}
	if a := pc.Health.Active; a != nil {
		p.active = newActiveHealth(a)
		p.health = newProbeTransport(pc, tlsCfg)
	}
	for _, e := range pc.Endpoints {
		w := max(e.Weight, 1)
		p.endpoints = append(p.endpoints, &Endpoint{Scheme: e.Scheme, Host: e.Host, Weight: w})
		p.total += w
	}
	return p, nil
}

func orInt(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

func orDuration(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Pick returns the next endpoint by smooth weighted round robin (as nginx
// does), so weights spread evenly rather than in bursts. It ignores health,
// limits and the balance policy; [Pool.Acquire] replaces it.
func (p *Pool) Pick() *Endpoint {
	if len(p.endpoints) == 1 {
		return p.endpoints[0]
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var best *Endpoint
	for _, e := range p.endpoints {
		e.current += e.Weight
		if best == nil || e.current > best.current {
			best = e
		}
	}
	best.current -= p.total
	return best
}

// Close stops the active health checkers, waits for them to return, and
// closes the pool's idle connections. An HTTP/1.1 connection still in use
// is closed when its request ends; net/http's (HTTP/2, Upgrade) expire
// with the idle timeout. Leases still out may be released and new ones
// acquired, but health checks never start again. Close is idempotent.
func (p *Pool) Close() {
	p.life.Lock()
	p.closed = true
	stop := p.stop
	p.stop = nil
	p.life.Unlock()
	if stop != nil {
		stop()
	}
	p.checks.Wait()
	p.mu.Lock()
	if p.wake != nil {
		p.wake.Stop()
	}
	p.mu.Unlock()
	if p.health != nil {
		p.health.CloseIdleConnections()
	}
	p.Transport.CloseIdleConnections()
	if p.h1 != nil {
		p.h1.Close()
	}
}

func newDialer(tlsCfg *tls.Config) *dialer {
	return &dialer{tls: tlsCfg, net: net.Dialer{KeepAlive: 30 * time.Second}}
}

func newTransport(pc *config.Pool, d *dialer) *http.Transport {
	t := &http.Transport{
		DialContext:         d.DialContext,
		DialTLSContext:      d.DialTLSContext,
		MaxIdleConnsPerHost: pc.MaxIdlePerEndpoint,
		IdleConnTimeout:     pc.IdleConnTimeout.D(),
		// Compression is the upstream's business: pass bytes through.
		DisableCompression: true,
		// Headers are bounded like a caller's.
		MaxResponseHeaderBytes: 1 << 20,
		WriteBufferSize:        32 << 10,
		ReadBufferSize:         32 << 10,
		Protocols:              protocols(pc.Protocol),
	}
	if pc.Protocol == config.ProtoHTTP1 || pc.Protocol == "" {
		// One request per HTTP/1.1 connection: the transport's cap
		// backs the pool's own limit on attempts in flight.
		t.MaxConnsPerHost = max(pc.MaxConnsPerEndpoint, 0)
	}
	if pc.Protocol != "http1" && pc.Protocol != "" {
		// A custom TLS dialer turns HTTP/2 off unless forced.
		t.ForceAttemptHTTP2 = true
		t.HTTP2 = &http.HTTP2Config{
			// Detect a dead HTTP/2 connection (no FIN or RST
			// arrives when a host vanishes) with pings.
			SendPingTimeout: 15 * time.Second,
			PingTimeout:     5 * time.Second,
		}
	}
	return t
}

func protocols(name string) *http.Protocols {
	p := new(http.Protocols)
	switch name {
	case "h2c":
		p.SetUnencryptedHTTP2(true)
	case "h2":
		p.SetHTTP2(true)
	case "auto":
		p.SetHTTP1(true)
		p.SetHTTP2(true)
	default:
		p.SetHTTP1(true)
	}
	return p
}

func clientTLS(pc *config.Pool) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	switch pc.Protocol {
	case "h2":
		cfg.NextProtos = []string{"h2"}
	case "auto":
		cfg.NextProtos = []string{"h2", "http/1.1"}
	default:
		cfg.NextProtos = []string{"http/1.1"}
	}
	t := pc.TLS
	if t == nil {
		return cfg, nil
	}
	cfg.ServerName = t.ServerName
	cfg.InsecureSkipVerify = t.InsecureSkipVerify
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read ca_file: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no certificates found", t.CAFile)
		}
		cfg.RootCAs = roots
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
