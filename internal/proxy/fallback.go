package proxy

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/switchboard-proxy/switchboard/hangup"
	"github.com/switchboard-proxy/switchboard/internal/attempt"
	"github.com/switchboard-proxy/switchboard/internal/queue"
)

// A fallback route (mode fallback) is served like a sync route, and when
// the upstream cannot answer the request the request is stored for later
// delivery instead, and the caller gets 202 with the status URL and a
// Proxy-Status header saying why. The request counts as accepted once its
// whole body was read and the decision to store it was made: a caller who
// hangs up before that is a caller abort (499, nothing stored); after it,
// the request is stored and delivered even though the caller never sees
// the 202.
//
// What stores the request: a failure attempt.Queueable accepts (connect
// failures, hang-ups and timeouts before a response header), no endpoint
// to send it to (what would be a 503), and a final response whose status
// is in the route's retry_on_status (by default 502, 503 and 504) once the
// retries, if any, are spent.

// Reasons a fallback route could not store a request (the access log's
// no_fallback); the caller then gets the answer a sync route would give.
const (
	noFallbackBody  = "body_too_large" // over queue.max_body (or the stored message's limit)
	noFallbackStore = "store_failed"   // the queue did not acknowledge the write
)

// errBodyTooLarge is wholeBody's answer for a body longer than it keeps.
var errBodyTooLarge = errors.New("request body longer than the fallback keeps")

// fallbackLimit is how much of a fallback request's body is kept: all of
// it up to what the queue stores, and at least what retries replay.
func (ex *exchange) fallbackLimit() int64 {
	return min(ex.route.maxBody, max(ex.route.bufferBody, ex.h.queueMaxBody))
}

// queuesStatus reports whether a final response with status stores the
// request of a fallback route.
func (ex *exchange) queuesStatus(status int) bool {
	return ex.fallback && slices.Contains(ex.route.queueStatus, status)
}

// fallBackStatus stores a fallback request whose final response, res, has
// a status that queues it; it reports whether it did (or ended the
// exchange because the caller left), else the response is to be relayed.
func (ex *exchange) fallBackStatus(res *http.Response) bool {
	o := hangup.Outcome{Side: hangup.Upstream, Phase: hangup.AwaitHeaders}
	wait, _ := attempt.ParseRetryAfter(res.Header.Get("Retry-After"), time.Now())
	return ex.fallBack(o, "received-status="+strconv.Itoa(res.StatusCode), "upstream answered "+res.Status, wait)
}

// fallBack stores the request of a fallback route that the upstream did
// not answer, o being how the exchange ended, and answers 202 with its
// status URL and a Proxy-Status header made of param (`error=…` or
// `received-status=…`) and why. The first delivery attempt waits the
// route's queue.backoff_base, or wait if longer (a Retry-After), rather
// than hitting an upstream that just failed at once. It first reads what the attempts left of
// the caller's body. It reports false when the request could not be
// stored, with ex.noFallback saying why: the caller is then to get the
// answer it would have had without the fallback. A caller who hangs up
// while its body is read ends the exchange as a caller abort, with nothing
// stored; fallBack reports true then.
func (ex *exchange) fallBack(o hangup.Outcome, param, why string, wait time.Duration) bool {
	if !ex.fallback {
		return false
	}
	body, err := ex.wholeBody()
	switch {
	case errors.Is(err, errBodyTooLarge):
		ex.noFallback = noFallbackBody
		return false
	case err != nil:
		// Not accepted yet: a caller abort (R1), or a body that does
		// not parse or is over max_request_body.
		ex.end(ex.classify(err))
		return true
	}
	m := ex.message(ex.table, body)
	m.NotBefore = time.Now().Add(max(ex.route.delivery.BackoffBase, wait))
	id, err := ex.store(m)
	var tooBig *queue.TooLargeError
	switch {
	case errors.As(err, &tooBig):
		ex.noFallback = noFallbackBody
		return false
	case err != nil:
		ex.noFallback, ex.queueErr = noFallbackStore, err
		return false
	}
	o.Action = hangup.QueuedForLater
	ex.outcome = o
	ex.detail = "queued for later delivery: " + why
	ex.w.Header().Set("Proxy-Status", "switchboard; "+param+"; details="+quoteSF(ex.detail))
	ex.receipt(id)
	return true
}

// wholeBody returns the caller's whole body, reading what the attempts did
// not. It returns errBodyTooLarge for a body longer than the queue stores
// (or than fallbackLimit), or the error reading it from the caller.
func (ex *exchange) wholeBody() ([]byte, error) {
	limit := min(ex.route.maxBody, ex.h.queueMaxBody)
	switch {
	case ex.body == nil:
		return nil, nil
	case ex.replay == nil || ex.r.ContentLength > limit:
		return nil, errBodyTooLarge
	}
	body, ok, err := ex.replay.all()
	switch {
	case !ok || int64(len(body)) > limit:
		// Kept for retries (buffer_body) but too long to store.
		return nil, errBodyTooLarge
	case err != nil:
		return nil, err
	}
	return body, nil
}

// all reads the body to its end through a new reader and returns it
// whole. ok is false when it is longer than the limit.
func (b *replayBody) all() (body []byte, ok bool, err error) {
	r := b.reader()
	defer r.Close()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	for {
		_, err := r.Read(*bp)
		switch {
		case !b.replayable():
			return nil, false, nil
		case err == io.EOF:
			b.mu.Lock()
			defer b.mu.Unlock()
			return b.kept, true, nil
		case err != nil:
			return nil, true, err
		}
	}
}
