package proxy

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/switchboard-proxy/switchboard/internal/hop"
	"github.com/switchboard-proxy/switchboard/internal/metrics"
)

func prevented(t *testing.T, m *metrics.Metrics, where string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "switchboard_prevented_writes_total" {
			continue
		}
		for _, mm := range mf.GetMetric() {
			for _, l := range mm.GetLabel() {
				if l.GetName() == "where" && l.GetValue() == where {
					return mm.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// Rule R2: once the caller is gone, the response copy writes nothing more
// and counts what it did not write.
func TestNoWriteAfterCallerGone(t *testing.T) {
	m := metrics.New()
	ctx, cancel := context.WithCancel(t.Context())
	rec := httptest.NewRecorder()
	ex := &exchange{h: &Handler{metrics: m}, w: rec, callerCtx: ctx, route: &route{name: "r"}}
	if err := ex.write([]byte("before")); err != nil {
		t.Fatal(err)
	}
	cancel()
	for range 3 {
		if err := ex.write([]byte("after")); err != errCallerGone {
			t.Fatalf("write after caller left = %v, want errCallerGone", err)
		}
	}
	if got := rec.Body.String(); got != "before" {
		t.Errorf("caller got %q", got)
	}
	if n := prevented(t, m, "response_body"); n != 3 {
		t.Errorf("prevented writes = %v, want 3", n)
	}
	// An error answer to a caller who left is not attempted either.
	ex.writeAnswer(http.StatusBadGateway, "connection_terminated", "x")
	if n := prevented(t, m, "error_answer"); n != 1 {
		t.Errorf("prevented error answers = %v, want 1", n)
	}
	if got := rec.Body.String(); got != "before" {
		t.Errorf("caller got %q after leaving", got)
	}
}

// Rule R2 for tunnels: a writer racing the closer never writes to a closed
// socket, and the writes it skipped are counted. Run under -race.
func TestGuardedConnCloseRace(t *testing.T) {
	m := metrics.New()
	a, b := net.Pipe()
	defer b.Close()
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := b.Read(buf); err != nil {
				return
			}
		}
	}()
	g := &guardedConn{rwc: a, prevented: func() { m.PreventedWrite("tunnel_to_caller") }}
	var wg sync.WaitGroup
	start := make(chan struct{})
	wg.Go(func() {
		<-start
		for range 1000 {
			g.Write([]byte("x"))
		}
	})
	wg.Go(func() { <-start; g.Close(); g.Close() })
	close(start)
	wg.Wait()
	if _, err := g.Write([]byte("late")); err == nil {
		t.Fatal("write after close succeeded")
	}
	if n := prevented(t, m, "tunnel_to_caller"); n < 1 {
		t.Errorf("prevented writes = %v, want >= 1", n)
	}
}

// FuzzForwardHeaders checks the header rules on arbitrary input: no
// hop-by-hop header and nothing the Connection header names is forwarded,
// and X-Forwarded-For always ends with the direct peer.
func FuzzForwardHeaders(f *testing.F) {
	f.Add("keep-alive, X-Foo", "X-Foo", "1.2.3.4", "10.0.0.1:555", true)
	f.Add("close", "Upgrade", "", "[::1]:80", false)
	f.Add(",,,", "Te", "a, b", "garbage", true)
	f.Fuzz(func(t *testing.T, connection, name, xff, remote string, trust bool) {
		in := http.Header{}
		in.Set("Connection", connection)
		if k := http.CanonicalHeaderKey(name); k != "" {
			in.Set(k, "v")
		}
		in.Set("X-Forwarded-For", xff)
		in.Set("Keep-Alive", "timeout=5")
		out := http.Header{}
		copyHeader(out, in)
		for k := range out {
			if hop.Drop(k, in["Connection"]) {
				t.Fatalf("forwarded hop-by-hop header %q (Connection: %q)", k, connection)
			}
		}
		r := &http.Request{Header: in, RemoteAddr: remote, Host: "h"}
		var nets []netipPrefix
		if trust {
			nets = allNets
		}
		forwarded(out, r, nets, nil)
		peer := peerAddr(remote)
		got := out.Get("X-Forwarded-For")
		if peer.IsValid() && !strings.HasSuffix(got, peer.String()) {
			t.Fatalf("X-Forwarded-For %q does not end with peer %s", got, peer)
		}
		if !trust && peer.IsValid() && got != peer.String() {
			t.Fatalf("untrusted peer's X-Forwarded-For kept: %q", got)
		}
	})
}

type netipPrefix = netip.Prefix

var allNets = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
