package attempt

import (
	"errors"
	"net/http"

	"github.com/switchboard-proxy/switchboard/hangup"
)

// Failure describes a failed attempt: who ended it, where and how.
type Failure struct {
	Side  hangup.Side
	Phase hangup.Phase
	Kind  hangup.Kind
	Err   error
	// HeadersSent is true when response headers already went to the
	// caller, so no error answer can be sent any more.
	HeadersSent bool
}

// Decision is what to do about a failed attempt.
type Decision struct {
	Action hangup.Action
	// Status is the HTTP status to answer with, or to log when nothing
	// can be answered (499 for a caller who hung up).
	Status int
	// ProxyError is the RFC 9209 Proxy-Status error type; "" when no
	// error answer is sent.
	ProxyError string
}

// Decide says what to do about f.
//
// A caller who hung up gets nothing (there is nobody to write to) and the
// upstream request is aborted: 499, aborted_upstream. An upstream failure
// before any response header is answered with 502 or, for timeouts, 504,
// carrying a Proxy-Status error type. Once headers went out, a failure can
// only be signalled by resetting the caller's stream or connection, so the
// caller never mistakes a truncated response for a complete one (rule R4).
func Decide(f Failure) Decision {
	if f.Side == hangup.Caller {
		return Decision{Action: hangup.AbortedUpstream, Status: hangup.StatusCallerGone}
	}
	status, perr := answer(f)
	if f.HeadersSent {
		return Decision{Action: hangup.ResetCaller, Status: status, ProxyError: perr}
	}
	return Decision{Action: hangup.Answered5xx, Status: status, ProxyError: perr}
}

// answer maps a failure to an HTTP status and an RFC 9209 error type.
func answer(f Failure) (int, string) {
	var te *hangup.TimeoutError
	var de *hangup.DialError
	isDial := errors.As(f.Err, &de)
	switch {
	case f.Kind == hangup.Timeout && (f.Phase == hangup.Connect || isDial):
		return http.StatusGatewayTimeout, "connection_timeout"
	case f.Kind == hangup.Timeout && errors.As(f.Err, &te) && te.Phase == hangup.StreamResponse:
		return http.StatusGatewayTimeout, "connection_read_timeout"
	case f.Kind == hangup.Timeout:
		return http.StatusGatewayTimeout, "http_response_timeout"
	case hangup.IsDNSError(f.Err):
		return http.StatusBadGateway, "dns_error"
	case isDial && hangup.IsCertificateError(f.Err):
		return http.StatusBadGateway, "tls_certificate_error"
	case isDial && hangup.IsTLSError(f.Err):
		return http.StatusBadGateway, "tls_protocol_error"
	case f.Kind == hangup.Refused:
		return http.StatusBadGateway, "connection_refused"
	case f.Phase == hangup.StreamResponse:
		return http.StatusBadGateway, "http_response_incomplete"
	case f.Kind == hangup.FIN || f.Kind == hangup.Reset:
		return http.StatusBadGateway, "connection_terminated"
	case isDial:
		return http.StatusBadGateway, "destination_unavailable"
	case f.Phase == hangup.AwaitHeaders:
		// Not a hang-up but an answer we could not parse.
		return http.StatusBadGateway, "http_protocol_error"
	}
	return http.StatusBadGateway, "proxy_internal_error"
}

// Queueable reports whether f leaves a request worth storing for later
// delivery on a fallback route: the upstream could not be reached, hung up
// or timed out before any response header reached the caller (the
// exchange's total timeout included: the caller is out of time, not the
// request). A failure mid-response, of the caller, or of TLS verification
// or handshake (a configuration fault another attempt would meet again) is
// not; nor is a response that does not parse, since the upstream did
// answer.
func Queueable(f Failure) bool {
	if f.Side != hangup.Upstream || f.HeadersSent || f.Phase == hangup.StreamResponse || f.Phase == hangup.Tunnel {
		return false
	}
	var de *hangup.DialError
	switch {
	case hangup.IsCertificateError(f.Err) || hangup.IsTLSError(f.Err):
		return false
	case f.Kind == hangup.Timeout, f.Kind == hangup.Refused, f.Kind == hangup.FIN, f.Kind == hangup.Reset:
		return true
	}
	return f.Phase == hangup.Connect || errors.As(f.Err, &de)
}
