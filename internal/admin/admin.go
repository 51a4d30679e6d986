// Package admin serves switchboard's admin API on its own listener:
// /healthz (the process is alive), /readyz (it accepts traffic: not starting,
// not draining), /metrics (Prometheus) and /queue/... (the delivery queue:
// list, show, replay, drop, purge; see docs/queue.md). When a token is set,
// every request must carry it as "Authorization: Bearer <token>".
package admin

import (
	"crypto/subtle"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboard-proxy/switchboard/internal/queue"
)

// Options configures the admin handler.
type Options struct {
	// Token, when not empty, is required on every request.
	Token string
	// Ready reports whether the proxy accepts traffic.
	Ready func() bool
	// Registry is served at /metrics; nil serves no metrics.
	Registry *prometheus.Registry
	// Queue is the delivery queue served under /queue/; nil (no async
	// route) answers those paths 404 "queue not enabled".
	Queue *queue.Queue
	// Now replaces the clock in tests; nil means time.Now.
	Now func() time.Time
}

// Handler returns the admin API.
func Handler(o Options) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		text(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if o.Ready != nil && !o.Ready() {
			text(w, http.StatusServiceUnavailable, "not ready: starting or draining")
			return
		}
		text(w, http.StatusOK, "ready")
	})
	now := o.Now
	if now == nil {
		now = time.Now
	}
	(&queueAPI{q: o.Queue, now: now}).register(mux)
	if o.Registry != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{Registry: o.Registry}))
	}
	if o.Token == "" {
		return mux
	}
	want := []byte("Bearer " + o.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard-admin"`)
			text(w, http.StatusUnauthorized, "missing or wrong admin token")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func text(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write([]byte(msg + "\n"))
}
