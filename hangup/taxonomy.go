package hangup

import (
	"fmt"
	"time"
)

// Side says who ended an exchange.
type Side uint8

// The sides of an exchange. SideNone means nobody hung up: the exchange
// completed normally.
const (
	SideNone Side = iota
	Caller
	Upstream
	Proxy
)

var sideNames = [...]string{"none", "caller", "upstream", "proxy"}

func (s Side) String() string { return enumName(sideNames[:], int(s)) }

// MarshalText implements encoding.TextMarshaler for log and JSON output.
func (s Side) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Phase says where in the exchange something happened.
type Phase uint8

// The phases of an exchange, in the order a request passes through them.
// Backoff is a wait between attempts; Tunnel is the bidirectional copy of an
// upgraded connection (WebSocket and other protocols).
const (
	PhaseNone Phase = iota
	Queued
	Connect
	SendRequest
	AwaitHeaders
	StreamResponse
	Backoff
	Tunnel
)

var phaseNames = [...]string{"none", "queued", "connect", "send_request", "await_headers", "stream_response", "backoff", "tunnel"}

func (p Phase) String() string { return enumName(phaseNames[:], int(p)) }

// MarshalText implements encoding.TextMarshaler.
func (p Phase) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// Kind says how a socket or an exchange ended.
type Kind uint8

// The kinds of hang-up. KindNone is a normal end; KindUnknown is an error that
// [Classify] could not place (it is still an error, never silently success).
const (
	KindNone Kind = iota
	FIN
	Reset
	Timeout
	Refused
	KindUnknown
)

var kindNames = [...]string{"none", "fin", "reset", "timeout", "refused", "unknown"}

func (k Kind) String() string { return enumName(kindNames[:], int(k)) }

// MarshalText implements encoding.TextMarshaler.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Action says what switchboard did about an exchange's ending.
type Action uint8

// The actions. OK means the response was relayed whole.
const (
	OK Action = iota
	Retried
	AbortedUpstream
	Answered5xx
	ResetCaller
	QueuedForLater
	DeadLettered
)

var actionNames = [...]string{"ok", "retried", "aborted_upstream", "answered_5xx", "reset_caller", "queued", "dead_lettered"}

func (a Action) String() string { return enumName(actionNames[:], int(a)) }

// MarshalText implements encoding.TextMarshaler.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

func enumName(names []string, i int) string {
	if i < 0 || i >= len(names) {
		return fmt.Sprintf("invalid(%d)", i)
	}
	return names[i]
}

// StatusCallerGone is the status logged for a request whose caller hung up
// before the response was complete (nginx's 499). It is never sent: there is
// nobody left to send it to.
const StatusCallerGone = 499

// Outcome is the one record of how an exchange ended (rule R8). The zero
// value is a normal, complete exchange.
type Outcome struct {
	Side   Side
	Phase  Phase
	Kind   Kind
	Action Action
	// Err is the error that ended the exchange, nil for a normal end.
	Err error
}

// IsCallerAbort reports whether the caller hung up before the exchange was
// complete. Such outcomes are not errors of switchboard or the upstream.
func (o Outcome) IsCallerAbort() bool { return o.Side == Caller }

// TimeoutError is the cause switchboard gives a context it cancels because a
// time limit ran out. Phase says which limit: Connect (connect timeout),
// AwaitHeaders (response-header timeout), StreamResponse (idle body timeout)
// or PhaseNone (total timeout).
type TimeoutError struct {
	Phase Phase
	After time.Duration
}

func (e *TimeoutError) Error() string {
	switch e.Phase {
	case Connect:
		return fmt.Sprintf("connect timeout after %v", e.After)
	case AwaitHeaders:
		return fmt.Sprintf("no response headers after %v", e.After)
	case SendRequest:
		return fmt.Sprintf("request still being sent after %v", e.After)
	case StreamResponse:
		return fmt.Sprintf("response body idle for %v", e.After)
	case Tunnel:
		return fmt.Sprintf("tunnel idle for %v", e.After)
	}
	return fmt.Sprintf("total timeout after %v", e.After)
}

// Timeout reports true, so TimeoutError satisfies net.Error's contract.
func (e *TimeoutError) Timeout() bool { return true }

// DialError reports that a connection to an upstream could not be made. A
// request that failed with a DialError provably never reached the upstream.
type DialError struct {
	Addr string
	Err  error
}

func (e *DialError) Error() string { return "dial " + e.Addr + ": " + e.Err.Error() }
func (e *DialError) Unwrap() error { return e.Err }

// Error is a classified hang-up: the error the client library returns and the
// proxy logs. It wraps the underlying cause.
type Error struct {
	Side     Side
	Phase    Phase
	Kind     Kind
	Attempts int           // attempts made, 0 if unknown
	Elapsed  time.Duration // time from the first attempt to giving up, 0 if unknown
	// NoRetry says why no further attempt was made when one would have
	// been wanted ("not_idempotent", "attempts_exhausted", …; the reasons
	// of the proxy's no_retry log key); "" when another attempt could not
	// have mended the failure, or the caller gave up.
	NoRetry string
	Err     error
}

func (e *Error) Error() string {
	s := describe(e.Side, e.Phase, e.Kind)
	switch {
	case e.Attempts > 1 && e.NoRetry != "":
		s += fmt.Sprintf(" (after %d attempts over %v; %s)", e.Attempts, e.Elapsed.Round(time.Millisecond), e.NoRetry)
	case e.Attempts > 1:
		s += fmt.Sprintf(" (after %d attempts over %v)", e.Attempts, e.Elapsed.Round(time.Millisecond))
	case e.NoRetry != "":
		s += " (not retried: " + e.NoRetry + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// describe says in words a person can act on what happened.
func describe(side Side, phase Phase, kind Kind) string {
	who := side.String()
	var what string
	switch kind {
	case FIN:
		what = "closed the connection"
	case Reset:
		what = "reset the connection"
	case Timeout:
		what = "timed out"
		if side == Upstream {
			what = "did not answer in time"
		}
	case Refused:
		what = "refused the connection"
	default:
		what = "failed"
		if side == Caller {
			// A Go caller ends an exchange by cancelling its context.
			what = "cancelled the request"
		}
	}
	var when string
	switch phase {
	case Queued:
		when = " while waiting for a connection"
	case Connect:
		when = " while connecting"
	case SendRequest:
		when = " while the request was being sent"
	case AwaitHeaders:
		when = " before responding"
		if side == Caller {
			when = " while waiting for the response"
		}
	case StreamResponse:
		when = " in the middle of the response"
	case Backoff:
		when = " while waiting to retry"
	case Tunnel:
		when = " inside the tunnel"
	}
	return who + " " + what + when
}

// Describe says in a few words what happened, e.g. "upstream reset the
// connection before responding".
func (o Outcome) Describe() string { return describe(o.Side, o.Phase, o.Kind) }
