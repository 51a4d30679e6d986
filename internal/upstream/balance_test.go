package upstream

import (
	"slices"
	"sync"
	"testing"

	"github.com/switchboard-proxy/switchboard/internal/config"
)

// hold acquires n leases on the endpoint with the given host, steering
// with avoid, and releases them at the end of the test.
func hold(t *testing.T, p *Pool, host string, n int) {
	t.Helper()
	var others []*Endpoint
	for _, e := range p.endpoints {
		if e.Host != host {
			others = append(others, e)
		}
	}
	for range n {
		l := mustAcquire(t, p, others...)
		if l.Endpoint.Host != host {
			t.Fatalf("hold %s: got %s", host, l.Endpoint.Host)
		}
		t.Cleanup(func() { l.Release(ResultIgnore) })
	}
}

// Smooth weighted round robin gives each endpoint exactly its share over a
// full cycle, without bursts longer than its weight.
func TestAcquireRoundRobin(t *testing.T) {
	tests := []struct {
		name     string
		weights  []int
		rounds   int
		want     map[string]int
		maxBurst int
	}{
		{"equal", []int{1, 1}, 100, map[string]int{"e0:80": 100, "e1:80": 100}, 1},
		{"3:1", []int{3, 1}, 100, map[string]int{"e0:80": 300, "e1:80": 100}, 3},
		{"5:2:1", []int{5, 2, 1}, 50, map[string]int{"e0:80": 250, "e1:80": 100, "e2:80": 50}, 2},
		{"zero weight is 1", []int{0, 2}, 10, map[string]int{"e0:80": 10, "e1:80": 20}, 2},
		{"single", []int{7}, 10, map[string]int{"e0:80": 70}, 70},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestPool(t, config.Pool{Endpoints: weighted(tt.weights...)})
			counts := map[string]int{}
			prev, burst := "", 0
			for range tt.rounds * p.total {
				l := mustAcquire(t, p)
				h := l.Endpoint.Host
				l.Release(ResultOK)
				counts[h]++
				if h == prev {
					burst++
				} else {
					prev, burst = h, 1
				}
				if burst > tt.maxBurst {
					t.Fatalf("burst of %d picks of %s", burst, h)
				}
			}
			if !mapsEqual(counts, tt.want) {
				t.Errorf("counts = %v, want %v", counts, tt.want)
			}
		})
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// With two endpoints the power of two choices always compares both, so the
// one with fewer attempts in flight per unit of weight always wins.
func TestAcquireLeastOutstanding(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		held    []int // leases held per endpoint
		allowed []string
	}{
		{"fewer in flight", []int{1, 1}, []int{2, 0}, []string{"e1:80"}},
		{"fewer in flight, other side", []int{1, 1}, []int{1, 3}, []string{"e0:80"}},
		{"relative to weight", []int{3, 1}, []int{2, 1}, []string{"e0:80"}},
		{"heavier but busier", []int{1, 3}, []int{1, 4}, []string{"e0:80"}},
		{"most loaded of three never picked", []int{1, 1, 1}, []int{0, 0, 5}, []string{"e0:80", "e1:80"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestPool(t, config.Pool{Balance: config.BalanceLeastOutstanding, Endpoints: weighted(tt.weights...)})
			for i, n := range tt.held {
				hold(t, p, p.endpoints[i].Host, n)
			}
			for range 200 {
				l := mustAcquire(t, p)
				got := l.Endpoint.Host
				l.Release(ResultOK)
				if !slices.Contains(tt.allowed, got) {
					t.Fatalf("picked %s, want one of %v", got, tt.allowed)
				}
			}
		})
	}
}

// An idle pool, where every comparison ties, still follows the weights.
func TestAcquireLeastOutstandingIdleFollowsWeights(t *testing.T) {
	p := newTestPool(t, config.Pool{Balance: config.BalanceLeastOutstanding, Endpoints: weighted(3, 1)})
	const n = 4000
	heavy := 0
	for range n {
		l := mustAcquire(t, p)
		if l.Endpoint.Host == "e0:80" {
			heavy++
		}
		l.Release(ResultOK)
	}
	// Expect 75%; the bounds are about seven standard deviations away.
	if share := float64(heavy) / n; share < 0.70 || share > 0.80 {
		t.Errorf("weight-3 endpoint got %.3f of picks, want about 0.75", share)
	}
}

// Endpoints a request already tried are passed over while another has a
// free slot, and reused only when none has.
func TestAcquireAvoid(t *testing.T) {
	tests := []struct {
		name     string
		maxConns int
		held     []string // hosts with one lease held
		avoid    []string
		allowed  []string
	}{
		{"one avoided", 0, nil, []string{"e0:80"}, []string{"e1:80", "e2:80"}},
		{"two avoided", 0, nil, []string{"e0:80", "e2:80"}, []string{"e1:80"}},
		{"all avoided: reuse", 0, nil, []string{"e0:80", "e1:80", "e2:80"}, []string{"e0:80", "e1:80", "e2:80"}},
		{"others full: reuse rather than wait", 1, []string{"e1:80", "e2:80"}, []string{"e0:80"}, []string{"e0:80"}},
		{"one other free", 1, []string{"e1:80"}, []string{"e0:80"}, []string{"e2:80"}},
	}
	for _, balance := range []string{config.BalanceRoundRobin, config.BalanceLeastOutstanding} {
		for _, tt := range tests {
			t.Run(balance+"/"+tt.name, func(t *testing.T) {
				p := newTestPool(t, config.Pool{Balance: balance, MaxConnsPerEndpoint: tt.maxConns, Endpoints: weighted(1, 1, 1)})
				for _, h := range tt.held {
					hold(t, p, h, 1)
				}
				var avoid []*Endpoint
				for _, h := range tt.avoid {
					avoid = append(avoid, endpoint(t, p, h))
				}
				for range 50 {
					l := mustAcquire(t, p, avoid...)
					got := l.Endpoint.Host
					l.Release(ResultOK)
					if !slices.Contains(tt.allowed, got) {
						t.Fatalf("picked %s, want one of %v", got, tt.allowed)
					}
				}
			})
		}
	}
}

// Outstanding counts leases in flight; a second Release does not count.
func TestLeaseOutstanding(t *testing.T) {
	p := newTestPool(t, config.Pool{Endpoints: weighted(1)})
	a, b := mustAcquire(t, p), mustAcquire(t, p)
	if got := p.Endpoints()[0].Outstanding; got != 2 {
		t.Fatalf("outstanding = %d, want 2", got)
	}
	a.Release(ResultOK)
	a.Release(ResultOK)
	if got := p.Endpoints()[0].Outstanding; got != 1 {
		t.Fatalf("outstanding after double release = %d, want 1", got)
	}
	b.Release(ResultIgnore)
	if got := p.Endpoints()[0].Outstanding; got != 0 {
		t.Fatalf("outstanding = %d, want 0", got)
	}
}

// A lease acquired again and again into the same memory counts each use's
// Release once, however many goroutines release it at the same time.
func TestAcquireIntoReuse(t *testing.T) {
	p := newTestPool(t, config.Pool{Endpoints: weighted(1), MaxConnsPerEndpoint: 1,
		Health: config.Health{Passive: config.PassiveHealth{ConsecutiveFailures: 1000}}})
	var l Lease
	for i := range 100 {
		if err := p.AcquireInto(t.Context(), nil, &l); err != nil {
			t.Fatalf("use %d: AcquireInto: %v", i, err)
		}
		if got := p.Endpoints()[0].Outstanding; got != 1 {
			t.Fatalf("use %d: outstanding = %d, want 1", i, got)
		}
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() { l.Release(Result5xx) })
		}
		wg.Wait()
		st := p.Endpoints()[0]
		if st.Outstanding != 0 || st.ConsecutiveFailures != i+1 {
			t.Fatalf("use %d: outstanding %d, failures %d after triple release; want 0, %d",
				i, st.Outstanding, st.ConsecutiveFailures, i+1)
		}
	}
}

// HTTP/1.1 pools cap the transport's connections per endpoint like the
// pool caps attempts; HTTP/2 multiplexes, so its transport is not capped.
func TestTransportMaxConnsPerHost(t *testing.T) {
	tests := []struct {
		protocol string
		maxConns int
		want     int
	}{
		{"", 8, 8},
		{config.ProtoHTTP1, 8, 8},
		{config.ProtoHTTP1, 0, 0},
		{config.ProtoH2C, 8, 0},
		{config.ProtoAuto, 8, 0},
	}
	for _, tt := range tests {
		p := newTestPool(t, config.Pool{Protocol: tt.protocol, MaxConnsPerEndpoint: tt.maxConns, Endpoints: weighted(1)})
		if got := p.Transport.MaxConnsPerHost; got != tt.want {
			t.Errorf("protocol %q max_conns %d: MaxConnsPerHost = %d, want %d", tt.protocol, tt.maxConns, got, tt.want)
		}
	}
}
