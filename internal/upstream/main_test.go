package upstream

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-proxy/switchboard/internal/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newTestPool builds a pool from pc, naming it "p" and closing it at the end
// of the test.
func newTestPool(t *testing.T, pc config.Pool) *Pool {
	t.Helper()
	if pc.Name == "" {
		pc.Name = "p"
	}
	p, err := NewPool(&pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// weighted returns cleartext endpoints e0:80, e1:80, ... with the given
// weights.
func weighted(weights ...int) []config.Endpoint {
	eps := make([]config.Endpoint, len(weights))
	for i, w := range weights {
		eps[i] = config.Endpoint{Scheme: "http", Host: fmt.Sprintf("e%d:80", i), Weight: w}
	}
	return eps
}

// clock is a settable time source for a Pool's now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(p *Pool) *clock {
	c := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	p.now = c.now
	return c
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// mustAcquire acquires a lease that must be granted at once.
func mustAcquire(t *testing.T, p *Pool, avoid ...*Endpoint) *Lease {
	t.Helper()
	l, err := p.Acquire(t.Context(), avoid)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	return l
}

// endpoint returns p's endpoint with the given host.
func endpoint(t *testing.T, p *Pool, host string) *Endpoint {
	t.Helper()
	for _, e := range p.endpoints {
		if e.Host == host {
			return e
		}
	}
	t.Fatalf("no endpoint %s", host)
	return nil
}
