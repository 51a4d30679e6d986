package client

import (
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/switchboard-proxy/switchboard/hangup"
	"github.com/switchboard-proxy/switchboard/internal/attempt"
)

// deliver hands the response of attempt tr to the caller. Its body reports
// a failure while it is read as a *hangup.Error in the stream_response
// phase, and ends the attempt once it is read to the end or closed.
func (x *exchange) deliver(tr *try, res *http.Response) *http.Response {
	if rw, ok := res.Body.(io.ReadWriteCloser); ok && res.StatusCode == http.StatusSwitchingProtocols {
		// The body is the connection itself, for the caller to speak
		// another protocol on: hand it over untouched.
		if tr.cancel != nil {
			res.Body = &upgradedBody{rw, tr}
		}
		return res
	}
	x.res = responseBody{rc: res.Body, x: x, tr: tr}
	res.Body = &x.res
	return res
}

// responseBody is the body of the response delivered to the caller.
type responseBody struct {
	rc     io.ReadCloser
	x      *exchange
	tr     *try
	closed atomic.Bool // Close may run concurrently with Read, to abort it
}

func (b *responseBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	switch {
	case err == nil:
	case err == io.EOF:
		b.tr.end()
	case !b.closed.Load():
		err = b.x.bodyError(err)
	}
	return n, err
}

func (b *responseBody) Close() error {
	b.closed.Store(true)
	err := b.rc.Close()
	b.tr.end()
	return err
}

// bodyError classifies a failure to read the response body: the server cut
// the response short, or the caller's context ended while reading it.
func (x *exchange) bodyError(err error) error {
	f := attempt.Failure{Side: hangup.Upstream, Phase: hangup.StreamResponse, Kind: hangup.Classify(err), Err: err}
	if x.ctx.Err() != nil {
		f = x.callerGone(hangup.StreamResponse)
	}
	return &hangup.Error{Side: f.Side, Phase: f.Phase, Kind: f.Kind, Attempts: x.sent,
		Elapsed: time.Since(x.start), Err: f.Err}
}

// upgradedBody ends the attempt's context when the upgraded connection is
// closed.
type upgradedBody struct {
	io.ReadWriteCloser
	tr *try
}

func (b *upgradedBody) Close() error {
	err := b.ReadWriteCloser.Close()
	b.tr.end()
	return err
}
