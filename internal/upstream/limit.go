package upstream

import (
	"container/list"
	"context"
	"fmt"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/cancelctx"
)

// waiter is an Acquire waiting in the pool's queue for an endpoint slot.
type waiter struct {
	avoid []*Endpoint
	// lease is where the dispatcher builds the waiter's lease, under
	// Pool.mu and only while the waiter is queued.
	lease *Lease
	// grant receives, exactly once, nil once lease holds a slot, or the
	// error the wait failed with. It is buffered so the dispatcher,
	// which sends holding Pool.mu, never blocks on a waiter that has not
	// reached its receive yet.
	grant chan error
	elem  *list.Element // in Pool.waiters; nil once dispatched or gone, guarded by Pool.mu
}

// enqueueLocked puts a new waiter, whose lease is to be built in l, at the
// back of the queue.
func (p *Pool) enqueueLocked(avoid []*Endpoint, l *Lease) *waiter {
	w := &waiter{avoid: avoid, lease: l, grant: make(chan error, 1)}
	w.elem = p.waiters.PushBack(w)
	p.wakeAtEjectionEndLocked(p.now())
	return w
}

// wakeAtEjectionEndLocked arranges for the queue to be served again when
// the first ejected endpoint comes back: its free slots are then there for
// the waiters, which no Release would otherwise tell.
func (p *Pool) wakeAtEjectionEndLocked(now time.Time) {
	var first time.Time
	for _, e := range p.endpoints {
		if u := e.st.ejectedUntil; u.After(now) && (first.IsZero() || u.Before(first)) {
			first = u
		}
	}
	if first.IsZero() || !p.wakeAt.IsZero() && !first.Before(p.wakeAt) && p.wakeAt.After(now) {
		return // nothing to wait for, or a wake-up at or before it is set
	}
	if p.wake != nil {
		p.wake.Stop()
	}
	p.wakeAt = first
	p.wake = time.AfterFunc(first.Sub(now), func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.wakeAt = time.Time{}
		now := p.now()
		p.dispatchLocked(now)
		if p.waiters.Len() > 0 {
			p.wakeAtEjectionEndLocked(now)
		}
	})
}

// wait blocks until w is granted a slot, in w.lease, ctx ends or the queue
// timeout passes.
func (p *Pool) wait(ctx context.Context, w *waiter) error {
	timer := time.NewTimer(p.queueTimeout)
	defer timer.Stop()
	select {
	case err := <-w.grant:
		if err == nil && ctx.Err() != nil {
			// Granted just as the caller left: the slot is not
			// ours to keep.
			w.lease.Release(ResultIgnore)
			return cancelctx.Cause(ctx)
		}
		return err
	case <-ctx.Done():
		if dispatched, err := p.leave(w); dispatched && err == nil {
			w.lease.Release(ResultIgnore)
		}
		return cancelctx.Cause(ctx)
	case <-timer.C:
		if dispatched, err := p.leave(w); dispatched {
			return err // granted as the time ran out: take it
		}
		return &acquireError{p.Name, fmt.Sprintf("no endpoint slot within queue_timeout %v",
			p.queueTimeout), ErrQueueTimeout}
	}
}

// leave takes w out of the queue. If w was dispatched meanwhile, leave
// reports it, with its grant (nil: w.lease holds a slot), so that a slot
// handed to a departing waiter can be passed on rather than lost.
func (p *Pool) leave(w *waiter) (dispatched bool, grant error) {
	p.mu.Lock()
	queued := w.elem != nil
	if queued {
		p.waiters.Remove(w.elem)
		w.elem = nil
	}
	p.mu.Unlock()
	if queued {
		return false, nil
	}
	return true, <-w.grant
}

// dispatchLocked hands free endpoint slots to queued waiters, first come
// first served, each picking by its own avoid list. When no endpoint is
// available at all (every one ejected or unhealthy) there is nothing to wait
// for, and every waiter fails with ErrNoEndpoint.
func (p *Pool) dispatchLocked(now time.Time) {
	for p.waiters.Len() > 0 {
		w := p.waiters.Front().Value.(*waiter)
		e, avail := p.pickLocked(now, w.avoid)
		if e == nil && avail > 0 {
			return // all full: wait for a Release
		}
		p.waiters.Remove(w.elem)
		w.elem = nil
		if e == nil {
			w.grant <- p.noEndpointError()
			continue
		}
		p.leaseLocked(e, w.lease)
		w.grant <- nil
	}
}
