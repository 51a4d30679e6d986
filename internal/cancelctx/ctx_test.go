package cancelctx

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errWhy = errors.New("why")

type key string

func TestCancelReachesChildrenAndHooks(t *testing.T) {
	var parent, child Ctx
	parent.Start(context.Background())
	child.Start(&parent)
	ran := 0
	if _, ok := child.OnCancel(func() { ran++ }); !ok {
		t.Fatal("OnCancel on a live Ctx: not ok")
	}
	id, _ := child.OnCancel(func() { t.Error("stopped hook ran") })
	if !child.StopOnCancel(id) {
		t.Fatal("StopOnCancel of a pending hook: false")
	}
	parent.Cancel(errWhy)
	if child.Err() != context.Canceled || Cause(&child) != errWhy || ran != 1 {
		t.Fatalf("child: err %v cause %v hook ran %d times", child.Err(), Cause(&child), ran)
	}
	select {
	case <-child.Done():
	default:
		t.Fatal("Done not closed")
	}
	if _, ok := child.OnCancel(func() { ran++ }); ok || ran != 2 {
		t.Fatal("OnCancel on a cancelled Ctx must run f at once and report false")
	}
	child.End()
	parent.End()
}

func TestForeignParent(t *testing.T) {
	parent, cancel := context.WithCancelCause(context.WithValue(context.Background(), key("k"), "v"))
	var c Ctx
	c.Start(parent)
	c.SetValue(key("own"), 1)
	if c.Value(key("k")) != "v" || c.Value(key("own")) != 1 {
		t.Fatal("values not found")
	}
	cancel(errWhy)
	// The context package runs the hook on a goroutine of its own.
	for deadline := time.Now().Add(5 * time.Second); c.Err() == nil && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if c.Err() != context.Canceled || Cause(&c) != errWhy {
		t.Fatalf("err %v cause %v", c.Err(), Cause(&c))
	}
	c.End()
	if c.Value(key("k")) != nil || c.Value(key("own")) != 1 {
		t.Fatal("after End, Value must answer only the Ctx's own values")
	}
}

func TestDerivedThroughContextPackage(t *testing.T) {
	var c Ctx
	c.Start(context.Background())
	d, cancel := context.WithCancel(&c)
	defer cancel()
	c.Cancel(errWhy)
	select {
	case <-d.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("derived context not cancelled")
	}
	c.End()
	if c.Reusable() {
		t.Fatal("a Ctx something was derived from must not be reusable")
	}
}

func TestTimeout(t *testing.T) {
	var c Ctx
	c.Start(context.Background())
	c.SetTimeout(time.Millisecond, errWhy)
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("timeout never fired")
	}
	if c.Err() != context.DeadlineExceeded || c.Cause() != errWhy {
		t.Fatalf("err %v cause %v", c.Err(), c.Cause())
	}
	c.End()
	// A timer of an earlier use must not cancel the next one.
	c.Start(context.Background())
	c.SetTimeout(time.Hour, errWhy)
	c.SetTimeout(time.Millisecond, errWhy)
	c.End()
	c.Start(context.Background())
	time.Sleep(20 * time.Millisecond)
	if c.Err() != nil {
		t.Fatalf("a stale timer cancelled the next use: %v", c.Err())
	}
	if _, ok := c.Deadline(); ok {
		t.Fatal("deadline left over from the last use")
	}
	c.End()
}

func TestReuseAllocatesNothing(t *testing.T) {
	var req, ex, try Ctx
	abort := func() {}
	cycle := func() {
		req.Start(context.Background())
		ex.Start(&req)
		try.Start(&ex)
		try.SetValue(key("dial"), 1)
		id, _ := try.OnCancel(abort)
		try.StopOnCancel(id)
		try.End()
		ex.End()
		req.End()
		if !req.Reusable() || !ex.Reusable() || !try.Reusable() {
			t.Fatal("not reusable")
		}
	}
	cycle()
	if n := testing.AllocsPerRun(100, cycle); n != 0 {
		t.Fatalf("%v allocations per request", n)
	}
}

func TestEndWaitsForAConcurrentCancel(t *testing.T) {
	for range 200 {
		var parent, child Ctx
		parent.Start(context.Background())
		child.Start(&parent)
		var running sync.WaitGroup
		child.OnCancel(func() { time.Sleep(10 * time.Microsecond) })
		running.Go(func() { parent.Cancel(errWhy) })
		child.End()
		// End returned: starting child again must not race with the
		// cancel still walking its hooks (run with -race).
		child.Start(context.Background())
		child.OnCancel(func() {})
		child.End()
		running.Wait()
		parent.End()
	}
}

func TestFreshCtxAllocatesNothing(t *testing.T) {
	abort := func() {}
	var parent Ctx
	parent.Start(context.Background())
	n := testing.AllocsPerRun(100, func() {
		c := new(Ctx) // the one allocation: the caller's, with its struct
		c.Start(&parent)
		id, _ := c.OnCancel(abort)
		c.StopOnCancel(id)
		c.End()
	})
	parent.End()
	if n > 1 {
		t.Fatalf("%v allocations per fresh Ctx, want only its own", n)
	}
}
