package attempt

import (
	"errors"
	"syscall"
	"testing"

	"github.com/switchboard-proxy/switchboard/hangup"
)

func TestDecide(t *testing.T) {
	dial := func(err error) error { return &hangup.DialError{Addr: "a:1", Err: err} }
	cases := []struct {
		name   string
		f      Failure
		action hangup.Action
		status int
		perr   string
	}{
		{"caller gone", Failure{Side: hangup.Caller, Phase: hangup.AwaitHeaders, Kind: hangup.FIN}, hangup.AbortedUpstream, 499, ""},
		{"refused", Failure{Side: hangup.Upstream, Phase: hangup.Connect, Kind: hangup.Refused, Err: dial(syscall.ECONNREFUSED)}, hangup.Answered5xx, 502, "connection_refused"},
		{"connect timeout", Failure{Side: hangup.Upstream, Phase: hangup.Connect, Kind: hangup.Timeout, Err: dial(&hangup.TimeoutError{Phase: hangup.Connect})}, hangup.Answered5xx, 504, "connection_timeout"},
		{"header timeout", Failure{Side: hangup.Upstream, Phase: hangup.AwaitHeaders, Kind: hangup.Timeout, Err: &hangup.TimeoutError{Phase: hangup.AwaitHeaders}}, hangup.Answered5xx, 504, "http_response_timeout"},
		{"idle body timeout", Failure{Side: hangup.Upstream, Phase: hangup.StreamResponse, Kind: hangup.Timeout, HeadersSent: true, Err: &hangup.TimeoutError{Phase: hangup.StreamResponse}}, hangup.ResetCaller, 504, "connection_read_timeout"},
		{"reset before headers", Failure{Side: hangup.Upstream, Phase: hangup.AwaitHeaders, Kind: hangup.Reset, Err: syscall.ECONNRESET}, hangup.Answered5xx, 502, "connection_terminated"},
		{"fin mid body", Failure{Side: hangup.Upstream, Phase: hangup.StreamResponse, Kind: hangup.FIN, HeadersSent: true}, hangup.ResetCaller, 502, "http_response_incomplete"},
		{"bad response", Failure{Side: hangup.Upstream, Phase: hangup.AwaitHeaders, Kind: hangup.KindUnknown, Err: errors.New("malformed HTTP response")}, hangup.Answered5xx, 502, "http_protocol_error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.f)
			if d.Action != tc.action || d.Status != tc.status || d.ProxyError != tc.perr {
				t.Errorf("Decide = %+v; want %v %d %q", d, tc.action, tc.status, tc.perr)
			}
		})
	}
}

func TestQueueable(t *testing.T) {
	dial := func(err error) error { return &hangup.DialError{Addr: "a:1", Err: err} }
	cases := []struct {
		name string
		f    Failure
		want bool
	}{
		{"refused", Failure{Side: hangup.Upstream, Phase: hangup.Connect, Kind: hangup.Refused, Err: dial(syscall.ECONNREFUSED)}, true},
		{"connect timeout", Failure{Side: hangup.Upstream, Phase: hangup.Connect, Kind: hangup.Timeout, Err: dial(&hangup.TimeoutError{Phase: hangup.Connect})}, true},
		{"dns", Failure{Side: hangup.Upstream, Phase: hangup.Connect, Kind: hangup.KindUnknown, Err: dial(errors.New("no such host"))}, true},
		{"reset before headers", Failure{Side: hangup.Upstream, Phase: hangup.AwaitHeaders, Kind: hangup.Reset, Err: syscall.ECONNRESET}, true},
		{"fin while sending", Failure{Side: hangup.Upstream, Phase: hangup.SendRequest, Kind: hangup.FIN}, true},
		{"header timeout", Failure{Side: hangup.Upstream, Phase: hangup.AwaitHeaders, Kind: hangup.Timeout, Err: &hangup.TimeoutError{Phase: hangup.AwaitHeaders}}, true},
		{"total timeout in backoff", Failure{Side: hangup.Upstream, Phase: hangup.Backoff, Kind: hangup.Timeout, Err: &hangup.TimeoutError{}}, true},
		{"caller gone", Failure{Side: hangup.Caller, Phase: hangup.AwaitHeaders, Kind: hangup.FIN}, false},
		{"fin mid body", Failure{Side: hangup.Upstream, Phase: hangup.StreamResponse, Kind: hangup.FIN, HeadersSent: true}, false},
		{"bad response", Failure{Side: hangup.Upstream, Phase: hangup.AwaitHeaders, Kind: hangup.KindUnknown, Err: errors.New("malformed HTTP response")}, false},
		{"bad certificate", Failure{Side: hangup.Upstream, Phase: hangup.Connect, Kind: hangup.KindUnknown, Err: dial(errors.New("tls: failed to verify certificate: x509: unknown authority"))}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Queueable(tc.f); got != tc.want {
				t.Errorf("Queueable(%+v) = %v, want %v", tc.f, got, tc.want)
			}
		})
	}
}
