package queue

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Options configure Open. The zero value of each field is its default.
type Options struct {
	// Dir is where the embedded server keeps its data. It is required
	// unless URL is set, and ignored when it is.
	Dir string
	// URL, when set, names an external NATS server or cluster
	// ("nats://host:4222,nats://host2:4222") to use instead of the
	// embedded one; several switchboard instances then share the work.
	// The cluster's own settings decide durability: run it with
	// sync_interval: always.
	URL string
	// Stream names the JetStream stream; the dead-letter stream and the
	// state bucket are named after it. Default "SWITCHBOARD".
	Stream string
	// MaxBody is the largest request body Put stores; larger ones are
	// refused with a *TooLargeError. Default 1 MiB.
	MaxBody int
	// Replicas is the replication factor of the streams and the bucket:
	// 1 (the default) embedded, 3 on an external cluster.
	Replicas int
	// Now replaces the clock in tests; nil means time.Now.
	Now func() time.Time
}

const (
	defaultStream  = "SWITCHBOARD"
	defaultMaxBody = 1 << 20
	// metaAllowance is the room a stored message needs beyond its body:
	// the method, target, header and bookkeeping as JSON.
	metaAllowance = 64 << 10
)

// ErrNotFound is returned for a delivery id the queue does not know.
var ErrNotFound = errors.New("queue: no such delivery")

// ErrBadPurge is returned by Purge for a state it cannot purge: pending
// or unknown.
var ErrBadPurge = errors.New("queue: cannot purge deliveries in state")

// Queue is the durable store of deliveries. Its methods are safe for
// concurrent use. Close releases it.
type Queue struct {
	opts   Options
	srv    *server.Server // nil with an external URL
	nc     *nats.Conn
	js     jetstream.JetStream
	work   jetstream.Stream
	dead   jetstream.Stream
	kv     jetstream.KeyValue
	maxMsg int // largest stored message, metadata included

	closeOnce sync.Once
}

// Open starts the embedded server (or connects to Options.URL) and creates
// the stream, the dead-letter stream and the state bucket if they do not
// exist. ctx bounds only the setup.
func Open(ctx context.Context, opts Options) (*Queue, error) {
	opts.Stream = cmp.Or(opts.Stream, defaultStream)
	opts.MaxBody = cmp.Or(opts.MaxBody, defaultMaxBody)
	opts.Replicas = cmp.Or(opts.Replicas, 1)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	q := &Queue{opts: opts, maxMsg: opts.MaxBody + metaAllowance}
	if err := q.connect(); err != nil {
		return nil, err
	}
	if err := q.setup(ctx); err != nil {
		q.Close()
		return nil, err
	}
	return q, nil
}

func (q *Queue) connect() error {
	name := nats.Name("switchboard-queue")
	if q.opts.URL != "" {
		nc, err := nats.Connect(q.opts.URL, name, nats.MaxReconnects(-1))
		if err != nil {
			return fmt.Errorf("connect %s: %w", q.opts.URL, err)
		}
		q.nc = nc
		return nil
	}
	if q.opts.Dir == "" {
		return errors.New("queue: neither a data dir nor a URL is set")
	}
	srv, err := startServer(q.opts.Dir, int32(max(q.maxMsg, 1<<20)))
	if err != nil {
		return err
	}
	nc, err := nats.Connect("", name, nats.InProcessServer(srv))
	if err != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		return fmt.Errorf("connect to embedded nats-server: %w", err)
	}
	q.srv, q.nc = srv, nc
	return nil
}

func (q *Queue) setup(ctx context.Context) error {
	js, err := jetstream.New(q.nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	q.js = js
	if int(q.nc.MaxPayload()) < q.maxMsg {
		q.maxMsg = int(q.nc.MaxPayload())
	}
	name := q.opts.Stream
	q.work, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        name,
		Subjects:    []string{q.workSubject()},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    q.opts.Replicas,
		MaxMsgSize:  int32(q.maxMsg),
		Duplicates:  2 * time.Minute,
		Description: "switchboard: requests waiting for delivery",
	})
	if err != nil {
		return fmt.Errorf("stream %s: %w", name, err)
	}
	q.dead, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              name + "_DEAD",
		Subjects:          []string{name + ".dead.*"},
		Storage:           jetstream.FileStorage,
		Replicas:          q.opts.Replicas,
		MaxMsgSize:        int32(q.maxMsg),
		MaxMsgsPerSubject: 1,
		Description:       "switchboard: requests of dead letters, for replay",
	})
	if err != nil {
		return fmt.Errorf("stream %s_DEAD: %w", name, err)
	}
	q.kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      name + "_state",
		Storage:     jetstream.FileStorage,
		Replicas:    q.opts.Replicas,
		History:     1,
		Description: "switchboard: state of each delivery",
	})
	if err != nil {
		return fmt.Errorf("bucket %s_state: %w", name, err)
	}
	return nil
}

// Close closes the connection and shuts the embedded server down, waiting
// for it to finish. It is idempotent. Workers must be stopped first.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		q.nc.Close()
		if q.srv != nil {
			q.srv.Shutdown()
			q.srv.WaitForShutdown()
		}
	})
	return nil
}

func (q *Queue) workSubject() string          { return q.opts.Stream + ".work" }
func (q *Queue) deadSubject(id string) string { return q.opts.Stream + ".dead." + id }

// msgID is the de-duplication id of a delivery's message of one
// generation: a publish repeated after a lost ack is stored once.
func msgID(id string, generation int) string { return id + "." + strconv.Itoa(generation) }

// Put stores m for delivery and returns its id. It returns only once the
// store has acknowledged the write (fsynced, with the embedded server); an
// error means the request may not have been stored and must not be
// acknowledged to the caller. A body over Options.MaxBody is refused with
// a *TooLargeError before anything is written.
//
// Put removes hop-by-hop headers from m.Header and sets its
// Idempotency-Key: m.IdempotencyKey, else the header's value, else a new
// one.
func (q *Queue) Put(ctx context.Context, m Message) (string, error) {
	if len(m.Body) > q.opts.MaxBody {
		return "", &TooLargeError{Size: len(m.Body), Limit: q.opts.MaxBody}
	}
	now := q.opts.Now()
	m.ID = nuid.Next()
	m.Header = endToEnd(m.Header)
	m.IdempotencyKey = cmp.Or(m.IdempotencyKey, m.Header.Get("Idempotency-Key"), m.ID)
	m.Header.Set("Idempotency-Key", m.IdempotencyKey)
	if m.Arrived.IsZero() {
		m.Arrived = now
	}
	m.Attempts, m.Generation = 0, 0
	data, err := m.encode()
	if err != nil {
		return "", err
	}
	if len(data) > q.maxMsg {
		return "", &TooLargeError{Size: len(data), Limit: q.maxMsg}
	}
	ack, err := q.js.Publish(ctx, q.workSubject(), data,
		jetstream.WithMsgID(msgID(m.ID, 0)), jetstream.WithExpectStream(q.opts.Stream))
	if err != nil {
		return "", fmt.Errorf("store delivery %s: %w", m.ID, err)
	}
	r := newRecord(&m, now)
	r.Seq = ack.Sequence
	if err := q.create(ctx, r); err != nil {
		return "", err
	}
	return m.ID, nil
}

// create writes a new record; one that exists already (a worker was
// faster) is left as it is.
func (q *Queue) create(ctx context.Context, r *Record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode record %s: %w", r.ID, err)
	}
	if _, err := q.kv.Create(ctx, r.ID, data); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("store record %s: %w", r.ID, err)
	}
	return nil
}

// Get returns the record of delivery id, or ErrNotFound.
func (q *Queue) Get(ctx context.Context, id string) (*Record, error) {
	r, _, err := q.get(ctx, id)
	return r, err
}

func (q *Queue) get(ctx context.Context, id string) (*Record, uint64, error) {
	e, err := q.kv.Get(ctx, id)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrInvalidKey):
		return nil, 0, ErrNotFound
	case err != nil:
		return nil, 0, fmt.Errorf("read record %s: %w", id, err)
	}
	r, err := decodeRecord(e.Value())
	if err != nil {
		return nil, 0, fmt.Errorf("record %s: %w", id, err)
	}
	return r, e.Revision(), nil
}

// errAdopted ends Replay's record update when a worker already adopted
// the replayed message.
var errAdopted = errors.New("replay adopted by a worker")

// errConflict is returned when a record kept changing under an update.
var errConflict = errors.New("queue: record changed concurrently too often")

// update applies fn to the record of id and writes it back unless it
// changed meanwhile, in which case it reads it again and retries. An error
// from fn ends the update without writing.
func (q *Queue) update(ctx context.Context, id string, fn func(*Record) error) (*Record, error) {
	for range 16 {
		r, rev, err := q.get(ctx, id)
		if err != nil {
			return nil, err
		}
		if err := fn(r); err != nil {
			return r, err
		}
		r.Updated = q.opts.Now()
		data, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("encode record %s: %w", id, err)
		}
		_, err = q.kv.Update(ctx, id, data, rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("update record %s: %w", id, err)
		}
		return r, nil
	}
	return nil, errConflict
}

// List returns the records of route (all routes when empty) in state (all
// states when empty), oldest first. It reads every record: fine for
// operators' use, not for a hot path.
func (q *Queue) List(ctx context.Context, route string, state State) ([]*Record, error) {
	keys, err := q.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	defer keys.Stop()
	var out []*Record
	for k := range keys.Keys() {
		r, err := q.Get(ctx, k)
		if errors.Is(err, ErrNotFound) {
			continue // purged meanwhile
		}
		if err != nil {
			return nil, err
		}
		if (route == "" || r.Route == route) && (state == "" || r.State == state) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *Record) int { return a.Arrived.Compare(b.Arrived) })
	return out, nil
}

// Cancel ends a pending delivery: its record becomes cancelled and its
// message is dropped. An attempt already under way is not interrupted; its
// outcome is not recorded. Cancelling a delivery in any other state is a
// *StateError.
func (q *Queue) Cancel(ctx context.Context, id string) error {
	r, err := q.update(ctx, id, func(r *Record) error {
		if r.State != Pending {
			return &StateError{ID: id, State: r.State, Op: "cancel"}
		}
		r.State, r.Reason, r.NextAttempt = Cancelled, "cancelled", time.Time{}
		return nil
	})
	if err != nil {
		return err
	}
	// Best effort: a message that stays is acked, undelivered, by the
	// worker that takes it, since its record is cancelled.
	if r.Seq != 0 {
		_ = q.work.DeleteMsg(ctx, r.Seq)
	}
	return nil
}

// Replay makes a dead delivery pending again, with its attempt count reset
// and its request as stored. Replaying a delivery in any other state is a
// *StateError.
func (q *Queue) Replay(ctx context.Context, id string) error {
	r, err := q.Get(ctx, id)
	if err != nil {
		return err
	}
	if r.State != Dead {
		return &StateError{ID: id, State: r.State, Op: "replay"}
	}
	raw, err := q.dead.GetLastMsgForSubject(ctx, q.deadSubject(id))
	if err != nil {
		return fmt.Errorf("read dead letter %s: %w", id, err)
	}
	m, err := decodeMessage(raw.Data)
	if err != nil {
		return fmt.Errorf("dead letter %s: %w", id, err)
	}
	gen := r.Generation + 1
	m.Generation, m.Attempts = gen, 0
	data, err := m.encode()
	if err != nil {
		return err
	}
	// Publish before the record changes: a crash in between leaves a
	// message newer than its record, which the worker adopts.
	ack, err := q.js.Publish(ctx, q.workSubject(), data,
		jetstream.WithMsgID(msgID(id, gen)), jetstream.WithExpectStream(q.opts.Stream))
	if err != nil {
		return fmt.Errorf("replay %s: %w", id, err)
	}
	_, err = q.update(ctx, id, func(r *Record) error {
		switch {
		case r.Generation == gen:
			// A worker took the replayed message first and adopted
			// it (see the package doc): the replay is in force.
			return errAdopted
		case r.State != Dead || r.Generation > gen:
			return &StateError{ID: id, State: r.State, Op: "replay"}
		}
		r.State, r.Reason, r.Attempts, r.NextAttempt = Pending, "", 0, time.Time{}
		r.Generation, r.Seq = gen, ack.Sequence
		return nil
	})
	if err != nil && !errors.Is(err, errAdopted) {
		return err
	}
	// Delete exactly the dead letter replayed: by now the replayed message
	// may have failed again and left a newer one on the same subject,
	// which a purge of the subject would lose.
	if err := q.dead.DeleteMsg(ctx, raw.Sequence); err != nil && !q.replaced(ctx, id, raw.Sequence) {
		return fmt.Errorf("drop dead letter %s after replay: %w", id, err)
	}
	return nil
}

// replaced reports whether the dead letter of id at seq is gone: the
// subject keeps one message, so a newer dead letter replaces it.
func (q *Queue) replaced(ctx context.Context, id string, seq uint64) bool {
	last, err := q.dead.GetLastMsgForSubject(ctx, q.deadSubject(id))
	if err != nil {
		return errors.Is(err, jetstream.ErrMsgNotFound)
	}
	return last.Sequence != seq
}

// Purge removes the records in state that last changed before before (all
// of them when before is zero), and the stored requests of dead letters,
// and returns how many it removed. Pending deliveries cannot be purged:
// Cancel them first. Delivered records are kept until purged; a retention
// time is a periodic Purge(Delivered, now - retention).
func (q *Queue) Purge(ctx context.Context, state State, before time.Time) (int, error) {
	if state == Pending || !state.valid() {
		return 0, fmt.Errorf("%w: %q", ErrBadPurge, state)
	}
	recs, err := q.List(ctx, "", state)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range recs {
		r, rev, err := q.get(ctx, r.ID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return n, err
		}
		if r.State != state || !before.IsZero() && !r.Updated.Before(before) {
			continue
		}
		removed, err := q.purgeOne(ctx, r, rev)
		if err != nil {
			return n, err
		}
		if removed {
			n++
		}
	}
	return n, nil
}
