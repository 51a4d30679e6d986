package client

import (
	"net/http"
	"slices"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/attempt"
)

// Options configures a Transport. The zero value is the default policy, the
// same as a switchboard route's default retries: up to 3 attempts, 502, 503
// and 504 retried, backoff with full jitter from 25ms to 1s, Retry-After
// honoured up to 5s, a budget of 20% of requests plus 10 retries a second,
// and bodies up to 1 MiB kept for replay. Each field says how to turn its
// feature off.
type Options struct {
	// Base sends each attempt. nil means a clone of http.DefaultTransport
	// (HTTP/1.1 and HTTP/2, proxy from the environment) whose dialer types
	// its failures as *hangup.DialError and counts the bytes written to
	// each connection, so that an attempt that wrote nothing can be proved
	// to have written nothing. A Base given here is used as it is; the
	// package documentation says what can then still be proved.
	Base http.RoundTripper

	// MaxAttempts counts the first attempt: 0 means 3; 1 (or less) never
	// retries.
	MaxAttempts int
	// RetryOnStatus lists the response statuses that are retried for a
	// request that is safe to send again. nil means 502, 503 and 504; an
	// empty, non-nil slice retries no status.
	RetryOnStatus []int
	// BackoffBase is the ceiling of the wait before the first retry; it
	// doubles with each retry up to BackoffMax, and the wait is drawn
	// uniformly below it ("full jitter"). 0 means 25ms and 1s; a negative
	// BackoffBase retries at once.
	BackoffBase, BackoffMax time.Duration
	// RetryAfterMax is the longest Retry-After (on 503 and 429) that is
	// waited for; a response asking for a longer wait is returned to the
	// caller as it is. 0 means 5s; negative means a response with a
	// Retry-After is never retried.
	RetryAfterMax time.Duration
	// PerTryTimeout bounds one attempt from its start to its response
	// headers; an attempt that runs out is abandoned and retried like a
	// reset. 0 means no limit beyond the caller's context.
	PerTryTimeout time.Duration
	// BudgetRatio and BudgetMinPerSecond bound retries across all requests
	// of the Transport, so an outage cannot turn into a retry storm: over a
	// sliding 10-second window, retries may add at most BudgetRatio of the
	// requests seen plus BudgetMinPerSecond per second. 0 means 0.2 and
	// 10; a negative BudgetRatio turns the budget off, a negative
	// BudgetMinPerSecond means no floor.
	BudgetRatio        float64
	BudgetMinPerSecond int
	// BufferBody is how many bytes of a request body are kept so that the
	// request can be sent again. A body with GetBody set (as
	// http.NewRequest sets for bytes.Buffer, bytes.Reader and
	// strings.Reader) is replayed through GetBody and not kept. A longer
	// body is sent once and its request is never retried. 0 means 1 MiB;
	// negative keeps nothing.
	BufferBody int64
	// AddIdempotencyKey adds an Idempotency-Key header with a random
	// value to every request whose method is not idempotent and that has
	// no such header, when MaxAttempts allows retries. Every attempt of
	// the request carries the same key, so it may be retried like a GET.
	// Turn it on only for servers that apply a request with a given key
	// at most once (as switchboard's delivery queue and many payment APIs
	// do); a server that ignores the key may apply a retried request twice.
	AddIdempotencyKey bool
	// OnAttempt, if set, is called once after each attempt, on the
	// goroutine of RoundTrip, before any wait for the next attempt. It is
	// called for requests of every goroutine using the Transport, so it
	// must be safe for concurrent use, and it should return quickly.
	OnAttempt func(AttemptInfo)
}

// Defaults of Options.
const (
	defaultMaxAttempts   = 3
	defaultBackoffBase   = 25 * time.Millisecond
	defaultBackoffMax    = time.Second
	defaultRetryAfterMax = 5 * time.Second
	defaultBudgetRatio   = 0.2
	defaultBudgetFloor   = 10
	defaultBufferBody    = 1 << 20
)

var defaultRetryOnStatus = []int{http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}

// policy resolves the retry settings of o into the attempt loop's policy.
func (o *Options) policy() attempt.Policy {
	p := attempt.Policy{
		MaxAttempts:   orDefault(o.MaxAttempts, defaultMaxAttempts),
		RetryOnStatus: slices.Clone(o.RetryOnStatus),
		BackoffBase:   orDefault(o.BackoffBase, defaultBackoffBase),
		BackoffMax:    orDefault(o.BackoffMax, defaultBackoffMax),
		RetryAfterMax: orDefault(o.RetryAfterMax, defaultRetryAfterMax),
	}
	if o.RetryOnStatus == nil {
		p.RetryOnStatus = defaultRetryOnStatus
	}
	if o.BudgetRatio >= 0 {
		p.Budget = attempt.NewBudget(orDefault(o.BudgetRatio, defaultBudgetRatio),
			max(orDefault(o.BudgetMinPerSecond, defaultBudgetFloor), 0), nil)
	}
	return p
}

func orDefault[T int | int64 | float64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}
