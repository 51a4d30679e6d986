package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/admin"
	"github.com/switchboard-proxy/switchboard/internal/config"
	"github.com/switchboard-proxy/switchboard/internal/metrics"
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

	// stop is cancelled by Close; it cuts short the drains of listeners a
	// reload removed.
	stop       context.Context
	cancelStop context.CancelFunc

	mu         sync.Mutex // guards the fields below
	cfg        *config.Config
	listeners  map[string]*listener      // by configured address
	admin      *listener                 // nil when the admin listener is off
	retired    map[*http.Server]struct{} // draining after a reload removed their listener
	access     *accessWriter
	accessJSON *slog.Logger // JSON records into access; swapped for a discarding logger when off
	started    bool
	stopping   bool // Shutdown or Close began: no reload, no new goroutine

	draining     atomic.Bool
	adminHandler atomic.Pointer[http.Handler]
	// wg counts serve loops and the drains of retired servers; Close
	// waits for it.
	wg sync.WaitGroup
}

// listener is one bound socket and the http.Server serving it.
type listener struct {
	cfg  config.Listener
	ln   net.Listener
	srv  *http.Server
	cert atomic.Pointer[tls.Certificate] // swapped on reload
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
	s := &Server{opts: opts, log: opts.Log, metrics: opts.Metrics, cfg: cfg,
		listeners: map[string]*listener{}, retired: map[*http.Server]struct{}{}}
	w, f, err := s.openAccessLog(cfg)
	if err != nil {
		return nil, err
	}
	s.stop, s.cancelStop = context.WithCancel(context.Background())
	s.access = &accessWriter{w: w, f: f}
	s.accessJSON = slog.New(slog.NewJSONHandler(s.access, nil))
	s.handler = newHandler(t, s.accessLogger(cfg), opts.Metrics)
	s.adminHandler.Store(s.newAdminHandler(cfg))
	return s, nil
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
	bound := map[string]*listener{}
	fail := func(err error) error {
		for _, l := range bound {
			l.ln.Close()
		}
		return err
	}
	for i, lc := range s.cfg.Listeners {
		l, err := s.bind(s.cfg, lc, fmt.Sprintf("listeners[%d].address", i))
		if err != nil {
			return fail(err)
		}
		bound[lc.Address] = l
	}
	var adm *listener
	if adminOn(s.cfg) {
		var err error
		if adm, err = s.bindAdmin(s.cfg); err != nil {
			return fail(err)
		}
	}
	s.started = true
	for _, l := range bound {
		s.listeners[l.cfg.Address] = l
		s.serve(l)
	}
	if adm != nil {
		s.admin = adm
		s.serve(adm)
	}
	s.log.Info("switchboard started", "listeners", s.addrsLocked(), "admin", s.adminAddrLocked())
	return nil
}

// bindError says which field of cfg holds an address that failed to bind.
func bindError(cfg *config.Config, field string, err error) error {
	return fmt.Errorf("%s: %s: %w", cfg.Where(field), field, err)
}

// bind loads lc's certificate, opens its socket and prepares its
// http.Server; nothing is served until serve. Errors name field of cfg.
func (s *Server) bind(cfg *config.Config, lc config.Listener, field string) (*listener, error) {
	l := &listener{cfg: lc}
	if lc.TLS != nil {
		cert, err := loadCert(lc.TLS)
		if err != nil {
			return nil, bindError(cfg, field, err)
		}
		l.cert.Store(cert)
	}
	ln, err := net.Listen("tcp", lc.Address)
	if err != nil {
		return nil, bindError(cfg, field, err)
	}
	l.ln = callerListener{ln}
	l.srv = s.proxyServer(l)
	return l, nil
}

// bindAdmin opens cfg's admin socket and prepares its http.Server.
func (s *Server) bindAdmin(cfg *config.Config) (*listener, error) {
	ln, err := net.Listen("tcp", cfg.Admin.Address)
	if err != nil {
		return nil, bindError(cfg, "admin.address", err)
	}
	return &listener{ln: ln, srv: s.adminServer()}, nil
}

func loadCert(tc *config.TLS) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(tc.CertFile, tc.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate: %w", err)
	}
	return &cert, nil
}

func (s *Server) proxyServer(l *listener) *http.Server {
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
	return srv
}

func (s *Server) newAdminHandler(cfg *config.Config) *http.Handler {
	h := admin.Handler(admin.Options{
		Token:    cfg.Admin.Token,
		Ready:    func() bool { return !s.draining.Load() },
		Registry: s.metrics.Registry,
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

// serve runs l's serve loop in a goroutine the server waits for.
func (s *Server) serve(l *listener) {
	s.wg.Go(func() {
		var err error
		if l.cfg.TLS != nil {
			err = l.srv.ServeTLS(l.ln, "", "")
		} else {
			err = l.srv.Serve(l.ln)
		}
		// net.ErrClosed: a reload removed the listener and closed its
		// socket; its drain follows.
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			s.log.Error("listener stopped", "address", l.ln.Addr().String(), "error", err)
		}
	})
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
	for _, lc := range s.cfg.Listeners {
		if l := s.listeners[lc.Address]; l != nil {
			out = append(out, l.ln.Addr().String())
		}
	}
	return out
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
	return s.admin.ln.Addr().String()
}

func adminOn(cfg *config.Config) bool {
	return cfg.Admin.Address != config.AdminOff && cfg.Admin.Address != ""
}

// Reload switches to cfg. Requests in flight finish on the old
// configuration; new requests use the new one. Listeners are added and
// removed by address; a TLS certificate is re-read; the admin listener
// moves, starts or stops with admin.address. If anything in cfg cannot be
// applied, nothing changes and the error says why.
func (s *Server) Reload(cfg *config.Config) error {
	err := s.reload(cfg)
	s.metrics.Reload(err == nil)
	return err
}

// reloadPlan is what a reload loaded and bound but has not yet put in
// force.
type reloadPlan struct {
	table        *table
	changed      []listenerChange
	added        []*listener // bound, not serving
	adminChanged bool        // admin address changed, or admin turned on or off
	admin        *listener   // the new admin listener, bound, not serving; nil for off
	accessW      io.Writer
	accessF      *os.File
}

// listenerChange is the new configuration of a listener that stays.
type listenerChange struct {
	l    *listener
	cfg  config.Listener
	cert *tls.Certificate // re-read certificate; nil without TLS
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
	old := s.handler.table.Load()
	t, err := newTable(cfg, old)
	if err != nil {
		return err
	}
	p := &reloadPlan{table: t}
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
	for i, lc := range cfg.Listeners {
		if cur := s.listeners[lc.Address]; cur != nil {
			c, err := prepareChange(cfg, cur, i)
			if err != nil {
				return err
			}
			p.changed = append(p.changed, c)
			continue
		}
		l, err := s.bind(cfg, lc, fmt.Sprintf("listeners[%d].address", i))
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
	if (l.cfg.TLS == nil) != (lc.TLS == nil) {
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
	return c, nil
}

// abandon releases what a failed reload prepared, leaving the
// configuration in force as it was.
func (p *reloadPlan) abandon(old *table) {
	for _, l := range p.added {
		l.ln.Close()
	}
	if p.admin != nil {
		p.admin.ln.Close()
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
	old.retire(p.table)
	s.access.swap(p.accessW, p.accessF)
	s.handler.log.Store(s.accessLogger(cfg))
	for _, c := range p.changed {
		s.changeLocked(c)
	}
	for addr, l := range s.listeners {
		if !hasListener(cfg, addr) {
			delete(s.listeners, addr)
			// Closed now, so the port is free when Reload returns.
			l.ln.Close()
			s.retireLocked(l.srv, drain)
		}
	}
	for _, l := range p.added {
		s.listeners[l.cfg.Address] = l
		s.serve(l)
	}
	if p.adminChanged {
		if s.admin != nil {
			s.admin.ln.Close()
			s.retireLocked(s.admin.srv, drain)
		}
		s.admin = p.admin
		if s.admin != nil {
			s.serve(s.admin)
		}
		s.log.Info("admin listener changed", "admin", s.adminAddrLocked())
	}
	if cfg.Admin.Token != s.cfg.Admin.Token {
		s.adminHandler.Store(s.newAdminHandler(cfg))
	}
	s.cfg = cfg
}

// changeLocked applies c to its listener: a new certificate. Other
// settings are fixed for the socket's life; changing them is reported, not
// silently ignored.
func (s *Server) changeLocked(c listenerChange) {
	l, lc := c.l, c.cfg
	if c.cert != nil {
		l.cert.Store(c.cert)
	}
	if l.cfg.ReadHeaderTimeout != lc.ReadHeaderTimeout || l.cfg.IdleTimeout != lc.IdleTimeout ||
		l.cfg.MaxHeaderBytes != lc.MaxHeaderBytes || !sameBoolPtr(l.cfg.H2C, lc.H2C) {
		s.log.Warn("listener settings change takes effect at the next restart", "address", lc.Address)
	}
}

func sameBoolPtr(a, b *bool) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// retireLocked drains srv, whose listener (or admin listener) a reload
// removed and closed, within timeout, in a goroutine Shutdown and Close
// wait for.
func (s *Server) retireLocked(srv *http.Server, timeout time.Duration) {
	s.retired[srv] = struct{}{}
	s.wg.Go(func() { s.drainRetired(srv, timeout) })
}

// drainRetired lets srv's requests in flight finish within timeout, or
// until Close.
func (s *Server) drainRetired(srv *http.Server, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(s.stop, timeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
	}
	s.mu.Lock()
	delete(s.retired, srv)
	s.mu.Unlock()
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
// Servers still draining after a reload are drained with the rest. The
// admin listener answers /readyz with 503 throughout and closes last.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.mu.Lock()
	s.stopping = true
	srvs := make([]*http.Server, 0, len(s.listeners)+len(s.retired))
	for _, l := range s.listeners {
		srvs = append(srvs, l.srv)
	}
	listeners := len(srvs)
	for srv := range s.retired {
		srvs = append(srvs, srv)
	}
	s.mu.Unlock()
	s.log.Info("draining", "listeners", listeners)
	var wg sync.WaitGroup
	errs := make([]error, len(srvs))
	for i, srv := range srvs {
		wg.Go(func() { errs[i] = srv.Shutdown(ctx) })
	}
	wg.Wait()
	terr := s.handler.tunnels.wait(ctx)
	err := errors.Join(append(errs, terr)...)
	if err != nil {
		s.log.Warn("drain deadline passed; closing what is left", "error", err)
		for _, srv := range srvs {
			srv.Close()
		}
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
		l.srv.Close()
	}
	if s.admin != nil {
		s.admin.srv.Close()
	}
	for srv := range s.retired {
		srv.Close()
	}
	s.mu.Unlock()
	s.cancelStop()
	s.handler.tunnels.closeAll()
	s.handler.stopClosing()
	s.wg.Wait()
	// Closing the callers' connections cancelled every request, and
	// stopClosing those on ignore_client_abort routes; wait for them so no upstream connection returns to a pool after it
	// was emptied.
	s.handler.active.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.handler.table.Load().pools {
		p.Close()
	}
	s.access.swap(io.Discard, nil)
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

func hasListener(cfg *config.Config, addr string) bool {
	for _, lc := range cfg.Listeners {
		if lc.Address == addr {
			return true
		}
	}
	return false
}
