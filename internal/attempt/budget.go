package attempt

import (
	"sync"
	"time"
)

// budgetWindow is how far back a Budget looks, in one-second buckets.
const budgetWindow = 10

// Budget bounds retries so that an outage cannot turn into a retry storm:
// over the last ten seconds, retries may add at most Ratio of the requests
// seen, plus MinPerSecond for each second of the window (so a quiet route
// can still retry). It is safe for concurrent use.
type Budget struct {
	ratio  float64
	floor  int // retries always allowed per window
	now    func() time.Time
	mu     sync.Mutex // guards the fields below
	second int64      // the unix second of buckets[head]
	head   int
	reqs   [budgetWindow]int
	tries  [budgetWindow]int
}

// NewBudget returns a budget allowing ratio retries per request plus
// minPerSecond retries per second. now may be nil for the real clock.
func NewBudget(ratio float64, minPerSecond int, now func() time.Time) *Budget {
	if now == nil {
		now = time.Now
	}
	return &Budget{ratio: ratio, floor: minPerSecond * budgetWindow, now: now}
}

// Request counts one request (its first attempt).
func (b *Budget) Request() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advance()
	b.reqs[b.head]++
}

// Withdraw takes one retry from the budget, reporting false (and taking
// nothing) when the budget is spent.
func (b *Budget) Withdraw() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advance()
	var reqs, tries int
	for i := range budgetWindow {
		reqs += b.reqs[i]
		tries += b.tries[i]
	}
	if float64(tries) >= b.ratio*float64(reqs)+float64(b.floor) {
		return false
	}
	b.tries[b.head]++
	return true
}

// advance moves the window to the current second, clearing buckets that
// fell out of it.
func (b *Budget) advance() {
	now := b.now().Unix()
	steps := now - b.second
	if steps <= 0 {
		return // same second, or the clock stepped back: keep counting here
	}
	if steps > budgetWindow {
		steps = budgetWindow
	}
	for range steps {
		b.head = (b.head + 1) % budgetWindow
		b.reqs[b.head], b.tries[b.head] = 0, 0
	}
	b.second = now
}
