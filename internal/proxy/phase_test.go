package proxy

import (
	"net/http/httptrace"
	"testing"

	"github.com/switchboard-proxy/switchboard/hangup"
)

// The transports report a request written only after their write returned,
// on their own goroutine, by when the response may have arrived and be
// streaming. A late report must not move the attempt's phase back: a body
// cut short would be logged await_headers and connection_terminated
// instead of stream_response and http_response_incomplete.
func TestLateWriteReportKeepsPhase(t *testing.T) {
	for _, p := range []hangup.Phase{hangup.StreamResponse, hangup.Tunnel} {
		tr := &try{tryState: tryState{route: &route{}, wrote: make(chan struct{})}}
		tr.setPhase(p)
		tr.onWroteHeaders()
		tr.wroteRequest(httptrace.WroteRequestInfo{})
		if got := tr.getPhase(); got != p {
			t.Errorf("phase %v after late write reports, want %v", got, p)
		}
	}
	tr := &try{tryState: tryState{route: &route{}, wrote: make(chan struct{})}}
	tr.h2.Store(true) // only an HTTP/2 attempt has wrote
	tr.setPhase(hangup.SendRequest)
	tr.wroteRequest(httptrace.WroteRequestInfo{})
	if got := tr.getPhase(); got != hangup.AwaitHeaders {
		t.Errorf("phase %v after the request was written, want await_headers", got)
	}
	select {
	case <-tr.wrote:
	default:
		t.Error("wrote not closed after WroteRequest")
	}
}
