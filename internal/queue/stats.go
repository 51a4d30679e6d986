package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Count is how many deliveries of one route are in one state, and when
// the oldest of them arrived.
type Count struct {
	Route  string
	State  State
	N      int
	Oldest time.Time
}

// Counts returns the number of deliveries per route and state. It reads
// every record, but in one stream from the state bucket rather than one
// request per record as List does; callers on a timer should still cache
// the result.
func (q *Queue) Counts(ctx context.Context) ([]Count, error) {
	w, err := q.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("count records: %w", err)
	}
	defer w.Stop()
	type key struct {
		route string
		state State
	}
	idx := map[key]int{}
	var out []Count
	for {
		var e jetstream.KeyValueEntry
		select {
		case e = <-w.Updates():
		case <-ctx.Done():
			return nil, fmt.Errorf("count records: %w", ctx.Err())
		}
		if e == nil {
			// The watcher marks the end of the current values with nil.
			return out, nil
		}
		r, err := decodeRecord(e.Value())
		if err != nil {
			continue // not ours to judge here; Get reports it
		}
		k := key{r.Route, r.State}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, Count{Route: r.Route, State: r.State})
		}
		c := &out[i]
		c.N++
		if c.Oldest.IsZero() || r.Arrived.Before(c.Oldest) {
			c.Oldest = r.Arrived
		}
	}
}

// Drop ends a delivery an operator no longer wants: a pending one is
// cancelled (its record stays, cancelled), a dead letter is removed with
// its stored request. It returns the state the delivery was in. Dropping
// a delivered or cancelled delivery is a *StateError: Purge removes
// those.
func (q *Queue) Drop(ctx context.Context, id string) (State, error) {
	r, rev, err := q.get(ctx, id)
	if err != nil {
		return "", err
	}
	switch r.State {
	case Pending:
		return Pending, q.Cancel(ctx, id)
	case Dead:
		removed, err := q.purgeOne(ctx, r, rev)
		if err != nil {
			return Dead, err
		}
		if !removed {
			// Replayed (or changed) between the read and the purge.
			return Dead, &StateError{ID: id, State: Pending, Op: "drop"}
		}
		return Dead, nil
	}
	return r.State, &StateError{ID: id, State: r.State, Op: "drop"}
}

// purgeOne removes record r, read at revision rev, and its dead letter if
// it is dead. It reports false when the record changed since it was read.
func (q *Queue) purgeOne(ctx context.Context, r *Record, rev uint64) (bool, error) {
	// Purge the record only at the revision just read, so a delivery
	// replayed meanwhile survives.
	err := q.kv.Purge(ctx, r.ID, jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("purge record %s: %w", r.ID, err)
	}
	if r.State == Dead {
		if err := q.dead.Purge(ctx, jetstream.WithPurgeSubject(q.deadSubject(r.ID))); err != nil {
			return true, fmt.Errorf("purge dead letter %s: %w", r.ID, err)
		}
	}
	return true, nil
}
