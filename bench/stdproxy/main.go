// Command stdproxy is the benchmark suite's baseline: a minimal reverse
// proxy built on net/http/httputil.ReverseProxy, with the Transport tuned
// for keep-alive to one upstream and nothing else. Requests whose path
// starts with -stall-prefix go to -stall-upstream instead, for the
// hang-up measurement.
//
// It listens on -listen (default an ephemeral loopback port) and prints the
// bound address as its first stdout line, "listening on ADDR". It stops on
// SIGINT/SIGTERM, or by itself after -max-run.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "stdproxy:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	upstream := flag.String("upstream", "", "upstream host:port (required)")
	stall := flag.String("stall-upstream", "", "upstream host:port for paths under -stall-prefix (default: -upstream)")
	stallPrefix := flag.String("stall-prefix", "/stall", "path prefix routed to -stall-upstream")
	maxIdle := flag.Int("max-idle", 128, "idle upstream connections kept (MaxIdleConns and MaxIdleConnsPerHost)")
	maxRun := flag.Duration("max-run", 10*time.Minute, "exit after this long even if nobody stops it")
	flag.Parse()
	if *upstream == "" {
		return fmt.Errorf("-upstream is required")
	}
	if *stall == "" {
		*stall = *upstream
	}

	// DefaultTransport's dialer and timeouts, with the idle pool sized for
	// the load: DefaultTransport keeps only 2 idle connections per host,
	// so 50 concurrent callers would open and close upstream connections
	// all the time.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = *maxIdle
	tr.MaxIdleConnsPerHost = *maxIdle
	tr.IdleConnTimeout = 60 * time.Second
	tr.ForceAttemptHTTP2 = false
	tr.DisableCompression = true

	origin, err := newProxy(*upstream, tr)
	if err != nil {
		return err
	}
	stalled, err := newProxy(*stall, tr)
	if err != nil {
		return err
	}
	mux := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, *stallPrefix) {
			stalled.ServeHTTP(w, r)
			return
		}
		origin.ServeHTTP(w, r)
	})

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// A caller that hangs up mid-exchange is routine here.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *maxRun)
	defer cancel()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}

// newProxy is a ReverseProxy to hostport over tr that logs nothing.
func newProxy(hostport string, tr *http.Transport) (*httputil.ReverseProxy, error) {
	u, err := url.Parse("http://" + hostport)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", hostport, err)
	}
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host
		},
		Transport: tr,
		ErrorLog:  log.New(io.Discard, "", 0),
	}, nil
}
