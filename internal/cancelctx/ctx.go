// Package cancelctx provides Ctx, a cancellable context.Context that its
// owner can use again, request after request.
//
// Each context.WithCancelCause costs three or four allocations: the
// context, its done channel, the parent's set of children and the cancel
// func. A plain proxied request needs three such contexts (the caller's
// request, the exchange, the attempt) and a transport hook on the last;
// with Ctx, which its owner keeps in pooled per-request state, it needs
// none.
//
// Reuse is safe only when nothing else still holds the Ctx, so:
//   - A Ctx has one owner, which calls Start, then, when the request is
//     over, End. End cancels the Ctx (with context.Canceled unless it was
//     cancelled already), as the deferred cancel of a context.WithCancel
//     would: whatever waits on Done wakes up and the AfterFuncs still
//     registered run. It also unhooks the Ctx from its parent, and from
//     then on Value answers only the Ctx's own values, so a late holder
//     cannot read a later request's values through a parent reused since.
//   - The owner starts a Ctx again only when it handed the Ctx to nothing
//     that may keep it (a goroutine that outlives the request, net/http's
//     HTTP/2 transport), and Reusable reports true: no context was derived
//     from it through the context package, and nobody asked for Done. A Ctx
//     that is not started again stays cancelled for good, as a
//     context.Context must.
//   - The done channel is made only when someone asks for it.
//
// context.Cause does not know Ctx: use Cause, which does.
package cancelctx

import (
	"context"
	"sync"
	"time"
)

// Ctx is a reusable cancellable context; see the package comment. Its
// zero value is ready to Start. It must not be copied after first use.
type Ctx struct {
	// cmu is held by cancel while it cancels the children and runs the
	// hooks, and by End, so that End returns only once a concurrent
	// cancel is over and the owner may start c again.
	cmu sync.Mutex

	mu       sync.Mutex      // guards the fields below
	up       *Ctx            // the parent, if it is a Ctx
	parent   context.Context // the parent, if it is not a Ctx
	values   context.Context // where Value looks after c's own values; nil after End
	stopUp   func() bool     // unhooks from a parent that is not a Ctx
	done     chan struct{}   // made on demand; closed when cancelled
	err      error           // set when cancelled
	cause    error
	deadline time.Time
	tcause   error // the cause the deadline cancels with
	children []*Ctx
	hooks    []hook
	nextHook uint64
	foreign  bool // Done was asked for, or the context package derived from c
	ended    bool
	kv       [3]keyVal

	// Room for the usual one child and one hook, so that a Ctx that is
	// never reused allocates nothing either.
	childArr [1]*Ctx
	hookArr  [1]hook

	timer  *time.Timer // the deadline's: made once, then re-armed
	fromUp func()      // cancelFromParent as a func value, made once
}

type keyVal struct{ key, val any }

type hook struct {
	id uint64
	f  func()
}

// Start prepares c for a request whose parent is parent (nil means
// none). It must not be called while c is in use: only on a new Ctx, or
// after End on one that is Reusable.
func (c *Ctx) Start(parent context.Context) {
	c.mu.Lock()
	if c.done != nil && c.err != nil {
		c.done = nil // closed: the next one is made on demand
	}
	c.err, c.cause, c.deadline, c.tcause = nil, nil, time.Time{}, nil
	c.foreign, c.ended = false, false
	c.kv = [3]keyVal{}
	c.up, c.parent, c.values, c.stopUp = nil, nil, nil, nil
	c.mu.Unlock()
	switch p := parent.(type) {
	case nil:
	case *Ctx:
		c.mu.Lock()
		c.up = p
		c.mu.Unlock()
		if !p.addChild(c) {
			c.cancel(p.Err(), p.Cause())
		}
	default:
		if parent.Done() == nil {
			c.mu.Lock()
			c.values = parent // nothing in it can be cancelled
			c.mu.Unlock()
			break
		}
		if c.fromUp == nil {
			c.fromUp = c.cancelFromParent
		}
		// Values through WithoutCancel, so that context.Cause on c cannot
		// find a cancelled ancestor's cause in place of c's own.
		c.mu.Lock()
		c.parent, c.values = parent, context.WithoutCancel(parent)
		c.mu.Unlock()
		stop := context.AfterFunc(parent, c.fromUp)
		c.mu.Lock()
		c.stopUp = stop
		c.mu.Unlock()
	}
}

func (c *Ctx) cancelFromParent() {
	c.mu.Lock()
	p := c.parent
	c.mu.Unlock()
	if p != nil {
		c.cancel(p.Err(), context.Cause(p))
	}
}

// SetValue makes c answer val for key (until its next Start). A Ctx holds
// three values.
func (c *Ctx) SetValue(key, val any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.kv {
		if c.kv[i].key == nil || c.kv[i].key == key {
			c.kv[i] = keyVal{key, val}
			return
		}
	}
	panic("cancelctx: more than three values")
}

// SetTimeout cancels c with cause and context.DeadlineExceeded after d,
// unless it ends first.
func (c *Ctx) SetTimeout(d time.Duration, cause error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline, c.tcause = time.Now().Add(d), cause
	if c.timer == nil {
		c.timer = time.AfterFunc(d, c.timedOut)
		return
	}
	c.timer.Reset(d)
}

// timedOut runs when the deadline timer fires. A firing left over from an
// earlier use (Stop cannot stop a callback already started) finds no
// deadline, or one not reached yet, and does nothing.
func (c *Ctx) timedOut() {
	c.mu.Lock()
	cause := c.tcause
	due := !c.deadline.IsZero() && !time.Now().Before(c.deadline)
	c.mu.Unlock()
	if due {
		c.cancel(context.DeadlineExceeded, cause)
	}
}

// Cancel cancels c, and every Ctx started under it, with cause (nil means
// context.Canceled) if c is not cancelled yet, and runs its OnCancel and
// AfterFunc funcs on the calling goroutine.
func (c *Ctx) Cancel(cause error) { c.cancel(context.Canceled, cause) }

func (c *Ctx) cancel(err, cause error) {
	if cause == nil {
		cause = err
	}
	c.cmu.Lock()
	defer c.cmu.Unlock()
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err, c.cause = err, cause
	if c.done != nil {
		close(c.done)
	}
	// Nothing is added once err is set, so the arrays can be walked
	// outside mu and kept for the next use.
	children, hooks := c.children, c.hooks
	c.children, c.hooks = c.children[:0], c.hooks[:0]
	c.mu.Unlock()
	for i, ch := range children {
		ch.cancel(err, cause)
		children[i] = nil
	}
	for i, h := range hooks {
		h.f()
		hooks[i] = hook{}
	}
}

// End ends c's use: it cancels c if it is not cancelled yet, waits for a
// concurrent Cancel to finish, and unhooks c from its parent. See the
// package comment.
func (c *Ctx) End() {
	c.Cancel(nil)
	c.cmu.Lock()
	c.mu.Lock()
	up, stop := c.up, c.stopUp
	c.up, c.parent, c.values, c.stopUp, c.ended = nil, nil, nil, nil, true
	c.deadline = time.Time{}
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	c.cmu.Unlock()
	if up != nil {
		up.removeChild(c)
	}
	if stop != nil {
		stop()
	}
}

// Reusable reports whether c has ended and, as far as c can tell, nothing
// kept it: nothing was derived from it through the context package and
// nobody asked for its done channel.
func (c *Ctx) Reusable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended && !c.foreign
}

func (c *Ctx) addChild(ch *Ctx) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return false
	}
	if c.children == nil {
		c.children = c.childArr[:0]
	}
	c.children = append(c.children, ch)
	return true
}

func (c *Ctx) removeChild(ch *Ctx) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.children {
		if x == ch {
			last := len(c.children) - 1
			c.children[i] = c.children[last]
			c.children[last] = nil
			c.children = c.children[:last]
			return
		}
	}
}

// OnCancel arranges for f to run when c is cancelled, on the goroutine
// that cancels it; f must not block. If c is cancelled already, f runs
// now and ok is false. Else id is for StopOnCancel. Unlike AfterFunc it
// allocates nothing once c's hook array has grown: it is what
// switchboard's own transport uses to close a connection on cancel.
func (c *Ctx) OnCancel(f func()) (id uint64, ok bool) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		f()
		return 0, false
	}
	c.nextHook++
	id = c.nextHook
	if c.hooks == nil {
		c.hooks = c.hookArr[:0]
	}
	c.hooks = append(c.hooks, hook{id, f})
	c.mu.Unlock()
	return id, true
}

// StopOnCancel unhooks the func OnCancel registered as id. It reports
// false if that func ran, or is running, instead.
func (c *Ctx) StopOnCancel(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, h := range c.hooks {
		if h.id == id {
			last := len(c.hooks) - 1
			copy(c.hooks[i:], c.hooks[i+1:])
			c.hooks[last] = hook{}
			c.hooks = c.hooks[:last]
			return true
		}
	}
	return false
}

// AfterFunc is the hook the context package looks for (its afterFuncer):
// with it, a context derived from c through the context package is
// cancelled with c without a goroutine of its own. f runs on the goroutine
// that cancels c.
func (c *Ctx) AfterFunc(f func()) func() bool {
	c.mu.Lock()
	c.foreign = true
	c.mu.Unlock()
	id, ok := c.OnCancel(f)
	if !ok {
		return func() bool { return false }
	}
	return func() bool { return c.StopOnCancel(id) }
}

// Deadline returns the deadline SetTimeout armed, or the parent's if that
// is sooner or c has none.
func (c *Ctx) Deadline() (time.Time, bool) {
	c.mu.Lock()
	d, up, v := c.deadline, c.up, c.values
	c.mu.Unlock()
	var pd time.Time
	var ok bool
	switch {
	case up != nil:
		pd, ok = up.Deadline()
	case v != nil:
		pd, ok = v.Deadline()
	}
	if d.IsZero() || ok && pd.Before(d) {
		return pd, ok
	}
	return d, true
}

var closedChan = func() chan struct{} { ch := make(chan struct{}); close(ch); return ch }()

// Done returns a channel closed when c is cancelled. Asking for it makes c
// not Reusable: the asker may keep the channel.
func (c *Ctx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.foreign = true
	if c.done == nil {
		if c.err != nil {
			return closedChan
		}
		c.done = make(chan struct{})
	}
	return c.done
}

// Err returns nil until c is cancelled, then context.Canceled, or
// context.DeadlineExceeded when SetTimeout's deadline (or a parent's)
// passed.
func (c *Ctx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Cause returns why c was cancelled (the cause given to Cancel or
// SetTimeout, or the parent's cause), or nil while it is not.
func (c *Ctx) Cause() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

// Value returns the value c holds for key; else, while c is in use, its
// parent's.
func (c *Ctx) Value(key any) any {
	c.mu.Lock()
	for _, kv := range c.kv {
		if kv.key != nil && kv.key == key {
			c.mu.Unlock()
			return kv.val
		}
	}
	up, v := c.up, c.values
	c.mu.Unlock()
	switch {
	case up != nil:
		return up.Value(key)
	case v != nil:
		return v.Value(key)
	}
	return nil
}

// Cause is context.Cause, knowing Ctx.
func Cause(ctx context.Context) error {
	if c, ok := ctx.(*Ctx); ok {
		return c.Cause()
	}
	return context.Cause(ctx)
}
