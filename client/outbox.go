package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/switchboard-proxy/switchboard/hangup"
	bolt "go.etcd.io/bbolt"
)

// OutboxOptions configures an Outbox. The zero value is the default; each
// field says what its zero means.
type OutboxOptions struct {
	// Transport sends every attempt, the one Send makes at once and the
	// sender's later ones. nil means NewTransport(Options{MaxAttempts: 1}),
	// owned and closed by the Outbox: the Outbox spaces its own attempts
	// out, so each of them is one request. A retrying *Transport works
	// too; each of its RoundTrips then counts as one outbox attempt.
	Transport http.RoundTripper
	// MaxAttempts bounds the attempts of an entry, the first one made by
	// Send included; an entry that has used them all is dead. 0 means 20.
	MaxAttempts int
	// MaxAge bounds the life of an entry from its creation; an entry not
	// delivered by then is dead ("expired"). 0 means 24h.
	MaxAge time.Duration
	// BackoffBase and BackoffMax space the attempts of an entry: the wait
	// before attempt n+1 is drawn uniformly below BackoffBase·2^(n-1),
	// capped at BackoffMax (full jitter, as in Options). A Retry-After on a
	// 429 or 503 answer is honoured when it asks for longer. 0 means 1s
	// and 5m.
	BackoffBase, BackoffMax time.Duration
	// AttemptTimeout bounds one delivery attempt of the sender, up to the
	// response headers. 0 means 30s.
	AttemptTimeout time.Duration
	// RetryOnStatus lists the statuses that leave an entry pending for
	// another attempt; any other status ends it: 2xx and 3xx delivered,
	// the rest dead. nil means 429, 502, 503 and 504.
	RetryOnStatus []int
	// MaxBody is the longest request body the Outbox keeps; Send refuses
	// a longer one with ErrBodyTooLarge before any attempt. 0 means 1 MiB.
	MaxBody int64
	// KeepDelivered is how long a delivered entry is kept for List and
	// Get before the sender deletes it. 0 means 1h; negative deletes it
	// at once.
	KeepDelivered time.Duration
	// OnOutcome, if set, is called on the sender's goroutine each time a
	// queued entry ends, delivered or dead, after that is on disk. It
	// should return quickly: no other entry is sent meanwhile.
	OnOutcome func(Entry)
	// Outcomes, if set, receives the same entries as OnOutcome, after it.
	// The sender waits for the receiver (or for Close), so drain it.
	Outcomes chan<- Entry
	// OpenTimeout bounds the wait for the file lock held by another
	// process that has the outbox open. 0 means 1s.
	OpenTimeout time.Duration
}

// Defaults of OutboxOptions.
const (
	defaultOutboxAttempts = 20
	defaultOutboxMaxAge   = 24 * time.Hour
	defaultOutboxBase     = time.Second
	defaultOutboxMax      = 5 * time.Minute
	defaultOutboxTimeout  = 30 * time.Second
	defaultOutboxBody     = 1 << 20
	defaultKeepDelivered  = time.Hour
	defaultOpenTimeout    = time.Second
	// keptResponse is how much of a delivered entry's response body is
	// kept.
	keptResponse = 1 << 10
)

var defaultOutboxStatuses = []int{http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}

// State is where an entry is in its life.
type State uint8

const (
	// Pending entries wait for their next attempt.
	Pending State = iota + 1
	// Delivered entries got an answer with a 2xx or 3xx status.
	Delivered
	// Dead entries will not be tried again unless replayed: their
	// attempts or their age ran out, or the server answered with a
	// status that later delivery would not mend.
	Dead
)

var stateNames = [...]string{Pending: "pending", Delivered: "delivered", Dead: "dead"}

func (s State) String() string {
	if int(s) < len(stateNames) && stateNames[s] != "" {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", s)
}

// Entry is a request in the outbox.
type Entry struct {
	ID     uint64
	State  State
	Method string
	URL    string
	Header http.Header // includes the Idempotency-Key sent on every attempt
	Body   []byte
	// Created is when Send queued it; Deadline is Created + MaxAge.
	Created, Deadline time.Time
	// Next is when the sender tries it next (pending entries).
	Next time.Time
	// Attempts lists every attempt made, Send's first one included.
	Attempts []AttemptRecord
	// Tries counts the attempts since the entry was queued or last
	// replayed, against MaxAttempts.
	Tries int
	// Reason says why a dead entry is dead: "attempts_exhausted",
	// "expired", "status_400", …
	Reason string
	// Status and Response are the delivering answer's status and the
	// first KiB of its body (delivered entries).
	Status   int
	Response []byte
	// Ended is when the entry was delivered or died.
	Ended time.Time
}

// AttemptRecord is one delivery attempt of an entry.
type AttemptRecord struct {
	At     time.Time
	Status int    `json:",omitempty"` // the answer's status; 0 without one
	Err    string `json:",omitempty"` // why no answer came
}

// Receipt tells what Send did with a request.
type Receipt struct {
	// Queued is true when the request is on disk for later delivery; ID
	// then names its entry.
	Queued bool
	ID     uint64
	// Response is the server's answer when the request was not queued;
	// the caller closes its body.
	Response *http.Response
	// Err is the failure of the attempt made at once, when the request
	// was queued because of it.
	Err error
}

// Errors of the Outbox.
var (
	ErrOutboxClosed = errors.New("outbox closed")
	ErrBodyTooLarge = errors.New("request body too large for the outbox")
	ErrNotFound     = errors.New("no such outbox entry")
)

// Outbox keeps requests that could not be delivered now in a bbolt file
// and delivers them later with backoff from one background goroutine. Every
// entry is written in its own bbolt transaction, which fsyncs the file
// before Send returns: a queued request survives the process dying. It is
// delivered at least once — an attempt may reach the server and the answer
// be lost — always with the same Idempotency-Key, so a server that applies
// each key once applies it exactly once. Its methods are safe for
// concurrent use; one file can be open in one Outbox (one process) at a
// time.
type Outbox struct {
	db      *bolt.DB
	rt      http.RoundTripper
	ownRT   bool
	o       OutboxOptions // resolved
	retryOn []int
	wake    chan struct{} // size 1: a pending wake-up is enough
	sleepMu sync.Mutex    // guards sleepUntil
	// sleepUntil is when the sleeping sender wakes by itself; zero while
	// it is awake, so that an entry written during its scan wakes it.
	sleepUntil time.Time
	stop       context.CancelFunc
	done       chan struct{} // closed when the sender returns
	closeMu    sync.Mutex    // guards closed
	closed     bool
	closeErr   error
}

var (
	bucketPending   = []byte("pending")
	bucketDelivered = []byte("delivered")
	bucketDead      = []byte("dead")
)

func bucketOf(s State) []byte {
	switch s {
	case Pending:
		return bucketPending
	case Delivered:
		return bucketDelivered
	}
	return bucketDead
}

// OpenOutbox opens (creating if needed) the outbox file at path and starts
// its sender, which delivers the entries still pending from earlier runs
// as they fall due. Close it to stop the sender.
func OpenOutbox(path string, opts OutboxOptions) (*Outbox, error) {
	o := opts
	o.MaxAttempts = orDefault(o.MaxAttempts, defaultOutboxAttempts)
	o.MaxAge = orDefault(o.MaxAge, defaultOutboxMaxAge)
	o.BackoffBase = orDefault(o.BackoffBase, defaultOutboxBase)
	o.BackoffMax = orDefault(o.BackoffMax, defaultOutboxMax)
	o.AttemptTimeout = orDefault(o.AttemptTimeout, defaultOutboxTimeout)
	o.MaxBody = orDefault(o.MaxBody, defaultOutboxBody)
	o.KeepDelivered = orDefault(o.KeepDelivered, defaultKeepDelivered)
	o.OpenTimeout = orDefault(o.OpenTimeout, defaultOpenTimeout)
	// NoSync stays false: every committed transaction is fsynced.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.OpenTimeout})
	if err != nil {
		return nil, fmt.Errorf("open outbox %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketPending, bucketDelivered, bucketDead} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open outbox %s: %w", path, err)
	}
	ob := &Outbox{db: db, rt: o.Transport, o: o, retryOn: slices.Clone(o.RetryOnStatus),
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	if ob.rt == nil {
		ob.rt, ob.ownRT = NewTransport(Options{MaxAttempts: 1}), true
	}
	if o.RetryOnStatus == nil {
		ob.retryOn = defaultOutboxStatuses
	}
	ctx, cancel := context.WithCancel(context.Background())
	ob.stop = cancel
	go ob.send(ctx)
	return ob, nil
}

// Close stops the sender, waiting for an attempt in flight to be abandoned
// (the entry stays pending, its attempt not counted), and closes the file.
// It is idempotent; later calls return the first one's error.
func (ob *Outbox) Close() error {
	ob.closeMu.Lock()
	defer ob.closeMu.Unlock()
	if ob.closed {
		return ob.closeErr
	}
	ob.closed = true
	ob.stop()
	<-ob.done
	if c, ok := ob.rt.(interface{ CloseIdleConnections() }); ok && ob.ownRT {
		c.CloseIdleConnections()
	}
	ob.closeErr = ob.db.Close()
	return ob.closeErr
}

// Send tries req once now through the Transport. When that fails in a way
// that later delivery may mend — the server could not be reached, hung up
// before answering, answered with a status of RetryOnStatus, or the
// caller's deadline passed while waiting — Send writes the request to disk
// and returns a Receipt with Queued set; the sender delivers it later.
// Otherwise it returns the answer, whatever its status, or the error (a
// cancelled ctx, a failure later attempts would not mend) without queueing.
//
// Before the attempt Send reads the body (up to MaxBody) and gives the
// request an Idempotency-Key unless it has one; the same key goes with
// every later attempt. ctx bounds the attempt made now, not the later
// ones. Send closes req.Body.
func (ob *Outbox) Send(ctx context.Context, req *http.Request) (Receipt, error) {
	e, err := ob.newEntry(req)
	if err != nil {
		return Receipt{}, err
	}
	out, err := e.request(ctx)
	if err != nil {
		return Receipt{}, err
	}
	at := time.Now()
	res, err := ob.rt.RoundTrip(out)
	if !ob.deferrable(ctx, res, err) {
		return Receipt{Response: res}, err
	}
	rec := AttemptRecord{At: at}
	if res != nil {
		rec.Status = res.StatusCode
		e.Next = time.Now().Add(ob.delay(1, res)) // Retry-After counts from the answer
		drain(res.Body)
	} else {
		rec.Err = err.Error()
		e.Next = time.Now().Add(ob.delay(1, nil))
	}
	e.Attempts, e.Tries = []AttemptRecord{rec}, 1
	if err := ob.queue(e); err != nil {
		return Receipt{}, err
	}
	return Receipt{Queued: true, ID: e.ID, Err: err}, nil
}

// Enqueue writes req to disk for the sender without trying it now, as
// Send does after a failed attempt. It closes req.Body.
func (ob *Outbox) Enqueue(req *http.Request) (Receipt, error) {
	e, err := ob.newEntry(req)
	if err != nil {
		return Receipt{}, err
	}
	e.Next = e.Created
	if err := ob.queue(e); err != nil {
		return Receipt{}, err
	}
	return Receipt{Queued: true, ID: e.ID}, nil
}

// newEntry reads req into a pending entry with an Idempotency-Key.
func (ob *Outbox) newEntry(req *http.Request) (*Entry, error) {
	if ob.isClosed() {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, ErrOutboxClosed
	}
	var body []byte
	if req.Body != nil {
		defer req.Body.Close()
		b, err := io.ReadAll(io.LimitReader(req.Body, ob.o.MaxBody+1))
		if err != nil {
			return nil, fmt.Errorf("read request body: %w", err)
		}
		if int64(len(b)) > ob.o.MaxBody {
			return nil, ErrBodyTooLarge
		}
		body = b
	}
	h := req.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if h.Get("Idempotency-Key") == "" {
		h.Set("Idempotency-Key", newIdempotencyKey())
	}
	now := time.Now()
	return &Entry{State: Pending, Method: req.Method, URL: req.URL.String(), Header: h, Body: body,
		Created: now, Deadline: now.Add(ob.o.MaxAge)}, nil
}

// request builds one attempt of e.
func (e *Entry) request(ctx context.Context) (*http.Request, error) {
	var body io.Reader
	if len(e.Body) > 0 {
		body = bytes.NewReader(e.Body)
	}
	req, err := http.NewRequestWithContext(ctx, e.Method, e.URL, body)
	if err != nil {
		return nil, err
	}
	req.Header = e.Header.Clone()
	return req, nil
}

// deferrable reports whether an attempt's outcome is one that later
// delivery may mend.
func (ob *Outbox) deferrable(ctx context.Context, res *http.Response, err error) bool {
	if err == nil {
		return slices.Contains(ob.retryOn, res.StatusCode)
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return false // the caller gave up on the request
	}
	var he *hangup.Error
	if errors.As(err, &he) {
		return he.Side == hangup.Upstream || errors.Is(err, context.DeadlineExceeded)
	}
	return true // another RoundTripper's failure: treat as the server's
}

// queue writes the new entry e in its own (fsynced) transaction, assigning
// its ID, and wakes the sender.
func (ob *Outbox) queue(e *Entry) error {
	if ob.isClosed() {
		return ErrOutboxClosed
	}
	err := ob.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPending)
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		e.ID = id
		return putEntry(b, e)
	})
	if err != nil {
		return fmt.Errorf("queue request: %w", err)
	}
	ob.poke(e.Next)
	return nil
}

func (ob *Outbox) isClosed() bool {
	ob.closeMu.Lock()
	defer ob.closeMu.Unlock()
	return ob.closed
}

// poke wakes the sender for an entry due at due, unless it would wake by
// then anyway: each wake-up scans the pending entries.
func (ob *Outbox) poke(due time.Time) {
	ob.sleepMu.Lock()
	asleep := !ob.sleepUntil.IsZero() && !due.Before(ob.sleepUntil)
	ob.sleepMu.Unlock()
	if asleep {
		return
	}
	select {
	case ob.wake <- struct{}{}:
	default:
	}
}

func key(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

func putEntry(b *bolt.Bucket, e *Entry) error {
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return b.Put(key(e.ID), v)
}

func getEntry(b *bolt.Bucket, id uint64) (*Entry, error) {
	v := b.Get(key(id))
	if v == nil {
		return nil, nil
	}
	e := new(Entry)
	if err := json.Unmarshal(v, e); err != nil {
		return nil, fmt.Errorf("outbox entry %d: %w", id, err)
	}
	return e, nil
}

// List returns the entries in state s, oldest first.
func (ob *Outbox) List(s State) ([]Entry, error) {
	var out []Entry
	err := ob.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOf(s)).ForEach(func(k, v []byte) error {
			var e Entry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("outbox entry %x: %w", k, err)
			}
			out = append(out, e)
			return nil
		})
	})
	return out, err
}

// Get returns the entry id, in whatever state, or ErrNotFound.
func (ob *Outbox) Get(id uint64) (Entry, error) {
	var e *Entry
	err := ob.db.View(func(tx *bolt.Tx) error {
		var err error
		e, _, err = find(tx, id)
		return err
	})
	if err != nil {
		return Entry{}, err
	}
	return *e, nil
}

// find looks for entry id in every state.
func find(tx *bolt.Tx, id uint64) (*Entry, *bolt.Bucket, error) {
	for _, name := range [][]byte{bucketPending, bucketDead, bucketDelivered} {
		b := tx.Bucket(name)
		e, err := getEntry(b, id)
		if err != nil || e != nil {
			return e, b, err
		}
	}
	return nil, nil, ErrNotFound
}

// Replay makes a dead entry pending again, due now, with a fresh budget of
// MaxAttempts attempts and MaxAge from now; its past attempts are kept. It
// returns ErrNotFound unless id is dead.
func (ob *Outbox) Replay(id uint64) error {
	err := ob.db.Update(func(tx *bolt.Tx) error {
		dead := tx.Bucket(bucketDead)
		e, err := getEntry(dead, id)
		if err != nil || e == nil {
			return cmpOr(err, ErrNotFound)
		}
		now := time.Now()
		e.State, e.Reason, e.Next, e.Ended, e.Tries = Pending, "", now, time.Time{}, 0
		e.Deadline = now.Add(ob.o.MaxAge)
		if err := dead.Delete(key(id)); err != nil {
			return err
		}
		return putEntry(tx.Bucket(bucketPending), e)
	})
	if err != nil {
		return fmt.Errorf("replay %d: %w", id, err)
	}
	ob.poke(time.Now())
	return nil
}

// Drop deletes entry id, in whatever state. An attempt of it in flight
// still runs to its end, but its outcome is not recorded or reported.
func (ob *Outbox) Drop(id uint64) error {
	err := ob.db.Update(func(tx *bolt.Tx) error {
		_, b, err := find(tx, id)
		if err != nil {
			return err
		}
		return b.Delete(key(id))
	})
	if err != nil {
		return fmt.Errorf("drop %d: %w", id, err)
	}
	return nil
}

func cmpOr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}
