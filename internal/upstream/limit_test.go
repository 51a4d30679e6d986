package upstream

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/config"
)

type acquired struct {
	lease *Lease
	err   error
	after time.Duration
}

// acquireAsync runs Acquire in a goroutine, waits until it has settled
// (granted, failed or queued), and returns where its result will arrive.
// It runs inside a synctest bubble, so durations are exact.
func acquireAsync(ctx context.Context, p *Pool) <-chan acquired {
	ch := make(chan acquired, 1)
	go func() {
		start := time.Now()
		l, err := p.Acquire(ctx, nil)
		ch <- acquired{l, err, time.Since(start)}
	}()
	synctest.Wait()
	return ch
}

func queued(p *Pool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waiters.Len()
}

// limitedPool is one endpoint that takes one attempt at a time.
func limitedPool(t *testing.T, pc config.Pool) *Pool {
	pc.MaxConnsPerEndpoint = 1
	pc.Endpoints = weighted(1)
	return newTestPool(t, pc)
}

// A full pool queues attempts first come first served, and Release hands
// the freed slot to the first.
func TestQueueWaitsForRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := limitedPool(t, config.Pool{})
		held := mustAcquire(t, p)
		first := acquireAsync(t.Context(), p)
		second := acquireAsync(t.Context(), p)
		if n := queued(p); n != 2 {
			t.Fatalf("queued = %d, want 2", n)
		}
		time.Sleep(100 * time.Millisecond)
		held.Release(ResultOK)
		got := <-first
		if got.err != nil || got.after != 100*time.Millisecond {
			t.Fatalf("first waiter: %v after %v, want a lease after 100ms", got.err, got.after)
		}
		if n := queued(p); n != 1 {
			t.Fatalf("queued = %d, want 1", n)
		}
		got.lease.Release(ResultOK)
		got = <-second
		if got.err != nil {
			t.Fatalf("second waiter: %v", got.err)
		}
		got.lease.Release(ResultOK)
		if o := p.Endpoints()[0].Outstanding; o != 0 {
			t.Fatalf("outstanding = %d, want 0", o)
		}
	})
}

// A queued AcquireInto gets its slot in the caller's memory once one is
// released; one whose caller leaves first holds none, and the memory is
// good for the next use.
func TestQueueAcquireInto(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := limitedPool(t, config.Pool{})
		held := mustAcquire(t, p)
		var l Lease
		ctx, cancel := context.WithCancelCause(t.Context())
		left := make(chan error, 1)
		go func() { left <- p.AcquireInto(ctx, nil, &l) }()
		synctest.Wait()
		cancel(errCallerGone)
		if err := <-left; !errors.Is(err, errCallerGone) {
			t.Fatalf("leaving waiter: %v, want errCallerGone", err)
		}

		got := make(chan error, 1)
		go func() { got <- p.AcquireInto(t.Context(), nil, &l) }()
		synctest.Wait()
		if n := queued(p); n != 1 {
			t.Fatalf("queued = %d, want 1", n)
		}
		held.Release(ResultOK)
		if err := <-got; err != nil || l.Endpoint != p.endpoints[0] {
			t.Fatalf("waiter: %v on %v, want the endpoint", err, l.Endpoint)
		}
		if o := p.Endpoints()[0].Outstanding; o != 1 {
			t.Fatalf("outstanding = %d, want 1", o)
		}
		l.Release(ResultOK)
		l.Release(ResultOK)
		if o := p.Endpoints()[0].Outstanding; o != 0 {
			t.Fatalf("outstanding = %d, want 0", o)
		}
		if err := p.AcquireInto(t.Context(), nil, &l); err != nil {
			t.Fatalf("AcquireInto again: %v", err)
		}
		l.Release(ResultOK)
	})
}

// A waiter gives up after queue_timeout (default 1s).
func TestQueueTimeout(t *testing.T) {
	tests := []struct {
		name    string
		timeout config.Duration
		want    time.Duration
	}{
		{"default", 0, time.Second},
		{"configured", config.Duration(250 * time.Millisecond), 250 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := limitedPool(t, config.Pool{QueueTimeout: tt.timeout})
				held := mustAcquire(t, p)
				defer held.Release(ResultOK)
				got := <-acquireAsync(t.Context(), p)
				if !errors.Is(got.err, ErrQueueTimeout) || got.after != tt.want {
					t.Fatalf("got %v after %v, want ErrQueueTimeout after %v", got.err, got.after, tt.want)
				}
				want := "pool p: no endpoint slot within queue_timeout " + tt.want.String()
				if got.err.Error() != want {
					t.Errorf("error = %q, want %q", got.err, want)
				}
				if n := queued(p); n != 0 {
					t.Errorf("queued = %d after timeout, want 0", n)
				}
			})
		})
	}
}

// With max_queue attempts waiting, the next fails at once.
func TestQueueFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := limitedPool(t, config.Pool{MaxQueue: 2})
		held := mustAcquire(t, p)
		defer held.Release(ResultOK)
		w1, w2 := acquireAsync(t.Context(), p), acquireAsync(t.Context(), p)
		got := <-acquireAsync(t.Context(), p)
		if !errors.Is(got.err, ErrQueueFull) || got.after != 0 {
			t.Fatalf("third waiter: %v after %v, want ErrQueueFull at once", got.err, got.after)
		}
		if want := "pool p: all endpoints at max_conns_per_endpoint 1 and 2 attempts queued"; got.err.Error() != want {
			t.Errorf("error = %q, want %q", got.err, want)
		}
		for _, w := range []<-chan acquired{w1, w2} {
			if got := <-w; !errors.Is(got.err, ErrQueueTimeout) {
				t.Errorf("queued waiter: %v, want ErrQueueTimeout", got.err)
			}
		}
	})
}

var errCallerGone = errors.New("caller gone")

// A waiter whose caller leaves returns the cause at once and leaves the
// queue, so the next Release is not handed to it.
func TestQueueCallerLeaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := limitedPool(t, config.Pool{})
		held := mustAcquire(t, p)
		ctx, cancel := context.WithCancelCause(t.Context())
		w := acquireAsync(ctx, p)
		cancel(errCallerGone)
		got := <-w
		if !errors.Is(got.err, errCallerGone) || got.after != 0 || got.lease != nil {
			t.Fatalf("got %v, %v after %v; want errCallerGone at once", got.lease, got.err, got.after)
		}
		if n := queued(p); n != 0 {
			t.Fatalf("queued = %d, want 0", n)
		}
		held.Release(ResultOK)
		if o := p.Endpoints()[0].Outstanding; o != 0 {
			t.Fatalf("outstanding = %d after release, want 0: the slot was swallowed", o)
		}
		mustAcquire(t, p).Release(ResultOK)
	})
}

// A waiter whose caller leaves just before a Release does not take the
// slot, whether it has left the queue yet or not.
func TestQueueCallerLeavesBeforeRelease(t *testing.T) {
	for range 20 {
		synctest.Test(t, func(t *testing.T) {
			p := limitedPool(t, config.Pool{})
			held := mustAcquire(t, p)
			ctx, cancel := context.WithCancelCause(t.Context())
			leaving := acquireAsync(ctx, p)
			next := acquireAsync(t.Context(), p)
			cancel(errCallerGone)
			held.Release(ResultOK)
			if got := <-leaving; !errors.Is(got.err, errCallerGone) || got.lease != nil {
				t.Fatalf("leaving waiter: %v, %v; want errCallerGone", got.lease, got.err)
			}
			got := <-next
			if got.err != nil {
				t.Fatalf("next waiter: %v, want the slot", got.err)
			}
			got.lease.Release(ResultOK)
			if o := p.Endpoints()[0].Outstanding; o != 0 {
				t.Fatalf("outstanding = %d, want 0", o)
			}
		})
	}
}

// A slot already handed to a waiter whose caller has left by the time it
// wakes is passed on to the next waiter. The waiter wakes to the grant and
// ctx.Done both ready, and select picks either; over the runs both ways of
// passing the slot on are taken.
func TestQueueCallerLeavesAsGranted(t *testing.T) {
	for range 50 {
		synctest.Test(t, func(t *testing.T) {
			p := limitedPool(t, config.Pool{})
			held := mustAcquire(t, p)
			var l Lease
			p.mu.Lock()
			w := p.enqueueLocked(nil, &l)
			p.mu.Unlock()
			next := acquireAsync(t.Context(), p)
			held.Release(ResultOK) // granted to w
			ctx, cancel := context.WithCancelCause(t.Context())
			cancel(errCallerGone)
			if err := p.wait(ctx, w); !errors.Is(err, errCallerGone) {
				t.Fatalf("leaving waiter: %v; want errCallerGone", err)
			}
			got := <-next
			if got.err != nil {
				t.Fatalf("next waiter: %v, want the passed-on slot", got.err)
			}
			got.lease.Release(ResultOK)
			if o := p.Endpoints()[0].Outstanding; o != 0 {
				t.Fatalf("outstanding = %d, want 0", o)
			}
		})
	}
}

// A caller already gone does not take a slot.
func TestAcquireCallerGone(t *testing.T) {
	p := newTestPool(t, config.Pool{Endpoints: weighted(1)})
	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(errCallerGone)
	if _, err := p.Acquire(ctx, nil); !errors.Is(err, errCallerGone) {
		t.Fatalf("Acquire = %v, want errCallerGone", err)
	}
	if o := p.Endpoints()[0].Outstanding; o != 0 {
		t.Fatalf("outstanding = %d, want 0", o)
	}
}

// Waiters stop waiting when the last endpoint is ejected: there is nothing
// left to wait for.
func TestQueueFailsWhenAllEjected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := limitedPool(t, config.Pool{Health: config.Health{Passive: config.PassiveHealth{
			ConsecutiveFailures: 1, MaxEjectedPercent: 100}}})
		held := mustAcquire(t, p)
		w := acquireAsync(t.Context(), p)
		held.Release(Result5xx)
		got := <-w
		if !errors.Is(got.err, ErrNoEndpoint) || got.after != 0 {
			t.Fatalf("waiter: %v after %v, want ErrNoEndpoint at once", got.err, got.after)
		}
	})
}

// A waiter is served when an ejected endpoint comes back, not only on the
// next Release: the endpoint's free slot is there for it.
func TestQueueServedWhenEjectionEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newTestPool(t, config.Pool{MaxConnsPerEndpoint: 1, Endpoints: weighted(1, 1), QueueTimeout: config.Duration(time.Second),
			Health: config.Health{Passive: config.PassiveHealth{ConsecutiveFailures: 1, BaseEjection: config.Duration(200 * time.Millisecond)}}})
		a := mustAcquire(t, p)
		b := mustAcquire(t, p, a.Endpoint)
		b.Release(ResultConnectFailure) // b's endpoint is ejected for 200ms
		w := acquireAsync(t.Context(), p)
		if n := queued(p); n != 1 {
			t.Fatalf("queued = %d, want 1 (a full, b ejected)", n)
		}
		got := <-w
		if got.err != nil || got.lease.Endpoint != b.Endpoint || got.after != 200*time.Millisecond {
			t.Fatalf("waiter: %v on %v after %v, want b's endpoint after 200ms", got.err, got.lease, got.after)
		}
		got.lease.Release(ResultOK)
		a.Release(ResultOK)
	})
}
