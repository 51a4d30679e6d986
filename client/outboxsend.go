package client

import (
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/attempt"
	bolt "go.etcd.io/bbolt"
)

// send is the sender goroutine: it delivers the entries that are due, then
// sleeps until the earliest next attempt, a new entry, or Close.
func (ob *Outbox) send(ctx context.Context) {
	defer close(ob.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		busy, next := ob.sendDue(ctx)
		if ctx.Err() != nil {
			return
		}
		if busy {
			continue // attempts were made: look again at once
		}
		var due <-chan time.Time
		if !next.IsZero() {
			timer.Reset(time.Until(next))
			due = timer.C
		}
		ob.setSleep(cmpOrTime(next, farFuture))
		select {
		case <-ctx.Done():
			return
		case <-ob.wake:
		case <-due:
		}
		ob.setSleep(time.Time{})
		timer.Stop()
	}
}

// farFuture stands for "no entry pending": any new entry wakes the sender.
var farFuture = time.Unix(1<<62, 0)

func (ob *Outbox) setSleep(until time.Time) {
	ob.sleepMu.Lock()
	ob.sleepUntil = until
	ob.sleepMu.Unlock()
}

func cmpOrTime(t, def time.Time) time.Time {
	if t.IsZero() {
		return def
	}
	return t
}

// sendDue makes one attempt of every pending entry that is due and deletes
// delivered entries past KeepDelivered. It reports whether it made any
// attempt and, if not, when the next one falls due (zero: none pending).
// A failure to read the file is dropped: the sender tries again on the next
// wake-up, and the file's own errors reach the caller through Send and List.
func (ob *Outbox) sendDue(ctx context.Context) (busy bool, next time.Time) {
	now := time.Now()
	var due []Entry
	var expired [][]byte
	_ = ob.db.View(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketPending).ForEach(func(k, v []byte) error {
			e := new(Entry)
			if json.Unmarshal(v, e) != nil {
				return nil // unreadable: left for List to report
			}
			at := e.Next
			if e.Deadline.Before(at) {
				at = e.Deadline
			}
			if !at.After(now) {
				due = append(due, *e)
			} else if next.IsZero() || at.Before(next) {
				next = at
			}
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketDelivered).ForEach(func(k, v []byte) error {
			var e Entry
			if json.Unmarshal(v, &e) == nil && now.Sub(e.Ended) >= ob.o.KeepDelivered {
				expired = append(expired, slices.Clone(k))
			}
			return nil
		})
	})
	if len(expired) > 0 {
		_ = ob.db.Update(func(tx *bolt.Tx) error {
			for _, k := range expired {
				if err := tx.Bucket(bucketDelivered).Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for i := range due {
		if ctx.Err() != nil {
			return true, time.Time{}
		}
		ob.deliver(ctx, &due[i])
	}
	return len(due) > 0, next
}

// deliver makes one attempt of the pending entry e and records what came
// of it. An attempt cut short by Close is not recorded.
func (ob *Outbox) deliver(ctx context.Context, e *Entry) {
	now := time.Now()
	if !now.Before(e.Deadline) {
		ob.finish(ctx, e, Dead, "expired")
		return
	}
	actx, cancel := context.WithTimeout(ctx, ob.o.AttemptTimeout)
	defer cancel()
	req, err := e.request(actx)
	if err != nil {
		ob.finish(ctx, e, Dead, "bad_request: "+err.Error())
		return
	}
	res, err := ob.rt.RoundTrip(req)
	if ctx.Err() != nil {
		if res != nil {
			res.Body.Close()
		}
		return
	}
	rec := AttemptRecord{At: now}
	e.Tries++
	switch {
	case err != nil:
		rec.Err = err.Error()
	case slices.Contains(ob.retryOn, res.StatusCode):
		rec.Status = res.StatusCode
		drain(res.Body)
	default:
		rec.Status = res.StatusCode
		e.Status = res.StatusCode
		e.Response, _ = io.ReadAll(io.LimitReader(res.Body, keptResponse))
		drain(res.Body)
	}
	e.Attempts = append(e.Attempts, rec)
	switch {
	case err == nil && e.Status != 0 && e.Status < 400:
		ob.finish(ctx, e, Delivered, "")
	case err == nil && e.Status != 0:
		ob.finish(ctx, e, Dead, "status_"+strconv.Itoa(e.Status))
	case e.Tries >= ob.o.MaxAttempts:
		ob.finish(ctx, e, Dead, attempt.ReasonAttempts)
	default:
		e.Next = time.Now().Add(ob.delay(e.Tries, res)) // Retry-After counts from the answer
		if !e.Next.Before(e.Deadline) {
			ob.finish(ctx, e, Dead, "expired")
			return
		}
		ob.update(e)
	}
}

// delay draws the wait after an entry's attempt n: full jitter below
// BackoffBase·2^(n-1), capped at BackoffMax, or longer when the answer's
// Retry-After asks for it.
func (ob *Outbox) delay(n int, res *http.Response) time.Duration {
	d := attempt.Backoff(ob.o.BackoffBase, ob.o.BackoffMax, n, rand.Float64())
	if res != nil && (res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusServiceUnavailable) {
		if ra, ok := attempt.ParseRetryAfter(res.Header.Get("Retry-After"), time.Now()); ok {
			d = max(d, ra)
		}
	}
	return d
}

// update writes the pending entry e back, unless it was dropped meanwhile,
// and reports whether it did.
func (ob *Outbox) update(e *Entry) bool {
	written := false
	_ = ob.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPending)
		if b.Get(key(e.ID)) == nil {
			return nil // dropped while in flight
		}
		written = true
		if e.State == Pending {
			return putEntry(b, e)
		}
		if err := b.Delete(key(e.ID)); err != nil {
			return err
		}
		if e.State == Delivered && ob.o.KeepDelivered < 0 {
			return nil
		}
		return putEntry(tx.Bucket(bucketOf(e.State)), e)
	})
	return written
}

// finish ends the pending entry e in state s and reports it to OnOutcome
// and Outcomes once it is on disk.
func (ob *Outbox) finish(ctx context.Context, e *Entry, s State, reason string) {
	e.State, e.Reason, e.Ended, e.Next = s, reason, time.Now(), time.Time{}
	if !ob.update(e) {
		return
	}
	if ob.o.OnOutcome != nil {
		ob.o.OnOutcome(*e)
	}
	if ob.o.Outcomes != nil {
		select {
		case ob.o.Outcomes <- *e:
		case <-ctx.Done():
		}
	}
}
