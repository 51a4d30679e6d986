package client

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-proxy/switchboard/hangup"
	"github.com/switchboard-proxy/switchboard/internal/attempt"
)

// AttemptInfo describes one attempt of a request, for Options.OnAttempt.
type AttemptInfo struct {
	Attempt int    // 1 for the first attempt
	Method  string // the request's method
	Host    string // the request URL's host[:port]
	// Status is the response status; 0 when the attempt failed.
	Status int
	// Side, Phase and Kind classify a failed attempt (hangup.SideNone for
	// a response): who ended it, where, and how.
	Side  hangup.Side
	Phase hangup.Phase
	Kind  hangup.Kind
	Err   error // the failed attempt's error; nil for a response
	// NothingWritten is true when the failed attempt provably sent no
	// byte of the request (see the package documentation).
	NothingWritten bool
	// ConnReplays counts the times the base transport itself sent the
	// request again on another connection within this attempt (net/http
	// does so when a reused keep-alive connection turns out closed).
	ConnReplays int
	// Duration runs from the attempt's start to its response headers or
	// its failure.
	Duration time.Duration
	// Retry is true when another attempt follows, after Delay.
	Retry bool
	Delay time.Duration
	// Reason says why the request is retried ("connect_failure",
	// "reset_before_response", "timeout", "status_503", …) or why it is
	// not although another attempt might have helped ("not_idempotent",
	// "body_not_replayable", "attempts_exhausted", "budget_exhausted",
	// "deadline", "retry_after_too_long"). It is "" when there was nothing
	// to retry: a good response, a failure another attempt would not mend,
	// or a caller who gave up.
	Reason string
}

// Stats is a snapshot of a Transport's counters since it was made, for a
// caller to export as metrics. The maps are the caller's to keep.
type Stats struct {
	Requests int64 // calls of RoundTrip
	Attempts int64 // attempts sent, first attempts included
	// Retries counts the retries made, by reason (AttemptInfo.Reason).
	Retries map[string]int64
	// Refusals counts the retries that another attempt might have
	// mended but that were not made, by reason (AttemptInfo.Reason).
	Refusals map[string]int64
	// BudgetExhausted counts the retries refused by the retry budget; it
	// equals Refusals["budget_exhausted"].
	BudgetExhausted int64
	// Errors counts requests that ended with an error rather than a
	// response; CallerAborts counts those ended by the caller's context.
	Errors       int64
	CallerAborts int64
	// Unbuffered counts request bodies too long to keep for a replay:
	// each went out once, and its request could not be retried.
	Unbuffered int64
}

// counters are a Transport's statistics; all fields are updated atomically.
type counters struct {
	requests, attempts, budget, errors, aborts, unbuffered atomic.Int64

	retries, refusals reasonCounts
}

func (c *counters) snapshot() Stats {
	return Stats{
		Requests:        c.requests.Load(),
		Attempts:        c.attempts.Load(),
		Retries:         c.retries.snapshot(),
		Refusals:        c.refusals.snapshot(),
		BudgetExhausted: c.budget.Load(),
		Errors:          c.errors.Load(),
		CallerAborts:    c.aborts.Load(),
		Unbuffered:      c.unbuffered.Load(),
	}
}

// verdict counts an attempt's verdict.
func (c *counters) verdict(v attempt.Verdict) {
	switch {
	case v.Retry:
		c.retries.add(v.Reason)
	case v.Reason != "":
		c.refusals.add(v.Reason)
		if v.Reason == attempt.ReasonBudget {
			c.budget.Add(1)
		}
	}
}

// reasonCounts counts by reason. The reasons are few (the attempt
// package's, plus "status_N" for the statuses of RetryOnStatus), so the
// map stays small.
type reasonCounts struct {
	m sync.Map // string → *atomic.Int64
}

func (r *reasonCounts) add(reason string) {
	v, ok := r.m.Load(reason)
	if !ok {
		v, _ = r.m.LoadOrStore(reason, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
}

func (r *reasonCounts) snapshot() map[string]int64 {
	out := map[string]int64{}
	r.m.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}
