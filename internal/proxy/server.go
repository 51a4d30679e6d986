package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/admin"
	"github.com/switchboard-proxy/switchboard/internal/config"
	"github.com/switchboard-proxy/switchboard/internal/metrics"
	"github.com/switchboard-proxy/switchboard/internal/queue"
)

// Options are a Server's settings that do not come from the config file.
type Options struct {
	// Log receives operational messages (start, reload, drain). Nil
	// discards them.
	Log *slog.Logger
	// Stdout and Stderr are where access_log "stdout" and "stderr" go;
	// nil means os.Stdout and os.Stderr.
	Stdout, Stderr io.Writer
	// Metrics is the metrics set; nil creates one.
	Metrics *metrics.Metrics
}

// Server runs switchboard's listeners and admin listener for one
// configuration at a time. Start binds everything or nothing; Reload swaps
// the configuration without dropping a connection; Shutdown drains.
type Server struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics.Metrics
	handler *Handler
	// listen opens listening sockets: net.Listen, or in tests a listener
	// that reports what it accepts. Set by New, before anything is bound.
	listen func(network, address string) (net.Listener, error)

	// stop is cancelled by Close; it cuts short the drains of servers a
	// reload retired.
	stop       context.Context
	cancelStop context.CancelFunc

	mu         sync.Mutex // guards the fields below
	cfg        *config.Config
	listeners  map[string]*listener      // by listenerKeys
	admin      *listener                 // nil when the admin listener is off
	retired    map[*server]chan struct{} // draining after a reload replaced them or removed their listener; closed when drained
	access     *accessWriter
	accessJSON *slog.Logger // JSON records into access; swapped for a discarding logger when off
	started    bool
	stopping   bool // Shutdown or Close began: no reload, no new goroutine

	draining     atomic.Bool
	adminHandler atomic.Pointer[http.Handler]
	// wg counts accept loops, serve loops, the drains of retired servers
	// and the queue's worker; Close waits for it.
	wg sync.WaitGroup

	// The delivery queue and its worker, when some route is async; nil
	// otherwise. Opened by New, run by Start, stopped and closed by Close.
	queue  *queue.Queue
	worker *queue.Worker
	// notifier sends the callbacks of ended deliveries; set with queue.
	notifier *notifier
	// retention and deadRetention: how long ended records are kept.
	retention, deadRetention time.Duration
}

// listener is one bound socket and the server currently serving it.
type listener struct {
	key  string // see listenerKeys
	sock *socket
	tls  bool                            // fixed for the socket's life
	cert atomic.Pointer[tls.Certificate] // swapped on reload

	// Guarded by Server.mu: a reload replaces them.
	cfg config.Listener
	srv *server
}

// server is one http.Server serving its share of a socket.
type server struct {
	http  *http.Server
	tls   bool
	fast  *fastServer   // serves cleartext HTTP/1 before http; nil for TLS and admin
	conns *connSet      // http's connections, for draining it
	h     *handoff      // set when it starts serving
	done  chan struct{} // closed when its serve loop has returned
}

// newServer wraps hs, hooking its connections, context and handler into
// a connSet.
func newServer(hs *http.Server, useTLS bool) *server {
	srv := &server{http: hs, tls: useTLS, conns: newConnSet(), done: make(chan struct{})}
	hs.ConnState = srv.conns.stateHook
	connCtx := hs.ConnContext
	hs.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if connCtx != nil {
			ctx = connCtx(ctx, c)
		}
		ctx = srv.conns.connContext(ctx, c)
		if pc, ok := c.(*prefixConn); ok {
			close(pc.registered) // the fast path may forget its entry now
		}
		return ctx
	}
	h := hs.Handler
	hs.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		srv.conns.sawRequest(r)
		h.ServeHTTP(w, r)
	})
	return srv
}

// New checks cfg's pools and prepares a server; nothing is bound yet.
func New(cfg *config.Config, opts Options) (*Server, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	t, err := newTable(cfg, nil)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, log: opts.Log, metrics: opts.Metrics, listen: net.Listen, cfg: cfg,
		listeners: map[string]*listener{}, retired: map[*server]chan struct{}{}}
	w, f, err := s.openAccessLog(cfg)
	if err != nil {
		t.retire(nil)
		return nil, err
	}
	s.stop, s.cancelStop = context.WithCancel(context.Background())
	s.access = &accessWriter{w: w, f: f}
	s.accessJSON = slog.New(slog.NewJSONHandler(s.access, nil))
	s.handler = newHandler(t, s.accessLogger(cfg), opts.Metrics)
	opts.Metrics.WatchEndpoints(s.handler.endpointStates)
	if cfg.UsesQueue() {
		if err := s.openQueue(cfg); err != nil {
			t.retire(nil)
			s.access.swap(io.Discard, nil)
			return nil, err
		}
		s.watchQueue()
	}
	// After openQueue: the admin API serves the queue.
	s.adminHandler.Store(s.newAdminHandler(cfg))
	return s, nil
}

// queueSetupTimeout bounds opening the queue: starting the embedded NATS
// server (or connecting to the external one) and creating its streams.
const queueSetupTimeout = 30 * time.Second

// openQueue opens the delivery queue of cfg's async routes and prepares
// its worker; Start runs it.
func (s *Server) openQueue(cfg *config.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), queueSetupTimeout)
	defer cancel()
	qc := cfg.Queue
	q, err := queue.Open(ctx, queue.Options{Dir: qc.Dir, URL: qc.URL, MaxBody: int(qc.MaxBody), Replicas: qc.Replicas})
	if err != nil {
		return fmt.Errorf("%s: queue: %w", cfg.Where("queue"), err)
	}
	h := s.handler
	w, err := q.NewWorker(ctx, queue.WorkerConfig{
		Deliver:         h.deliver,
		Policy:          fallbackDeliveryPolicy,
		RoutePolicy:     h.deliveryPolicyFor,
		Concurrency:     qc.Concurrency,
		AckWait:         qc.AckWait.D(),
		MaxResponseBody: maxKeptResponse,
		Logger:          s.log,
		OnOutcome:       s.queueOutcome,
	})
	if err != nil {
		q.Close()
		return fmt.Errorf("%s: queue: %w", cfg.Where("queue"), err)
	}
	s.queue, s.worker = q, w
	s.notifier = newNotifier(s.log)
	s.retention, s.deadRetention = qc.Retention.D(), qc.DeadRetention.D()
	h.queue, h.queueMaxBody = q, int64(qc.MaxBody)
	return nil
}

// Metrics returns the server's metrics.
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// Start binds every listener and the admin listener, then serves. If any
// address cannot be bound, everything bound so far is closed and the error
// names the config field.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("server already started")
	}
	if s.stopping {
		return errors.New("server closed")
	}
	var bound []*listener
	fail := func(err error) error {
		for _, l := range bound {
			l.sock.Close()
		}
		return err
	}
	for i, key := range listenerKeys(s.cfg) {
		l, err := s.bind(s.cfg, i, key)
		if err != nil {
			return fail(err)
		}
		bound = append(bound, l)
	}
	var adm *listener
	if adminOn(s.cfg) {
		var err error
		if adm, err = s.bindAdmin(s.cfg); err != nil {
			return fail(err)
		}
	}
	s.started = true
	s.handler.table.Load().start()
	for _, l := range bound {
		s.listeners[l.key] = l
		s.serveLocked(l)
	}
	if adm != nil {
		s.admin = adm
		s.serveLocked(adm)
	}
	if s.worker != nil {
		// Stopped by Close, which cancels s.stop.
		s.wg.Go(s.runWorker)
		s.wg.Go(s.runRetention)
		for range callbackSenders {
			s.wg.Go(s.runNotifier)
		}
	}
	s.log.Info("switchboard started", "listeners", s.addrsLocked(), "admin", s.adminAddrLocked())
	return nil
}

// runWorker delivers queued requests until Close.
func (s *Server) runWorker() {
	if err := s.worker.Run(s.stop); err != nil {
		s.log.Error("queue worker stopped", "error", err)
	}
}

// runNotifier sends delivery callbacks until Close.
func (s *Server) runNotifier() { s.notifier.run(s.stop) }

// bindError says which field of cfg holds an address that failed to bind.
func bindError(cfg *config.Config, field string, err error) error {
	return fmt.Errorf("%s: %s: %w", cfg.Where(field), field, err)
}

// bind loads the certificate of cfg's listener i, opens its socket and
// prepares its http.Server; nothing is accepted until serveLocked. Errors
// name the config field.
func (s *Server) bind(cfg *config.Config, i int, key string) (*listener, error) {
	lc := cfg.Listeners[i]
	field := fmt.Sprintf("listeners[%d].address", i)
	l := &listener{key: key, cfg: lc, tls: lc.TLS != nil}
	if lc.TLS != nil {
		cert, err := loadCert(lc.TLS)
		if err != nil {
			return nil, bindError(cfg, field, err)
		}
		l.cert.Store(cert)
	}
	ln, err := s.listen("tcp", lc.Address)
	if err != nil {
		return nil, bindError(cfg, field, err)
	}
	l.sock = newSocket(callerListener{ln}, s.log)
	l.srv = s.proxyServer(l)
	return l, nil
}

// bindAdmin opens cfg's admin socket and prepares its http.Server.
func (s *Server) bindAdmin(cfg *config.Config) (*listener, error) {
	ln, err := s.listen("tcp", cfg.Admin.Address)
	if err != nil {
		return nil, bindError(cfg, "admin.address", err)
	}
	return &listener{sock: newSocket(ln, s.log), srv: newServer(s.adminServer(), false)}, nil
}

func loadCert(tc *config.TLS) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(tc.CertFile, tc.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate: %w", err)
	}
	return &cert, nil
}

// proxyServer returns a server for l's current settings.
func (s *Server) proxyServer(l *listener) *server {
	lc := l.cfg
	p := new(http.Protocols)
	p.SetHTTP1(true)
	if lc.TLS != nil {
		p.SetHTTP2(true)
	} else if lc.H2C == nil || *lc.H2C {
		p.SetUnencryptedHTTP2(true)
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: lc.ReadHeaderTimeout.D(),
		IdleTimeout:       lc.IdleTimeout.D(),
		MaxHeaderBytes:    int(lc.MaxHeaderBytes),
		Protocols:         p,
		ConnContext:       withCallerConn,
		// net/http logs a handful of connection errors itself (TLS
		// handshakes, panics other than ErrAbortHandler); send them to
		// our log at debug level rather than to stderr.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	if lc.TLS != nil {
		srv.TLSConfig = &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return l.cert.Load(), nil
			},
		}
	}
	out := newServer(srv, lc.TLS != nil)
	if lc.TLS == nil {
		out.fast = &fastServer{
			srv:   out,
			conns: map[*fastConn]struct{}{},
			spawn: s.wg.Go,
			log:   s.log.Error,
		}
	}
	return out
}

func (s *Server) newAdminHandler(cfg *config.Config) *http.Handler {
	h := admin.Handler(admin.Options{
		Token:    cfg.Admin.Token,
		Ready:    func() bool { return !s.draining.Load() },
		Registry: s.metrics.Registry,
		Queue:    s.queue,
	})
	return &h
}

// adminServer serves the admin handler current at each request, so a
// reload can change the token without touching a running http.Server.
func (s *Server) adminServer() *http.Server {
	return &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			(*s.adminHandler.Load()).ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// serveLocked starts l's accept loop and its server's serve loop.
func (s *Server) serveLocked(l *listener) {
	s.wg.Go(l.sock.run)
	s.serveOnLocked(l.srv, l.sock.current())
}

// serveOnLocked runs srv on h in a goroutine the server waits for. A
// cleartext listener's connections go to the fast path first, which hands
// what it does not serve to srv.http on a listener of its own.
func (s *Server) serveOnLocked(srv *server, h *handoff) {
	srv.h = h
	if srv.fast != nil {
		srv.fast.inner = newHandoff(h.sock)
		s.wg.Go(func() { s.runFast(srv) })
	}
	s.wg.Go(func() { s.runServer(srv) })
}

// runFast runs srv's fast path until srv's handoff closes.
func (s *Server) runFast(srv *server) {
	defer close(srv.done)
	srv.fast.serve(srv.h)
}

// closeIdle closes srv's idle connections, as a drain does once its grace
// has passed.
func (srv *server) closeIdle() {
	srv.http.SetKeepAlivesEnabled(false)
	if srv.fast != nil {
		srv.fast.closeIdle()
	}
}

// close closes srv's listener and connections at once.
func (srv *server) close() {
	srv.http.Close()
	if srv.fast != nil {
		srv.fast.closeAll()
	}
}

func (s *Server) runServer(srv *server) {
	h := srv.h
	if srv.fast != nil {
		// The fast path closes done; this server serves what it hands
		// over, until Shutdown or Close.
		h = srv.fast.inner
	} else {
		defer close(srv.done)
	}
	// Serve closes h when it returns, but ServeTLS can fail before
	// calling Serve; the accept loop must learn that srv takes nothing more.
	defer h.Close()
	defer srv.h.Close()
	var err error
	if srv.tls {
		err = srv.http.ServeTLS(h, "", "")
	} else {
		err = srv.http.Serve(h)
	}
	// net.ErrClosed: a drain closed srv's handoff to stop it taking
	// connections.
	if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		s.log.Error("listener stopped", "address", srv.h.Addr().String(), "error", err)
	}
}

// Addrs returns the bound address of each configured listener, in config
// order (useful when the config asks for port 0).
func (s *Server) Addrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrsLocked()
}

func (s *Server) addrsLocked() []string {
	var out []string
	for _, key := range listenerKeys(s.cfg) {
		if l := s.listeners[key]; l != nil {
			out = append(out, l.sock.Addr().String())
		}
	}
	return out
}

// listenerKeys names cfg's listeners, in order, for matching them across
// reloads: by address, and for an address given again (port 0 may be), by
// address and occurrence, so every listener has a key of its own.
func listenerKeys(cfg *config.Config) []string {
	keys := make([]string, len(cfg.Listeners))
	seen := map[string]int{}
	for i, lc := range cfg.Listeners {
		keys[i] = lc.Address
		if n := seen[lc.Address]; n > 0 {
			keys[i] = fmt.Sprintf("%s#%d", lc.Address, n)
		}
		seen[lc.Address]++
	}
	return keys
}

// AdminAddr returns the admin listener's bound address, or "". It is safe
// for concurrent use with Reload.
func (s *Server) AdminAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adminAddrLocked()
}

func (s *Server) adminAddrLocked() string {
	if s.admin == nil {
		return ""
	}
	return s.admin.sock.Addr().String()
}

func adminOn(cfg *config.Config) bool {
	return cfg.Admin.Address != config.AdminOff && cfg.Admin.Address != ""
}

// Reload switches to cfg. Requests in flight finish on the old
// configuration; new requests use the new one. Listeners are added and
// removed by address; a TLS certificate is re-read; changed listener
// settings and a changed admin address take effect without closing a
// socket that stays. If anything in cfg cannot be applied, nothing changes
// and the error says why.
func (s *Server) Reload(cfg *config.Config) error {
	err := s.reload(cfg)
	s.metrics.Reload(err == nil)
	return err
}

// reloadPlan is what a reload loaded and bound but has not yet put in
// force.
type reloadPlan struct {
	keys         []string // listenerKeys of the new config
	table        *table
	changed      []listenerChange
	added        []*listener // bound, not accepting
	adminChanged bool        // admin address changed, or admin turned on or off
	admin        *listener   // the new admin listener, bound, not accepting; nil for off
	accessW      io.Writer
	accessF      *os.File
}

// listenerChange is the new configuration of a listener that stays.
type listenerChange struct {
	l       *listener
	cfg     config.Listener
	cert    *tls.Certificate // re-read certificate; nil without TLS
	rebuild bool             // settings changed: serve on a new http.Server
}

func (s *Server) reload(cfg *config.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.stopping:
		return errors.New("reload: server is shutting down")
	case !s.started:
		return errors.New("reload: server not started")
	}
	if cfg.UsesQueue() && s.queue == nil {
		return errors.New("reload: async and fallback routes need the delivery queue, which opens only at start: restart to add the first such route")
	}
	old := s.handler.table.Load()
	t, err := newTable(cfg, old)
	if err != nil {
		return err
	}
	p := &reloadPlan{keys: listenerKeys(cfg), table: t}
	if err := s.prepareLocked(cfg, p); err != nil {
		p.abandon(old)
		return err
	}
	s.commitLocked(cfg, p, old)
	return nil
}

// prepareLocked does everything in a reload that can fail: it re-reads
// certificates, binds new addresses and opens the access log.
func (s *Server) prepareLocked(cfg *config.Config, p *reloadPlan) error {
	for i, key := range p.keys {
		if cur := s.listeners[key]; cur != nil {
			c, err := prepareChange(cfg, cur, i)
			if err != nil {
				return err
			}
			p.changed = append(p.changed, c)
			continue
		}
		l, err := s.bind(cfg, i, key)
		if err != nil {
			return err
		}
		p.added = append(p.added, l)
	}
	if adminOn(cfg) != adminOn(s.cfg) || (adminOn(cfg) && cfg.Admin.Address != s.cfg.Admin.Address) {
		p.adminChanged = true
		if adminOn(cfg) {
			l, err := s.bindAdmin(cfg)
			if err != nil {
				return err
			}
			p.admin = l
		}
	}
	w, f, err := s.openAccessLog(cfg)
	if err != nil {
		return err
	}
	p.accessW, p.accessF = w, f
	return nil
}

// prepareChange loads what listener l needs to take on cfg's listener i.
func prepareChange(cfg *config.Config, l *listener, i int) (listenerChange, error) {
	lc := cfg.Listeners[i]
	c := listenerChange{l: l, cfg: lc}
	if l.tls != (lc.TLS != nil) {
		field := fmt.Sprintf("listeners[%d].tls", i)
		return c, fmt.Errorf("%s: %s: switching TLS on or off needs a restart (or a new address)", cfg.Where(field), field)
	}
	if lc.TLS != nil {
		cert, err := loadCert(lc.TLS)
		if err != nil {
			field := fmt.Sprintf("listeners[%d].tls", i)
			return c, fmt.Errorf("%s: %s: %w", cfg.Where(field), field, err)
		}
		c.cert = cert
	}
	old := l.cfg
	c.rebuild = old.ReadHeaderTimeout != lc.ReadHeaderTimeout || old.IdleTimeout != lc.IdleTimeout ||
		old.MaxHeaderBytes != lc.MaxHeaderBytes || !sameBoolPtr(old.H2C, lc.H2C)
	return c, nil
}

// abandon releases what a failed reload prepared, leaving the
// configuration in force as it was.
func (p *reloadPlan) abandon(old *table) {
	for _, l := range p.added {
		l.sock.Close()
	}
	if p.admin != nil {
		p.admin.sock.Close()
	}
	if p.accessF != nil {
		p.accessF.Close()
	}
	// Close the pools newTable made; old's pools are still in use.
	p.table.retire(old)
}

// commitLocked puts a prepared reload in force. Nothing in it can fail.
func (s *Server) commitLocked(cfg *config.Config, p *reloadPlan, old *table) {
	drain := cfg.DrainTimeout.D()
	s.handler.table.Store(p.table)
	p.table.start()
	old.retire(p.table)
	s.access.swap(p.accessW, p.accessF)
	s.handler.log.Store(s.accessLogger(cfg))
	for _, c := range p.changed {
		s.changeLocked(c, drain)
	}
	for key, l := range s.listeners {
		if !slices.Contains(p.keys, key) {
			delete(s.listeners, key)
			// Closed now, so the port is free when Reload returns.
			l.sock.Close()
			s.retireLocked(l.srv, l.sock, drain)
		}
	}
	for _, l := range p.added {
		s.listeners[l.key] = l
		s.serveLocked(l)
	}
	if p.adminChanged {
		if s.admin != nil {
			s.admin.sock.Close()
			s.retireLocked(s.admin.srv, s.admin.sock, drain)
		}
		s.admin = p.admin
		if s.admin != nil {
			s.serveLocked(s.admin)
		}
		s.log.Info("admin listener changed", "admin", s.adminAddrLocked())
	}
	if cfg.Admin.Token != s.cfg.Admin.Token {
		s.adminHandler.Store(s.newAdminHandler(cfg))
	}
	s.cfg = cfg
}

// changeLocked applies c to its listener. Changed settings get a new
// http.Server on the same socket; the old server drains the connections it
// has, so requests in flight finish under the settings they started with.
func (s *Server) changeLocked(c listenerChange, drain time.Duration) {
	l := c.l
	if c.cert != nil {
		l.cert.Store(c.cert)
	}
	l.cfg = c.cfg
	if !c.rebuild {
		return
	}
	prev := l.srv
	l.srv = s.proxyServer(l)
	s.serveOnLocked(l.srv, l.sock.replace())
	s.retireLocked(prev, nil, drain)
	s.log.Info("listener settings changed; existing connections drain", "address", l.sock.Addr().String())
}

func sameBoolPtr(a, b *bool) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// retireLocked drains srv, which a reload replaced or whose listener it
// removed (sock, already closed), within timeout, in a goroutine Shutdown
// and Close wait for.
func (s *Server) retireLocked(srv *server, sock *socket, timeout time.Duration) {
	done := make(chan struct{})
	s.retired[srv] = done
	s.wg.Go(func() { s.drainRetired(srv, sock, timeout, done) })
}

// drainRetired drains srv within timeout, or until Close, then forgets it
// and closes done.
func (s *Server) drainRetired(srv *server, sock *socket, timeout time.Duration, done chan struct{}) {
	defer func() {
		s.mu.Lock()
		delete(s.retired, srv)
		s.mu.Unlock()
		close(done)
	}()
	ctx, cancel := context.WithTimeout(s.stop, timeout)
	defer cancel()
	srv.drain(ctx, sock)
}

// drain lets srv finish what it has without dropping a request, and
// returns when srv holds no connection; a reload retiring srv and Shutdown
// both drain this way. It takes no new connection (after the accept loop
// of sock, closed by the caller, has handed over what it accepted), lets
// each HTTP/1 connection finish the request it is serving or about to read
// and then closes it, and sends GOAWAY to HTTP/2 connections once no
// HTTP/1 connection is left (see connSet). When ctx is done first, drain
// closes every connection srv still has and returns ctx's error. sock is
// nil when srv's socket stays open for srv's replacement.
func (srv *server) drain(ctx context.Context, sock *socket) error {
	if sock != nil {
		// Let the accept loop hand srv what it accepted before the
		// socket closed.
		waitDone(ctx, sock.done)
	}
	// From here on the socket's accept loop, if it still runs, passes
	// connections to srv's replacement. Once srv's serve loop has
	// returned, every connection srv will ever have is in srv.conns.
	srv.h.Close()
	waitDone(ctx, srv.done)
	// Every HTTP/1 response from now on says Connection: close, so a
	// keep-alive caller learns to go with the answer to the request it
	// sends next. Closing idle connections at once instead would race a
	// request already on its way (the caller sees EOF); callers that send
	// nothing within keepAliveGrace have their idle connections closed.
	srv.conns.closing.Store(true)
	grace, cancel := context.WithTimeout(ctx, keepAliveGrace)
	err := srv.conns.waitH1Gone(grace)
	cancel()
	if err != nil && ctx.Err() == nil {
		srv.closeIdle()
		err = srv.conns.waitH1Gone(ctx)
	}
	if err == nil {
		err = srv.http.Shutdown(ctx)
	}
	if err != nil {
		srv.close()
	}
	return err
}

// keepAliveGrace is how long a drain lets idle HTTP/1 keep-alive callers
// send one last request (answered with Connection: close) before it closes
// their connections.
const keepAliveGrace = time.Second

// waitDone waits until ch is closed or ctx is done, and then returns
// ctx's error if ch is still open.
func waitDone(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// DrainDelay returns the drain delay of the configuration in force.
func (s *Server) DrainDelay() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.DrainDelay.D()
}

// DrainTimeout returns the drain timeout of the configuration in force.
func (s *Server) DrainTimeout() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.DrainTimeout.D()
}

// Shutdown drains (rule R7): it stops accepting, tells keep-alive callers
// to go (Connection: close on HTTP/1.1, GOAWAY on HTTP/2), lets requests and
// tunnels in flight finish until ctx is done, then closes whatever is left.
// Each server drains as a server a reload retires does (see server.drain),
// so a request on a connection accepted just before the drain is served,
// not dropped. Servers a reload retired go on draining under their own
// deadline, and are closed at ctx's. The admin listener answers /readyz
// with 503 throughout and closes last.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	if d := s.DrainDelay(); d > 0 {
		// Still accepting while load balancers see /readyz fail.
		s.log.Info("not ready; still accepting for drain_delay", "drain_delay", d.String())
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	s.mu.Lock()
	s.stopping = true
	type liveServer struct {
		srv  *server
		sock *socket
	}
	var live []liveServer
	for _, l := range s.listeners {
		// Closed first, so that new callers are refused rather than
		// accepted by a server that is going away.
		l.sock.Close()
		live = append(live, liveServer{l.srv, l.sock})
	}
	retired := slices.Collect(maps.Values(s.retired))
	s.mu.Unlock()
	s.log.Info("draining", "listeners", len(live))
	errs := make([]error, len(live)+len(retired), len(live)+len(retired)+1)
	var wg sync.WaitGroup
	for i, l := range live {
		wg.Go(func() { errs[i] = l.srv.drain(ctx, l.sock) })
	}
	for i, done := range retired {
		wg.Go(func() { errs[len(live)+i] = waitDone(ctx, done) })
	}
	wg.Wait()
	err := errors.Join(append(errs, s.handler.tunnels.wait(ctx))...)
	if err != nil {
		// The drains closed their servers' connections; Close, below,
		// closes those of retired servers.
		s.log.Warn("drain deadline passed; closing what is left", "error", err)
		s.handler.tunnels.closeAll()
	}
	s.Close()
	return err
}

// Close closes everything at once, without draining, and returns when
// every goroutine the server started has ended. It is idempotent.
func (s *Server) Close() {
	s.mu.Lock()
	s.stopping = true
	for _, l := range s.listeners {
		l.sock.Close()
		l.srv.close()
	}
	if s.admin != nil {
		s.admin.sock.Close()
		s.admin.srv.close()
	}
	for srv := range s.retired {
		srv.close()
	}
	s.mu.Unlock()
	s.cancelStop()
	s.handler.tunnels.closeAll()
	s.handler.stopClosing()
	s.wg.Wait()
	// Closing the callers' connections cancelled every request, and
	// stopClosing those on ignore_client_abort routes; wait for them so no
	// upstream connection returns to a pool after it was emptied.
	s.handler.active.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.handler.table.Load().pools {
		p.Close()
	}
	s.access.swap(io.Discard, nil)
	if s.queue != nil {
		// After the worker stopped (s.wg) and every request's Put
		// returned (active): nothing uses the queue any more.
		s.queue.Close()
	}
}

// openAccessLog opens cfg's access-log destination; f is the file to close
// later, if one was opened. Reopening the same path on every reload lets
// SIGHUP follow log rotation.
func (s *Server) openAccessLog(cfg *config.Config) (w io.Writer, f *os.File, err error) {
	switch p := cfg.AccessLog.Path; p {
	case "off":
		return io.Discard, nil, nil
	case "", "stdout":
		return s.opts.Stdout, nil, nil
	case "stderr":
		return s.opts.Stderr, nil, nil
	default:
		f, err = os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: access_log.path: %w", cfg.Where("access_log.path"), err)
		}
		return f, f, nil
	}
}

// accessLogger returns the access logger for cfg. With the access log off
// it discards records before they are formatted.
func (s *Server) accessLogger(cfg *config.Config) *slog.Logger {
	if cfg.AccessLog.Path == "off" {
		return slog.New(slog.DiscardHandler)
	}
	return s.accessJSON
}

// accessWriter is the access log's destination. A reload swaps it under
// the lock, so no record is written to a file after it was closed.
type accessWriter struct {
	mu sync.Mutex // guards w and f
	w  io.Writer
	f  *os.File
}

func (a *accessWriter) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.w.Write(p)
}

// swap sets a new destination and closes the old file, if any.
func (a *accessWriter) swap(w io.Writer, f *os.File) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f != nil && a.f != f {
		a.f.Close()
	}
	a.w, a.f = w, f
}
