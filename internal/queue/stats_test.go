package queue

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestCountsDropEvents follows deliveries through a failing upstream to the
// dead-letter list, checking Counts, the events OnOutcome gets, and Drop
// in every state.
func TestCountsDropEvents(t *testing.T) {
	q := openQueue(t, t.TempDir())
	if cs, err := q.Counts(t.Context()); err != nil || len(cs) != 0 {
		t.Fatalf("Counts of an empty queue = %v, %v", cs, err)
	}
	var mu sync.Mutex
	var events []Event
	f := &flaky{}
	f.failing.Store(true)
	runWorker(t, q, WorkerConfig{Deliver: f.deliver, OnOutcome: func(e Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}})
	dead, err := q.Put(t.Context(), post("hooks", "a"))
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, q, dead, Dead)
	mu.Lock()
	got := slices.Clone(events)
	mu.Unlock()
	want := []Event{
		{ID: dead, Route: "hooks", Attempts: 1, State: Pending, Reason: "status_503", Status: 503},
		{ID: dead, Route: "hooks", Attempts: 2, State: Pending, Reason: "status_503", Status: 503},
		{ID: dead, Route: "hooks", Attempts: 3, State: Dead, Reason: "attempts_exhausted", Status: 503},
	}
	if !slices.Equal(got, want) {
		t.Errorf("events %+v, want %+v", got, want)
	}

	cs, err := q.Counts(t.Context())
	if err != nil || len(cs) != 1 || cs[0] != (Count{Route: "hooks", State: Dead, N: 1, Oldest: cs[0].Oldest}) {
		t.Fatalf("Counts = %+v, %v", cs, err)
	}

	if _, err := q.Drop(t.Context(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Drop(unknown) = %v", err)
	}
	if st, err := q.Drop(t.Context(), dead); err != nil || st != Dead {
		t.Fatalf("Drop(dead) = %s, %v", st, err)
	}
	if _, err := q.Get(t.Context(), dead); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after dropping a dead letter: %v", err)
	}

	f.failing.Store(false)
	ok, err := q.Put(t.Context(), post("hooks", "c"))
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, q, ok, Delivered)
	if st, err := q.Drop(t.Context(), ok); !errors.As(err, new(*StateError)) || st != Delivered {
		t.Errorf("Drop(delivered) = %s, %v; want a StateError", st, err)
	}
	if _, err := q.Purge(t.Context(), Pending, time.Time{}); !errors.Is(err, ErrBadPurge) {
		t.Errorf("Purge(pending) = %v, want ErrBadPurge", err)
	}
}

// TestDropPending cancels a pending delivery through Drop; no worker runs.
func TestDropPending(t *testing.T) {
	q := openQueue(t, t.TempDir())
	id, err := q.Put(t.Context(), post("hooks", "a"))
	if err != nil {
		t.Fatal(err)
	}
	cs, err := q.Counts(t.Context())
	if err != nil || len(cs) != 1 || cs[0].State != Pending || cs[0].N != 1 || cs[0].Oldest.IsZero() {
		t.Fatalf("Counts = %+v, %v", cs, err)
	}
	if st, err := q.Drop(t.Context(), id); err != nil || st != Pending {
		t.Fatalf("Drop(pending) = %s, %v", st, err)
	}
	if r, err := q.Get(t.Context(), id); err != nil || r.State != Cancelled {
		t.Errorf("after Drop: %+v, %v", r, err)
	}
	if workDepth(t, q) != 0 {
		t.Errorf("the dropped delivery's message is still in the stream")
	}
}
