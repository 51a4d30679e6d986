package upstream

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/cancelctx"
	"github.com/switchboard-proxy/switchboard/internal/config"
)

// Errors from [Pool.Acquire], wrapped with the pool's name and the numbers
// that led to them; test with errors.Is.
var (
	// ErrNoEndpoint means every endpoint is ejected or actively unhealthy;
	// there is nothing to wait for, so the proxy answers 503 at once.
	ErrNoEndpoint = errors.New("no endpoint available")
	// ErrQueueFull means every available endpoint is at
	// max_conns_per_endpoint and max_queue attempts already wait.
	ErrQueueFull = errors.New("endpoint queue full")
	// ErrQueueTimeout means no endpoint slot freed up within queue_timeout.
	ErrQueueTimeout = errors.New("endpoint queue timeout")
)

// acquireError is an Acquire failure: which pool, why in numbers, and the
// sentinel it unwraps to.
type acquireError struct {
	pool   string
	detail string
	err    error
}

func (e *acquireError) Error() string { return "pool " + e.pool + ": " + e.detail }
func (e *acquireError) Unwrap() error { return e.err }

// Result is how an attempt on an endpoint ended, as far as the endpoint's
// health is concerned. The zero value is ResultIgnore, so a forgotten result
// feeds no health signal.
type Result int

const (
	// ResultIgnore carries no health signal: the caller left or the
	// attempt was abandoned (a hedge lost, say) before the endpoint could
	// show how it was doing.
	ResultIgnore Result = iota
	// ResultOK is any response that is not a 5xx.
	ResultOK
	// ResultConnectFailure is a failed TCP connect or TLS handshake.
	ResultConnectFailure
	// ResultReset is a connection closed, reset or timed out before a
	// response arrived.
	ResultReset
	// Result5xx is a 5xx response.
	Result5xx
)

var resultNames = [...]string{"ignore", "ok", "connect_failure", "reset", "5xx"}

func (r Result) String() string {
	if r < 0 || int(r) >= len(resultNames) {
		return fmt.Sprintf("Result(%d)", int(r))
	}
	return resultNames[r]
}

// Lease is one attempt's claim on an endpoint, from [Pool.Acquire] until
// [Lease.Release].
//
// [Pool.AcquireInto] builds a lease in memory its caller owns, so that a
// caller making attempt after attempt allocates none. Such a lease may be
// acquired into again only once nothing can call its Release any more:
// Release's "only the first call counts" holds for one use, and a late
// Release from the last use would end the next one.
type Lease struct {
	Endpoint *Endpoint

	pool     *Pool
	released atomic.Bool
}

// Release ends the attempt: it frees the endpoint's slot (handing it to the
// first queued attempt, if any) and feeds r to passive health. It is safe to
// call more than once and from any goroutine; only the first call counts.
func (l *Lease) Release(r Result) {
	if l == nil || !l.released.CompareAndSwap(false, true) {
		return
	}
	p := l.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	l.Endpoint.st.outstanding--
	p.recordLocked(l.Endpoint, r, now)
	p.dispatchLocked(now)
}

// Acquire picks an endpoint for one attempt and reserves a slot on it; the
// caller must Release the lease when the attempt ends.
//
// Only available endpoints (not ejected, not actively unhealthy) are
// picked, by the pool's balance policy. Endpoints in avoid (those this
// request already tried) are passed over while another available endpoint
// has a free slot; otherwise they may be reused.
//
// When every available endpoint is at max_conns_per_endpoint, Acquire waits
// first come first served for a slot, for at most queue_timeout
// ([ErrQueueTimeout]); if max_queue attempts already wait it fails at once
// with [ErrQueueFull]. With no available endpoint at all it fails at once
// with [ErrNoEndpoint]. If ctx ends first, Acquire returns
// cancelctx.Cause(ctx) at once and leaves the queue.
func (p *Pool) Acquire(ctx context.Context, avoid []*Endpoint) (*Lease, error) {
	l := new(Lease)
	if err := p.AcquireInto(ctx, avoid, l); err != nil {
		return nil, err
	}
	return l, nil
}

// AcquireInto is Acquire building the lease in l instead of allocating one;
// see [Lease] for when l may be reused. On an error l holds no slot (it may
// hold a lease already released) and must not be released.
func (p *Pool) AcquireInto(ctx context.Context, avoid []*Endpoint, l *Lease) error {
	if ctx.Err() != nil {
		return cancelctx.Cause(ctx)
	}
	p.mu.Lock()
	now := p.now()
	// Earlier arrivals go first: serve them before looking for ourselves.
	p.dispatchLocked(now)
	if p.waiters.Len() == 0 {
		e, avail := p.pickLocked(now, avoid)
		if e != nil {
			p.leaseLocked(e, l)
			p.mu.Unlock()
			return nil
		}
		if avail == 0 {
			p.mu.Unlock()
			return p.noEndpointError()
		}
	}
	if p.waiters.Len() >= p.maxQueue {
		p.mu.Unlock()
		return &acquireError{p.Name, fmt.Sprintf(
			"all endpoints at max_conns_per_endpoint %d and %d attempts queued",
			p.maxConns, p.maxQueue), ErrQueueFull}
	}
	w := p.enqueueLocked(avoid, l)
	p.mu.Unlock()
	return p.wait(ctx, w)
}

// TryAcquire is Acquire without waiting: it returns nil when no available
// endpoint has a free slot now, or when attempts are already queued. A
// hedged attempt uses it, since it is worth making only at once.
func (p *Pool) TryAcquire(avoid []*Endpoint) *Lease {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.waiters.Len() > 0 {
		return nil
	}
	e, _ := p.pickLocked(p.now(), avoid)
	if e == nil {
		return nil
	}
	l := new(Lease)
	p.leaseLocked(e, l)
	return l
}

func (p *Pool) noEndpointError() error {
	return &acquireError{p.Name, fmt.Sprintf("all %d endpoints ejected or unhealthy",
		len(p.endpoints)), ErrNoEndpoint}
}

// leaseLocked reserves a slot on e, held by l from now on.
func (p *Pool) leaseLocked(e *Endpoint, l *Lease) {
	e.st.outstanding++
	*l = Lease{Endpoint: e, pool: p}
}

// pickLocked chooses an endpoint with a free slot by the balance policy,
// passing over those in avoid while it can. It returns nil if none has a
// free slot, and how many endpoints are available (full or not).
func (p *Pool) pickLocked(now time.Time, avoid []*Endpoint) (*Endpoint, int) {
	var buf [16]*Endpoint
	free, avail := buf[:0], 0
	for pass := range 2 {
		for _, e := range p.endpoints {
			if !e.st.available(now) {
				continue
			}
			if pass == 0 {
				avail++
			}
			if p.maxConns > 0 && e.st.outstanding >= p.maxConns {
				continue
			}
			if pass == 0 && slices.Contains(avoid, e) {
				continue
			}
			free = append(free, e)
		}
		if len(free) > 0 || len(avoid) == 0 {
			break
		}
	}
	switch {
	case len(free) == 0:
		return nil, avail
	case len(free) == 1:
		return free[0], avail
	case p.balance == config.BalanceLeastOutstanding:
		return twoChoices(free), avail
	default:
		return smoothRoundRobin(free), avail
	}
}

// smoothRoundRobin picks from cands by smooth weighted round robin, as
// nginx does, so weights spread evenly rather than in bursts. Endpoints not
// among cands (ejected, full, avoided) keep their state and rejoin the
// rotation where they left it. The caller holds Pool.mu.
func smoothRoundRobin(cands []*Endpoint) *Endpoint {
	var best *Endpoint
	total := 0
	for _, e := range cands {
		e.current += e.Weight
		total += e.Weight
		if best == nil || e.current > best.current {
			best = e
		}
	}
	best.current -= total
	return best
}

// twoChoices picks from cands (at least two) by the power of two choices:
// two distinct endpoints drawn at random in proportion to weight, of which
// the one with fewer attempts in flight per unit of weight wins. A tie is
// broken at random in proportion to weight, so an idle pool still follows
// the weights. The caller holds Pool.mu.
func twoChoices(cands []*Endpoint) *Endpoint {
	total := 0
	for _, e := range cands {
		total += e.Weight
	}
	a := drawWeighted(cands, total, nil)
	b := drawWeighted(cands, total-a.Weight, a)
	// a.outstanding/a.Weight versus b.outstanding/b.Weight, in integers.
	switch la, lb := a.st.outstanding*b.Weight, b.st.outstanding*a.Weight; {
	case la < lb:
		return a
	case lb < la:
		return b
	case rand.IntN(a.Weight+b.Weight) < a.Weight:
		return a
	default:
		return b
	}
}

// drawWeighted draws one endpoint of cands other than skip, in proportion to
// weight; total is the sum of their weights.
func drawWeighted(cands []*Endpoint, total int, skip *Endpoint) *Endpoint {
	n := rand.IntN(total)
	for _, e := range cands {
		if e == skip {
			continue
		}
		if n < e.Weight {
			return e
		}
		n -= e.Weight
	}
	panic("upstream: weights changed while drawing")
}
