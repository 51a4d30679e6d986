package attempt

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-proxy/switchboard/hangup"
	"github.com/switchboard-proxy/switchboard/internal/cancelctx"
)

// Policy says when a failed attempt is tried again and after how long. It is
// immutable once built and shared by every request of a route (or a client).
type Policy struct {
	// MaxAttempts counts the first attempt; 1 or less never retries.
	MaxAttempts int
	// RetryOnStatus lists response statuses worth another attempt for a
	// safe request.
	RetryOnStatus []int
	// BackoffBase is the ceiling of the first backoff; each retry doubles
	// it, up to BackoffMax. The wait is drawn uniformly below the ceiling
	// ("full jitter").
	BackoffBase, BackoffMax time.Duration
	// RetryAfterMax is the longest Retry-After (on 503 and 429) that is
	// honoured; a longer one ends the attempts and the response is relayed.
	RetryAfterMax time.Duration
	// Budget bounds retries across requests; nil means no bound.
	Budget *Budget

	// Now and Rand may be replaced in tests; nil means the real clock and
	// math/rand/v2.
	Now  func() time.Time
	Rand func() float64
}

func (p *Policy) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *Policy) rand() float64 {
	if p.Rand != nil {
		return p.Rand()
	}
	return rand.Float64()
}

// Loop is the retry state of one request. It is not safe for concurrent use.
type Loop struct {
	p        *Policy
	attempts int
	deadline time.Time // zero: none
}

// Start begins the attempts of one request that must end by deadline (zero
// for none). It counts the request in the policy's budget.
func (p *Policy) Start(deadline time.Time) Loop {
	if p.Budget != nil {
		p.Budget.Request()
	}
	return Loop{p: p, attempts: 1, deadline: deadline}
}

// Resume continues the attempts of a request that has already made
// attempts of them (at least 1), for one whose retry state outlived the
// process, such as a delivery in the queue. Unlike Start it does not count
// the request in the budget again.
func (p *Policy) Resume(attempts int, deadline time.Time) Loop {
	return Loop{p: p, attempts: max(attempts, 1), deadline: deadline}
}

// Attempts returns how many attempts have started, counting the first.
func (l *Loop) Attempts() int { return l.attempts }

// Result is what one attempt came to, as the loop needs to know it.
type Result struct {
	// Failure is set when the attempt failed without a response.
	Failure *Failure
	// Status and RetryAfter describe the response, when there is one.
	Status     int
	RetryAfter string
	// Request tells whether the request may be sent again.
	Request hangup.Attempt
}

// Verdict is the loop's answer after an attempt.
type Verdict struct {
	Retry bool
	// Delay is how long to wait before the next attempt.
	Delay time.Duration
	// Reason says why the request is retried ("connect_failure",
	// "reset_before_response", "timeout", "status_503") or why not
	// ("not_idempotent", "body_not_replayable", "attempts_exhausted",
	// "budget_exhausted", "deadline", "retry_after_too_long"). It is empty
	// when there was nothing to retry: a good response, or a failure that
	// another attempt would not mend.
	Reason string
}

// Retry reasons that are not also refusals.
const (
	ReasonConnect  = "connect_failure"
	ReasonReset    = "reset_before_response"
	ReasonTimeout  = "timeout"
	ReasonNotIdem  = "not_idempotent"
	ReasonBody     = "body_not_replayable"
	ReasonAttempts = "attempts_exhausted"
	ReasonBudget   = "budget_exhausted"
	ReasonDeadline = "deadline"
	ReasonTooLong  = "retry_after_too_long"
)

// After decides, once an attempt is over, whether to make another. A retry
// counts against the budget, so call After once per attempt and act on a
// Retry verdict.
func (l *Loop) After(r Result) Verdict {
	reason, retryAfter, ok := l.retryable(r)
	if !ok {
		return Verdict{Reason: reason}
	}
	if safe, why := hangup.RetrySafe(r.Request); !safe {
		return Verdict{Reason: why}
	}
	if l.attempts >= l.p.MaxAttempts {
		return Verdict{Reason: ReasonAttempts}
	}
	delay := l.backoff()
	if retryAfter > 0 {
		delay = retryAfter
	}
	if !l.deadline.IsZero() && !l.p.now().Add(delay).Before(l.deadline) {
		return Verdict{Reason: ReasonDeadline}
	}
	if l.p.Budget != nil && !l.p.Budget.Withdraw() {
		return Verdict{Reason: ReasonBudget}
	}
	l.attempts++
	return Verdict{Retry: true, Delay: delay, Reason: reason}
}

// Hedge says whether a hedged attempt, sent while the current one is still
// waiting for its response, may start now. It counts as an attempt and as a
// retry against the budget.
func (l *Loop) Hedge() bool {
	if l.attempts >= l.p.MaxAttempts {
		return false
	}
	if l.p.Budget != nil && !l.p.Budget.Withdraw() {
		return false
	}
	l.attempts++
	return true
}

// retryable says whether the attempt's outcome is one another attempt could
// mend, and why; with a Retry-After to honour, it returns that delay.
func (l *Loop) retryable(r Result) (reason string, retryAfter time.Duration, ok bool) {
	if f := r.Failure; f != nil {
		reason, ok = retryableFailure(f)
		return reason, 0, ok
	}
	if !l.retryOn(r.Status) {
		return "", 0, false
	}
	reason = "status_" + strconv.Itoa(r.Status)
	if r.Status == http.StatusServiceUnavailable || r.Status == http.StatusTooManyRequests {
		if d, has := ParseRetryAfter(r.RetryAfter, l.p.now()); has {
			if d > l.p.RetryAfterMax {
				return ReasonTooLong, 0, false
			}
			return reason, max(d, time.Millisecond), true
		}
	}
	return reason, 0, true
}

// retryableFailure says whether another attempt could mend f: the upstream
// could not be reached, or ended the exchange before any response byte.
// Failures of the caller, once headers were relayed, of the whole
// exchange's time limit, or of certificates and protocol are final.
func retryableFailure(f *Failure) (string, bool) {
	if f.Side != hangup.Upstream || f.HeadersSent || f.Phase == hangup.StreamResponse {
		return "", false
	}
	var te *hangup.TimeoutError
	if errors.As(f.Err, &te) && te.Phase == hangup.PhaseNone {
		return "", false // the total timeout: the exchange is out of time
	}
	var de *hangup.DialError
	switch {
	case hangup.IsCertificateError(f.Err) || hangup.IsTLSError(f.Err):
		return "", false
	case f.Kind == hangup.Timeout:
		return ReasonTimeout, true
	case f.Phase == hangup.Connect || f.Kind == hangup.Refused || errors.As(f.Err, &de):
		return ReasonConnect, true
	case f.Kind == hangup.FIN || f.Kind == hangup.Reset:
		return ReasonReset, true
	}
	return "", false
}

func (l *Loop) retryOn(status int) bool {
	for _, s := range l.p.RetryOnStatus {
		if s == status {
			return true
		}
	}
	return false
}

// backoff draws the wait before the next attempt.
func (l *Loop) backoff() time.Duration {
	return Backoff(l.p.BackoffBase, l.p.BackoffMax, l.attempts, l.p.rand())
}

// Backoff is the wait after attempt n (1 for the first) with "full
// jitter": r (uniform in [0, 1)) times a ceiling that starts at base and
// doubles per attempt up to limit. Everything that retries (the proxy, the
// client, its outbox) waits by this one rule.
func Backoff(base, limit time.Duration, n int, r float64) time.Duration {
	ceiling := base
	for i := 1; i < n && ceiling < limit; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, limit)
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(r * float64(ceiling))
}

// ParseRetryAfter reads a Retry-After value (RFC 9110 §10.2.3): a number of
// seconds or an HTTP date. It reports false for an absent or unreadable
// value; a date in the past is a zero delay.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// Wait waits d before the next attempt. It returns early with the cause
// when ctx ends first: a caller who hangs up during a backoff cancels every
// attempt still to come (rule R1).
func Wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return cancelctx.Cause(ctx)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return cancelctx.Cause(ctx)
	}
}
