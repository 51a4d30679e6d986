package admin

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestAdmin(t *testing.T) {
	var ready atomic.Bool
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "switchboard_test_total", Help: "t"})
	reg.MustRegister(c)
	c.Inc()
	h := Handler(Options{Token: "s3cret", Ready: ready.Load, Registry: reg})
	do := func(path, token string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", path, nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	cases := []struct {
		name, path, token string
		ready             bool
		status            int
		body              string
	}{
		{"no token", "/healthz", "", true, http.StatusUnauthorized, "token"},
		{"wrong token", "/healthz", "nope", true, http.StatusUnauthorized, "token"},
		{"healthz", "/healthz", "s3cret", false, http.StatusOK, "ok"},
		{"not ready", "/readyz", "s3cret", false, http.StatusServiceUnavailable, "draining"},
		{"ready", "/readyz", "s3cret", true, http.StatusOK, "ready"},
		{"metrics", "/metrics", "s3cret", true, http.StatusOK, "switchboard_test_total 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ready.Store(tc.ready)
			w := do(tc.path, tc.token)
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.body) {
				t.Errorf("GET %s = %d %q; want %d containing %q", tc.path, w.Code, w.Body.String(), tc.status, tc.body)
			}
		})
	}
}
