package attempt

import (
	"context"
	"errors"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-proxy/switchboard/hangup"
)

// clock is a manual clock for tests.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *clock { return &clock{t: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)} }

func testPolicy(c *clock) *Policy {
	return &Policy{
		MaxAttempts:   3,
		RetryOnStatus: []int{502, 503, 504},
		BackoffBase:   25 * time.Millisecond,
		BackoffMax:    time.Second,
		RetryAfterMax: 5 * time.Second,
		Now:           c.now,
		Rand:          func() float64 { return 0.5 },
	}
}

var (
	get     = hangup.Attempt{Method: "GET", BodyReplayable: true}
	post    = hangup.Attempt{Method: "POST", BodyReplayable: true}
	postKey = hangup.Attempt{Method: "POST", HasIdempotencyKey: true, BodyReplayable: true}
	postNW  = hangup.Attempt{Method: "POST", BodyReplayable: true, NothingWritten: true}
	bigGet  = hangup.Attempt{Method: "PUT", BodyReplayable: false}
)

func failure(phase hangup.Phase, kind hangup.Kind, err error) *Failure {
	return &Failure{Side: hangup.Upstream, Phase: phase, Kind: kind, Err: err}
}

func TestAfter(t *testing.T) {
	dial := &hangup.DialError{Addr: "a:1", Err: syscall.ECONNREFUSED}
	cases := []struct {
		name   string
		r      Result
		retry  bool
		reason string
	}{
		{"ok response", Result{Status: 200, Request: get}, false, ""},
		{"500 not in the list", Result{Status: 500, Request: get}, false, ""},
		{"502 GET", Result{Status: 502, Request: get}, true, "status_502"},
		{"503 POST", Result{Status: 503, Request: post}, false, ReasonNotIdem},
		{"503 POST with key", Result{Status: 503, Request: postKey}, true, "status_503"},
		{"refused POST", Result{Failure: failure(hangup.Connect, hangup.Refused, dial), Request: postNW}, true, ReasonConnect},
		{"reset GET", Result{Failure: failure(hangup.AwaitHeaders, hangup.Reset, syscall.ECONNRESET), Request: get}, true, ReasonReset},
		{"reset POST", Result{Failure: failure(hangup.AwaitHeaders, hangup.Reset, syscall.ECONNRESET), Request: post}, false, ReasonNotIdem},
		{"fin POST nothing written", Result{Failure: failure(hangup.SendRequest, hangup.FIN, errors.New("EOF")), Request: postNW}, true, ReasonReset},
		{"reset big body", Result{Failure: failure(hangup.AwaitHeaders, hangup.Reset, syscall.ECONNRESET), Request: bigGet}, false, ReasonBody},
		{"header timeout", Result{Failure: failure(hangup.AwaitHeaders, hangup.Timeout, &hangup.TimeoutError{Phase: hangup.AwaitHeaders}), Request: get}, true, ReasonTimeout},
		{"total timeout", Result{Failure: failure(hangup.AwaitHeaders, hangup.Timeout, &hangup.TimeoutError{}), Request: get}, false, ""},
		{"mid body", Result{Failure: failure(hangup.StreamResponse, hangup.FIN, errors.New("unexpected EOF")), Request: get}, false, ""},
		{"caller left", Result{Failure: &Failure{Side: hangup.Caller, Phase: hangup.AwaitHeaders, Kind: hangup.FIN}, Request: get}, false, ""},
		{"bad response", Result{Failure: failure(hangup.AwaitHeaders, hangup.KindUnknown, errors.New("malformed HTTP response")), Request: get}, false, ""},
		{"certificate", Result{Failure: failure(hangup.Connect, hangup.KindUnknown, &hangup.DialError{Err: &tlsCertErr{}}), Request: get}, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := testPolicy(newClock()).Start(time.Time{})
			v := l.After(tc.r)
			if v.Retry != tc.retry || v.Reason != tc.reason {
				t.Fatalf("After = %+v, want retry=%v reason=%q", v, tc.retry, tc.reason)
			}
		})
	}
}

// tlsCertErr stands for a certificate verification failure.
type tlsCertErr struct{}

func (*tlsCertErr) Error() string { return "x509: certificate signed by unknown authority" }

func TestAttemptsExhausted(t *testing.T) {
	l := testPolicy(newClock()).Start(time.Time{})
	r := Result{Status: 503, Request: get}
	for i := 1; i < 3; i++ {
		if v := l.After(r); !v.Retry {
			t.Fatalf("attempt %d: %+v, want a retry", i, v)
		}
	}
	if v := l.After(r); v.Retry || v.Reason != ReasonAttempts {
		t.Fatalf("third attempt: %+v, want %s", v, ReasonAttempts)
	}
	if l.Attempts() != 3 {
		t.Fatalf("Attempts = %d", l.Attempts())
	}
}

func TestBackoffFullJitter(t *testing.T) {
	c := newClock()
	p := testPolicy(c)
	p.MaxAttempts = 10
	draws := []float64{0.999, 0.999, 0.999, 0.999, 0.999, 0.999, 0.999, 0, 0.5}
	p.Rand = func() float64 { d := draws[0]; draws = draws[1:]; return d }
	l := p.Start(time.Time{})
	// Ceilings 25, 50, 100, 200, 400, 800, 1000 (capped) ms; then the
	// lowest and the middle draw of the capped ceiling.
	want := []time.Duration{25, 50, 100, 200, 400, 800, 1000, 0, 500}
	for i, w := range want {
		v := l.After(Result{Status: 502, Request: get})
		w *= time.Millisecond
		// A draw of 0.999 lands just below the ceiling.
		if v.Delay > w || v.Delay < w*99/100 {
			t.Fatalf("retry %d: delay %v, want about %v", i+1, v.Delay, w)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	c := newClock()
	cases := []struct {
		name   string
		status int
		header string
		retry  bool
		delay  time.Duration
		reason string
	}{
		{"seconds", 503, "2", true, 2 * time.Second, "status_503"},
		{"date", 503, c.t.Add(3 * time.Second).Format(http.TimeFormat), true, 3 * time.Second, "status_503"},
		{"date in the past", 503, c.t.Add(-time.Hour).Format(http.TimeFormat), true, time.Millisecond, "status_503"},
		{"too long", 503, "60", false, 0, ReasonTooLong},
		{"garbage falls back to backoff", 503, "soon", true, 12500 * time.Microsecond, "status_503"},
		{"ignored on 502", 502, "3", true, 12500 * time.Microsecond, "status_502"},
		{"429 when listed", 429, "1", true, time.Second, "status_429"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := testPolicy(c)
			p.RetryOnStatus = append(p.RetryOnStatus, 429)
			l := p.Start(time.Time{})
			v := l.After(Result{Status: tc.status, RetryAfter: tc.header, Request: get})
			if v.Retry != tc.retry || v.Delay != tc.delay || v.Reason != tc.reason {
				t.Fatalf("After = %+v, want retry=%v delay=%v reason=%q", v, tc.retry, tc.delay, tc.reason)
			}
		})
	}
}

func TestDeadline(t *testing.T) {
	c := newClock()
	p := testPolicy(c)
	l := p.Start(c.t.Add(time.Second))
	if v := l.After(Result{Status: 503, RetryAfter: "2", Request: get}); v.Retry || v.Reason != ReasonDeadline {
		t.Fatalf("Retry-After past the deadline: %+v", v)
	}
	if v := l.After(Result{Status: 503, Request: get}); !v.Retry {
		t.Fatalf("backoff within the deadline: %+v", v)
	}
	c.advance(time.Second)
	if v := l.After(Result{Status: 503, Request: get}); v.Retry || v.Reason != ReasonDeadline {
		t.Fatalf("at the deadline: %+v", v)
	}
}

func TestBudget(t *testing.T) {
	c := newClock()
	b := NewBudget(0.2, 1, c.now)
	// The floor: 1 per second over a 10-second window.
	for i := range 10 {
		if !b.Withdraw() {
			t.Fatalf("floor retry %d refused", i)
		}
	}
	if b.Withdraw() {
		t.Fatal("retry beyond the floor allowed with no requests")
	}
	// 100 requests allow 20 more.
	for range 100 {
		b.Request()
	}
	for i := range 20 {
		if !b.Withdraw() {
			t.Fatalf("ratio retry %d refused", i)
		}
	}
	if b.Withdraw() {
		t.Fatal("retry beyond 20% allowed")
	}
	// Ten seconds later the window has forgotten everything: the floor again.
	c.advance(10 * time.Second)
	for i := range 10 {
		if !b.Withdraw() {
			t.Fatalf("after the window: retry %d refused", i)
		}
	}
	if b.Withdraw() {
		t.Fatal("after the window: retry beyond the floor allowed")
	}
}

func TestBudgetSlides(t *testing.T) {
	c := newClock()
	b := NewBudget(0.5, 0, c.now)
	for range 10 {
		b.Request()
	}
	for range 5 {
		b.Withdraw()
	}
	if b.Withdraw() {
		t.Fatal("budget of 5 exceeded")
	}
	// Five seconds on, the first second is still in the window.
	c.advance(5 * time.Second)
	if b.Withdraw() {
		t.Fatal("window forgot too early")
	}
	// Ten seconds after the first second, it is gone, and with it the
	// requests and the retries.
	c.advance(5 * time.Second)
	b.Request()
	b.Request()
	if !b.Withdraw() || b.Withdraw() {
		t.Fatal("want exactly one retry for two new requests at 50%")
	}
}

func TestBudgetInLoop(t *testing.T) {
	c := newClock()
	p := testPolicy(c)
	p.Budget = NewBudget(0.2, 0, c.now)
	refused := 0
	for range 100 {
		l := p.Start(time.Time{})
		if v := l.After(Result{Status: 503, Request: get}); !v.Retry {
			if v.Reason != ReasonBudget {
				t.Fatalf("refused for %q", v.Reason)
			}
			refused++
		}
	}
	if refused != 80 {
		t.Fatalf("refused %d of 100 retries, want 80 (20%% budget)", refused)
	}
}

func TestWaitCancelled(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	gone := errors.New("caller hung up")
	time.AfterFunc(10*time.Millisecond, func() { cancel(gone) })
	if err := Wait(ctx, time.Hour); !errors.Is(err, gone) {
		t.Fatalf("Wait = %v, want the cancel cause", err)
	}
	if err := Wait(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("Wait = %v", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := newClock().t
	for _, tc := range []struct {
		in string
		d  time.Duration
		ok bool
	}{
		{"", 0, false}, {" 5 ", 5 * time.Second, true}, {"-1", 0, false}, {"1.5", 0, false},
		{"99999999999", 0, false}, {now.Add(time.Minute).Format(http.TimeFormat), time.Minute, true},
		{"Sun, 06 Nov 1994 08:49:37 GMT", 0, true},
	} {
		d, ok := ParseRetryAfter(tc.in, now)
		if d != tc.d || ok != tc.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, d, ok, tc.d, tc.ok)
		}
	}
}

// TestResume checks that a resumed loop backs off and counts as the loop it
// continues would.
func TestResume(t *testing.T) {
	p := testPolicy(newClock())
	p.MaxAttempts = 4
	l := p.Resume(2, time.Time{})
	// After the second attempt the ceiling is 50ms; the draw is 0.5.
	if v := l.After(Result{Status: 502, Request: get}); !v.Retry || v.Delay != 25*time.Millisecond {
		t.Fatalf("after attempt 2: %+v, want a retry in 25ms", v)
	}
	if l.Attempts() != 3 {
		t.Fatalf("Attempts = %d, want 3", l.Attempts())
	}
	l = p.Resume(4, time.Time{})
	if v := l.After(Result{Status: 502, Request: get}); v.Retry || v.Reason != ReasonAttempts {
		t.Fatalf("after attempt 4: %+v, want %s", v, ReasonAttempts)
	}
}
