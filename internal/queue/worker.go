package queue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/switchboard-proxy/switchboard/hangup"
	"github.com/switchboard-proxy/switchboard/internal/attempt"
)

// Outcome is what one delivery attempt came to.
type Outcome struct {
	// Status, Header and Body are the upstream's response, when there
	// was one (Status is not 0).
	Status int
	Header http.Header
	Body   []byte
	// Failure describes an attempt that ended without a response.
	Failure *attempt.Failure
}

// DeliverFunc makes one attempt to deliver m and reports how it went. ctx
// ends when the worker stops or the delivery's deadline passes; the
// attempt must end soon after. It makes exactly one attempt: the worker
// owns the retries, whose state outlives the process.
type DeliverFunc func(ctx context.Context, m Message) Outcome

// WorkerConfig configures a Worker. The zero value of each optional field
// is its default.
type WorkerConfig struct {
	// Deliver makes one attempt. Required.
	Deliver DeliverFunc
	// Policy decides after each attempt whether to try again and after
	// how long (MaxAttempts, RetryOnStatus, backoff with jitter,
	// Retry-After up to RetryAfterMax). Required. A response that is not
	// to be retried ends the delivery as delivered, whatever its status.
	Policy *attempt.Policy
	// RoutePolicy, when set, returns the policy for a delivery of the
	// named route, so routes can retry differently through one shared
	// consumer; a nil result means Policy. It is called once per attempt
	// and must be safe for concurrent use.
	RoutePolicy func(route string) *attempt.Policy
	// MaxAge, when not zero, dead-letters a delivery that has not
	// succeeded this long after it arrived.
	MaxAge time.Duration
	// Concurrency is how many deliveries this worker makes at once.
	// Default 1.
	Concurrency int
	// AckWait is how long a message stays with a worker that neither
	// finishes nor reports progress before JetStream hands it to another:
	// the time to notice a dead instance. It is a setting of the shared
	// consumer, so every worker should use the same. Default 30s.
	AckWait time.Duration
	// Consumer names the durable consumer the workers share. Default
	// "deliver".
	Consumer string
	// MaxResponseBody is how much of a response body the record keeps.
	// Default 64 KiB.
	MaxResponseBody int
	// Logger receives store errors the worker cannot return. Default:
	// discard.
	Logger *slog.Logger
	// OnOutcome, when set, is called once the record of a step is
	// written: after each attempt, and when a delivery expires without
	// one. It is called from the delivering goroutines, must be safe for
	// concurrent use and must not block (metrics counters).
	OnOutcome func(Event)
}

// Event is one recorded step of a delivery, as WorkerConfig.OnOutcome
// gets it.
type Event struct {
	// ID is the delivery's id.
	ID    string
	Route string
	// Attempts is how many attempts the delivery's current generation
	// has made.
	Attempts int
	// State is where the delivery stands after the step: Pending (the
	// attempt failed and is retried), Delivered or Dead.
	State State
	// Reason is, for Pending, why the attempt is retried
	// ("connect_failure", "status_503", ...); for Dead, why the delivery
	// ended ("attempts_exhausted", "max_age", ...); empty for Delivered.
	Reason string
	// Status is the upstream's status, 0 when there was no response
	// (or no attempt).
	Status int
}

// Log keys.
const (
	logKeyID  = "delivery"
	logKeyErr = "err"
)

// Worker delivers the queue's messages. Several workers, in one process
// or many sharing a cluster, share the work; each message is delivered by
// one of them at a time.
type Worker struct {
	q    *Queue
	cfg  WorkerConfig
	cons jetstream.Consumer
}

// NewWorker creates (or updates) the durable consumer and returns a worker
// reading from it. ctx bounds only the setup; Run starts the work.
func (q *Queue) NewWorker(ctx context.Context, cfg WorkerConfig) (*Worker, error) {
	if cfg.Deliver == nil || cfg.Policy == nil {
		return nil, errors.New("queue: a worker needs Deliver and Policy")
	}
	cfg.Concurrency = max(cfg.Concurrency, 1)
	cfg.AckWait = cmp.Or(cfg.AckWait, 30*time.Second)
	cfg.Consumer = cmp.Or(cfg.Consumer, "deliver")
	cfg.MaxResponseBody = cmp.Or(cfg.MaxResponseBody, 64<<10)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cons, err := q.work.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       cfg.Consumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    -1, // the worker counts attempts itself
		FilterSubject: q.workSubject(),
		Description:   "switchboard delivery workers",
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", cfg.Consumer, err)
	}
	return &Worker{q: q, cfg: cfg, cons: cons}, nil
}

// Run delivers messages until ctx ends, then waits for the deliveries
// under way to stop and returns nil. A delivery interrupted by ctx is
// handed back to the stream at once, for another worker.
func (w *Worker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	// One token per delivery under way; the buffer is the concurrency
	// limit.
	slots := make(chan struct{}, w.cfg.Concurrency)
	for {
		n, err := acquire(ctx, slots)
		if err != nil {
			return nil
		}
		got, err := w.fetch(ctx, n, func(msg jetstream.Msg) {
			wg.Go(func() {
				defer func() { <-slots }()
				w.handle(ctx, msg)
			})
		})
		if err != nil && ctx.Err() == nil {
			w.cfg.Logger.Warn("queue: fetch", logKeyErr, err)
			if attempt.Wait(ctx, time.Second) != nil {
				return nil
			}
		}
		for range n - got {
			<-slots
		}
	}
}

// acquire waits for one free slot, then takes every other free one, and
// returns how many it took.
func acquire(ctx context.Context, slots chan struct{}) (int, error) {
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	n := 1
	for n < cap(slots) {
		select {
		case slots <- struct{}{}:
			n++
		default:
			return n, nil
		}
	}
	return n, nil
}

// fetch pulls up to n messages, waiting a few seconds at most, and hands
// each to start as soon as it arrives (a batch is not complete until n
// messages came or the wait ended), then returns how many it handed over.
// Messages are fetched only for free slots, so none waits in a buffer
// while its AckWait runs out.
func (w *Worker) fetch(ctx context.Context, n int, start func(jetstream.Msg)) (int, error) {
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	batch, err := w.cons.Fetch(n, jetstream.FetchContext(fctx))
	if err != nil {
		return 0, err
	}
	got := 0
	for msg := range batch.Messages() {
		got++
		start(msg)
	}
	if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, jetstream.ErrNoMessages) {
		return got, err
	}
	return got, nil
}

// Reasons a delivery ends that the attempt loop does not give.
const (
	reasonMaxAge       = "max_age"
	reasonDeadline     = "deadline"
	reasonNotRetryable = "not_retryable"
)

var (
	// errStale: the message is older than its record, or its delivery
	// already ended (delivered, dead, cancelled).
	errStale = errors.New("stale message")
	// errNotYet: the message came back before its backoff ended.
	errNotYet = errors.New("backoff not over")
	// errExpired: the delivery is past its deadline or maximum age.
	errExpired = errors.New("expired")
)

// handle takes one message through one attempt.
func (w *Worker) handle(ctx context.Context, msg jetstream.Msg) {
	m, err := decodeMessage(msg.Data())
	if err != nil {
		w.cfg.Logger.Error("queue: dropping malformed message", logKeyErr, err)
		_ = msg.TermWithReason("malformed")
		return
	}
	deadline, expiry := w.deadline(&m)
	var wait time.Duration
	r, err := w.begin(ctx, msg, &m, deadline, &wait)
	switch {
	case errors.Is(err, errStale):
		_ = msg.Ack()
		return
	case errors.Is(err, errNotYet):
		_ = msg.NakWithDelay(wait)
		return
	case errors.Is(err, errExpired):
		w.deadLetter(ctx, msg, &m, expiry, nil)
		return
	case err != nil:
		w.cfg.Logger.Warn("queue: begin delivery", logKeyID, m.ID, logKeyErr, err)
		_ = msg.Nak()
		return
	}
	m.Attempts = r.Attempts - 1
	out, o := w.attempt(ctx, msg, m, deadline)
	if ctx.Err() != nil {
		// Stopping: hand the message back for another worker now rather
		// than after AckWait. The interrupted attempt stays counted.
		_ = msg.Nak()
		return
	}
	w.finish(ctx, msg, &m, r.Attempts, deadline, out, o)
}

// deadline returns when delivery of m is given up (zero for never) and the
// reason it would then end with.
func (w *Worker) deadline(m *Message) (time.Time, string) {
	var d time.Time
	reason := ""
	if w.cfg.MaxAge > 0 {
		d, reason = m.Arrived.Add(w.cfg.MaxAge), reasonMaxAge
	}
	if !m.Deadline.IsZero() && (d.IsZero() || m.Deadline.Before(d)) {
		d, reason = m.Deadline, reasonDeadline
	}
	return d, reason
}

// begin claims the next attempt of m in its record: it counts the attempt
// before it is made, so a crash during it still counts. It writes the
// record from m when there is none yet (Put crashed before writing it).
func (w *Worker) begin(ctx context.Context, msg jetstream.Msg, m *Message, deadline time.Time, wait *time.Duration) (*Record, error) {
	var seq uint64
	if md, err := msg.Metadata(); err == nil {
		seq = md.Sequence.Stream
	}
	claim := func(r *Record) error {
		now := w.q.opts.Now()
		switch {
		case m.Generation < r.Generation:
			return errStale
		case m.Generation > r.Generation:
			// A replay that crashed before it updated the record.
			r.Generation, r.State, r.Attempts, r.Reason = m.Generation, Pending, 0, ""
			r.NextAttempt = time.Time{}
		case r.State != Pending:
			return errStale
		}
		if now.Before(r.NextAttempt) {
			*wait = r.NextAttempt.Sub(now)
			return errNotYet
		}
		if !deadline.IsZero() && !now.Before(deadline) {
			return errExpired
		}
		r.Attempts++
		r.NextAttempt, r.Seq = time.Time{}, seq
		return nil
	}
	r, err := w.q.update(ctx, m.ID, claim)
	if errors.Is(err, ErrNotFound) {
		if err := w.q.create(ctx, newRecord(m, w.q.opts.Now())); err != nil {
			return nil, err
		}
		r, err = w.q.update(ctx, m.ID, claim)
	}
	return r, err
}

// attempt calls Deliver, telling JetStream the message is in progress
// every third of AckWait so no other worker takes it meanwhile.
func (w *Worker) attempt(ctx context.Context, msg jetstream.Msg, m Message, deadline time.Time) (Outcome, AttemptOutcome) {
	dctx, cancel := context.WithCancel(ctx)
	if !deadline.IsZero() {
		dctx, cancel = context.WithDeadline(ctx, deadline)
	}
	defer cancel()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { keepInProgress(msg, w.cfg.AckWait/3, done) })
	start := w.q.opts.Now()
	out := w.cfg.Deliver(dctx, m)
	close(done)
	wg.Wait()
	o := AttemptOutcome{Start: start, Duration: w.q.opts.Now().Sub(start), Status: out.Status}
	if out.Status == 0 && out.Failure == nil {
		out.Failure = &attempt.Failure{Side: hangup.Proxy, Err: errors.New("deliver reported no outcome")}
	}
	if out.Failure != nil && out.Failure.Err != nil {
		o.Error = out.Failure.Err.Error()
	}
	return out, o
}

// keepInProgress resets msg's AckWait every interval until done closes.
func keepInProgress(msg jetstream.Msg, interval time.Duration, done <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			_ = msg.InProgress()
		}
	}
}

// finish records the attempt's outcome and acts on the attempt loop's
// verdict: back off and retry, or end as delivered or dead. The record is
// written before the message is acked (see the package doc).
func (w *Worker) finish(ctx context.Context, msg jetstream.Msg, m *Message, attempts int, deadline time.Time, out Outcome, o AttemptOutcome) {
	res := attempt.Result{
		Failure: out.Failure,
		Status:  out.Status,
		Request: hangup.Attempt{Method: m.Method, HasIdempotencyKey: true, BodyReplayable: true},
	}
	if out.Header != nil {
		res.RetryAfter = out.Header.Get("Retry-After")
	}
	loop := w.policy(m.Route).Resume(attempts, deadline)
	v := loop.After(res)
	o.Verdict = v.Reason
	switch {
	case v.Retry:
		next := w.q.opts.Now().Add(v.Delay)
		rec, err := w.record(ctx, m, func(r *Record) {
			r.Outcomes = append(r.Outcomes, o)
			r.NextAttempt = next
		})
		w.settle(msg, m, err, func() error { return msg.NakWithDelay(v.Delay) })
		w.report(rec, err, Event{State: Pending, Reason: v.Reason, Status: out.Status})
	case out.Failure == nil && v.Reason == "":
		resp := w.response(out)
		rec, err := w.record(ctx, m, func(r *Record) {
			r.Outcomes = append(r.Outcomes, o)
			r.State, r.Response = Delivered, resp
		})
		w.settle(msg, m, err, msg.Ack)
		w.report(rec, err, Event{State: Delivered, Status: out.Status})
	default:
		w.deadLetter(ctx, msg, m, cmp.Or(v.Reason, reasonNotRetryable), &o)
	}
}

// policy returns the retry policy for a delivery of route.
func (w *Worker) policy(route string) *attempt.Policy {
	if w.cfg.RoutePolicy != nil {
		if p := w.cfg.RoutePolicy(route); p != nil {
			return p
		}
	}
	return w.cfg.Policy
}

func (w *Worker) response(out Outcome) *Response {
	resp := &Response{Status: out.Status, Header: out.Header, Body: out.Body}
	if len(resp.Body) > w.cfg.MaxResponseBody {
		resp.Body, resp.Truncated = resp.Body[:w.cfg.MaxResponseBody], true
	}
	return resp
}

// deadLetter keeps m's stored request in the dead-letter stream, marks its
// record dead with reason, and acks the message.
func (w *Worker) deadLetter(ctx context.Context, msg jetstream.Msg, m *Message, reason string, o *AttemptOutcome) {
	sctx, cancel := storeContext(ctx)
	defer cancel()
	_, err := w.q.js.Publish(sctx, w.q.deadSubject(m.ID), msg.Data(),
		jetstream.WithMsgID(msgID(m.ID, m.Generation)), jetstream.WithExpectStream(w.q.opts.Stream+"_DEAD"))
	if err != nil {
		w.cfg.Logger.Warn("queue: store dead letter", logKeyID, m.ID, logKeyErr, err)
		_ = msg.Nak()
		return
	}
	rec, err := w.record(ctx, m, func(r *Record) {
		if o != nil {
			r.Outcomes = append(r.Outcomes, *o)
		}
		r.State, r.Reason, r.NextAttempt = Dead, reason, time.Time{}
	})
	w.settle(msg, m, err, msg.Ack)
	ev := Event{State: Dead, Reason: reason}
	if o != nil {
		ev.Status = o.Status
	}
	w.report(rec, err, ev)
}

// report completes ev from rec, the record as written, and hands it to
// OnOutcome if the write succeeded (err is nil).
func (w *Worker) report(rec *Record, err error, ev Event) {
	if err == nil && w.cfg.OnOutcome != nil {
		ev.ID, ev.Route, ev.Attempts = rec.ID, rec.Route, rec.Attempts
		w.cfg.OnOutcome(ev)
	}
}

// record applies fn to m's record if the record still belongs to m's
// generation and is pending, and returns the record written; otherwise it
// returns errStale.
func (w *Worker) record(ctx context.Context, m *Message, fn func(*Record)) (*Record, error) {
	sctx, cancel := storeContext(ctx)
	defer cancel()
	return w.q.update(sctx, m.ID, func(r *Record) error {
		if r.Generation != m.Generation || r.State != Pending {
			return errStale
		}
		fn(r)
		return nil
	})
}

// settle acts on the message once its record is written: with then when
// the write succeeded, with an ack when the record had moved on (cancelled
// meanwhile), and by handing the message back when the write failed.
func (w *Worker) settle(msg jetstream.Msg, m *Message, err error, then func() error) {
	switch {
	case err == nil:
		_ = then()
	case errors.Is(err, errStale):
		_ = msg.Ack()
	default:
		w.cfg.Logger.Warn("queue: record outcome", logKeyID, m.ID, logKeyErr, err)
		_ = msg.Nak()
	}
}

// storeContext is the context for writing an outcome. It outlives ctx on
// purpose: an attempt that ended just as the worker stops is still
// recorded, instead of being made again after a redelivery.
func storeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}
