package upstream

import (
	"testing"

	"github.com/switchboard-proxy/switchboard/internal/config"
)

// Smooth weighted round robin spreads a 3:1 pool as a a b a ..., never in
// bursts longer than the weight.
func TestPickWeighted(t *testing.T) {
	p, err := NewPool(&config.Pool{Name: "p", Protocol: "http1", Endpoints: []config.Endpoint{
		{Scheme: "http", Host: "a:1", Weight: 3},
		{Scheme: "http", Host: "b:1", Weight: 1},
	}})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	var seq []string
	for range 400 {
		e := p.Pick()
		counts[e.Host]++
		seq = append(seq, e.Host)
	}
	if counts["a:1"] != 300 || counts["b:1"] != 100 {
		t.Errorf("counts = %v, want 300/100", counts)
	}
	run := 0
	for i := range seq {
		if i > 0 && seq[i] == seq[i-1] {
			run++
		} else {
			run = 1
		}
		if run > 3 {
			t.Fatalf("burst of %d picks of %s at %d", run, seq[i], i)
		}
	}
}
