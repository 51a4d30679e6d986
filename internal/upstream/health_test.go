package upstream

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/config"
)

// attempt runs one attempt on the endpoint with the given host (which must
// be available) and ends it with r.
func attempt(t *testing.T, p *Pool, host string, r Result) {
	t.Helper()
	var others []*Endpoint
	for _, e := range p.endpoints {
		if e.Host != host {
			others = append(others, e)
		}
	}
	l := mustAcquire(t, p, others...)
	if l.Endpoint.Host != host {
		t.Fatalf("attempt on %s: got %s", host, l.Endpoint.Host)
	}
	l.Release(r)
}

func passivePool(t *testing.T, n int, ph config.PassiveHealth) (*Pool, *clock) {
	t.Helper()
	eps := make([]int, n)
	for i := range eps {
		eps[i] = 1
	}
	p := newTestPool(t, config.Pool{Endpoints: weighted(eps...), Health: config.Health{Passive: ph}})
	return p, newClock(p)
}

// Connect failures, resets and 5xx answers in a row eject; any other answer
// resets the count; an ignored result does neither.
func TestPassiveEjection(t *testing.T) {
	const (
		cf    = ResultConnectFailure
		reset = ResultReset
		s5xx  = Result5xx
		ok    = ResultOK
		ign   = ResultIgnore
	)
	tests := []struct {
		name         string
		threshold    int
		results      []Result
		wantEjected  bool
		wantFailures int
	}{
		{"connect failures", 3, []Result{cf, cf, cf}, true, 0},
		{"resets", 3, []Result{reset, reset, reset}, true, 0},
		{"5xx", 3, []Result{s5xx, s5xx, s5xx}, true, 0},
		{"mixed", 3, []Result{cf, reset, s5xx}, true, 0},
		{"below threshold", 3, []Result{cf, s5xx}, false, 2},
		{"ok resets the count", 3, []Result{cf, cf, ok, cf, cf}, false, 2},
		{"ignore neither counts nor resets", 3, []Result{cf, ign, cf, ign, ign}, false, 2},
		{"ignore between failures", 3, []Result{cf, ign, cf, ign, cf}, true, 0},
		{"default threshold 5, below", 0, []Result{cf, cf, cf, cf}, false, 4},
		{"default threshold 5", 0, []Result{cf, cf, cf, cf, cf}, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, clk := passivePool(t, 2, config.PassiveHealth{ConsecutiveFailures: tt.threshold})
			for _, r := range tt.results {
				attempt(t, p, "e0:80", r)
			}
			st := p.Endpoints()[0]
			if st.Ejected != tt.wantEjected || st.ConsecutiveFailures != tt.wantFailures {
				t.Fatalf("ejected %v with %d failures, want %v with %d", st.Ejected, st.ConsecutiveFailures, tt.wantEjected, tt.wantFailures)
			}
			wantUntil := time.Time{}
			if tt.wantEjected {
				wantUntil = clk.now().Add(10 * time.Second) // default base_ejection
			}
			if !st.EjectedUntil.Equal(wantUntil) {
				t.Errorf("ejected until %v, want %v", st.EjectedUntil, wantUntil)
			}
		})
	}
}

// Each ejection in a row lasts twice the last, up to max_ejection; a
// success after returning starts over.
func TestPassiveEjectionGrowth(t *testing.T) {
	p, clk := passivePool(t, 2, config.PassiveHealth{ConsecutiveFailures: 1,
		BaseEjection: config.Duration(10 * time.Second), MaxEjection: config.Duration(35 * time.Second)})
	steps := []struct {
		result Result
		want   time.Duration // ejection it causes; 0 = none
	}{
		{ResultReset, 10 * time.Second},
		{ResultReset, 20 * time.Second},
		{ResultReset, 35 * time.Second}, // 40s capped
		{ResultReset, 35 * time.Second},
		{ResultOK, 0},
		{ResultReset, 10 * time.Second},
	}
	for i, s := range steps {
		attempt(t, p, "e0:80", s.result)
		st := p.Endpoints()[0]
		got := time.Duration(0)
		if st.Ejected {
			got = st.EjectedUntil.Sub(clk.now())
		}
		if got != s.want {
			t.Fatalf("step %d (%v): ejected for %v, want %v", i, s.result, got, s.want)
		}
		clk.advance(got) // the ejection ends by time
		if p.Endpoints()[0].Ejected {
			t.Fatalf("step %d: still ejected after %v", i, got)
		}
	}
}

// Results of attempts begun before an ejection neither extend it nor count
// towards the next one.
func TestPassiveEjectionInFlight(t *testing.T) {
	p, clk := passivePool(t, 2, config.PassiveHealth{ConsecutiveFailures: 1})
	inFlight := mustAcquire(t, p, endpoint(t, p, "e1:80"))
	attempt(t, p, "e0:80", ResultConnectFailure)
	until := p.Endpoints()[0].EjectedUntil
	inFlight.Release(Result5xx)
	if st := p.Endpoints()[0]; !st.EjectedUntil.Equal(until) || st.ConsecutiveFailures != 0 {
		t.Fatalf("after an in-flight failure: until %v (want %v), failures %d (want 0)", st.EjectedUntil, until, st.ConsecutiveFailures)
	}
	clk.advance(10 * time.Second)
	attempt(t, p, "e0:80", ResultConnectFailure)
	if got := p.Endpoints()[0].EjectedUntil.Sub(clk.now()); got != 20*time.Second {
		t.Fatalf("second ejection lasts %v, want 20s", got)
	}
}

// An ejected endpoint takes no attempts until its ejection ends.
func TestPassiveEjectedSkipped(t *testing.T) {
	for _, balance := range []string{config.BalanceRoundRobin, config.BalanceLeastOutstanding} {
		t.Run(balance, func(t *testing.T) {
			p := newTestPool(t, config.Pool{Balance: balance, Endpoints: weighted(1, 1, 1),
				Health: config.Health{Passive: config.PassiveHealth{ConsecutiveFailures: 1}}})
			clk := newClock(p)
			attempt(t, p, "e1:80", Result5xx)
			seen := map[string]int{}
			for range 100 {
				l := mustAcquire(t, p)
				seen[l.Endpoint.Host]++
				l.Release(ResultOK)
			}
			if seen["e1:80"] != 0 {
				t.Fatalf("ejected endpoint picked %d times", seen["e1:80"])
			}
			clk.advance(10 * time.Second)
			for range 100 {
				l := mustAcquire(t, p)
				seen[l.Endpoint.Host]++
				l.Release(ResultOK)
			}
			if seen["e1:80"] == 0 {
				t.Fatal("endpoint not picked after its ejection ended")
			}
		})
	}
}

// No more than floor(n × max_ejected_percent / 100) endpoints are ejected
// at once.
func TestPassiveMaxEjectedPercent(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		percent int
		want    int
	}{
		{"single endpoint, default 50%", 1, 0, 0},
		{"two, default 50%", 2, 0, 1},
		{"three, 50%", 3, 50, 1},
		{"four, 50%", 4, 50, 2},
		{"four, 25%", 4, 25, 1},
		{"three, 100%", 3, 100, 3},
		{"single endpoint, 100%", 1, 100, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := passivePool(t, tt.n, config.PassiveHealth{ConsecutiveFailures: 1, MaxEjectedPercent: tt.percent})
			for _, e := range p.endpoints {
				attempt(t, p, e.Host, ResultConnectFailure)
			}
			got := 0
			for _, st := range p.Endpoints() {
				if st.Ejected {
					got++
				}
			}
			if got != tt.want {
				t.Fatalf("%d ejected, want %d", got, tt.want)
			}
		})
	}
}

// An endpoint kept in by the cap is ejected on its next failure once the
// cap allows.
func TestPassiveEjectedOnceCapAllows(t *testing.T) {
	p, clk := passivePool(t, 2, config.PassiveHealth{ConsecutiveFailures: 1})
	attempt(t, p, "e0:80", ResultConnectFailure)
	attempt(t, p, "e1:80", ResultConnectFailure)
	if st := p.Endpoints()[1]; st.Ejected || st.ConsecutiveFailures != 1 {
		t.Fatalf("e1 over the cap: ejected %v, failures %d; want kept in with 1", st.Ejected, st.ConsecutiveFailures)
	}
	clk.advance(10 * time.Second)
	attempt(t, p, "e1:80", ResultConnectFailure)
	if !p.Endpoints()[1].Ejected {
		t.Fatal("e1 not ejected once e0 returned")
	}
}

// With every endpoint ejected, Acquire fails at once rather than queueing,
// until an ejection ends.
func TestPassiveAllEjected(t *testing.T) {
	p := newTestPool(t, config.Pool{Endpoints: weighted(1, 1), MaxConnsPerEndpoint: 1,
		Health: config.Health{Passive: config.PassiveHealth{ConsecutiveFailures: 1, MaxEjectedPercent: 100}}})
	clk := newClock(p)
	attempt(t, p, "e0:80", ResultReset)
	attempt(t, p, "e1:80", ResultReset)
	_, err := p.Acquire(t.Context(), nil)
	if !errors.Is(err, ErrNoEndpoint) {
		t.Fatalf("Acquire = %v, want ErrNoEndpoint", err)
	}
	if want := "pool p: all 2 endpoints ejected or unhealthy"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	clk.advance(10 * time.Second)
	mustAcquire(t, p).Release(ResultOK)
}

func TestEjectionDuration(t *testing.T) {
	tests := []struct {
		base, max time.Duration
		n         int
		want      time.Duration
	}{
		{10 * time.Second, 5 * time.Minute, 1, 10 * time.Second},
		{10 * time.Second, 5 * time.Minute, 2, 20 * time.Second},
		{10 * time.Second, 5 * time.Minute, 5, 160 * time.Second},
		{10 * time.Second, 5 * time.Minute, 6, 5 * time.Minute},
		{10 * time.Second, 5 * time.Minute, 1000, 5 * time.Minute},
		{time.Hour, math.MaxInt64, 200, math.MaxInt64}, // no overflow
		{time.Minute, time.Second, 1, time.Second},     // base above max
	}
	for _, tt := range tests {
		h := passiveHealth{base: tt.base, max: tt.max}
		if got := h.ejection(tt.n); got != tt.want {
			t.Errorf("base %v max %v: ejection %d = %v, want %v", tt.base, tt.max, tt.n, got, tt.want)
		}
	}
}
