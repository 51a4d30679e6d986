package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/switchboard-proxy/switchboard/hangup"
	"github.com/switchboard-proxy/switchboard/internal/queue"
)

// ReservedPrefix is the path prefix switchboard answers itself on every
// listener, before any route is matched: the status URLs of async
// deliveries live under it.
const ReservedPrefix = "/_switchboard/"

// deliveriesPrefix is where a delivery's status URL lives:
// deliveriesPrefix + id.
const deliveriesPrefix = ReservedPrefix + "deliveries/"

// putTimeout bounds storing one request. The store is asked without the
// caller's context: once the body is read the request is stored even if
// the caller hangs up meanwhile ("accepted" means Put acknowledged).
const putTimeout = 10 * time.Second

// accepted is the body of a 202 answer.
type accepted struct {
	ID        string `json:"id"`
	StatusURL string `json:"status_url"`
}

// serveAsync stores the request of an async route and answers 202 with its
// status URL once the store acknowledged it (rule R9).
func (ex *exchange) serveAsync(t *table) {
	if ex.h.queue == nil {
		// A reload cannot add the first async route (see Server.reload);
		// this is a guard, not a path.
		ex.queueUnavailable(errors.New("no delivery queue is open"))
		return
	}
	limit := min(ex.route.maxBody, ex.h.queueMaxBody)
	if ex.r.ContentLength > limit {
		ex.answerLocal(http.StatusRequestEntityTooLarge, "request body larger than this route allows; nothing stored")
		return
	}
	body, ok := ex.readBody(limit)
	if !ok {
		return
	}
	id, err := ex.store(ex.message(t, body))
	var tooBig *queue.TooLargeError
	switch {
	case errors.As(err, &tooBig):
		ex.answerLocal(http.StatusRequestEntityTooLarge, "request too large to store; nothing stored")
		return
	case err != nil:
		ex.queueUnavailable(err)
		return
	}
	ex.outcome = hangup.Outcome{Action: hangup.QueuedForLater}
	ex.receipt(id)
}

// message is the request as stored for later delivery, with body, the
// whole request body.
func (ex *exchange) message(t *table, body []byte) queue.Message {
	r := ex.r
	hdr := r.Header.Clone()
	delete(hdr, "Expect") // our server already answered 100-continue
	forwarded(hdr, r, t.trusted, nil)
	hdr.Set("Host", r.Host) // carried in the header; deliver moves it back to Request.Host
	return queue.Message{
		Route:    ex.route.name,
		Method:   r.Method,
		Target:   (&url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}).RequestURI(),
		Header:   hdr,
		Body:     body,
		Arrived:  ex.start,
		Deadline: time.Now().Add(ex.route.maxAge),
	}
}

// store writes m to the queue and returns its delivery id once the store
// acknowledged it. It does not heed the caller's hang-up: see putTimeout.
func (ex *exchange) store(m queue.Message) (string, error) {
	q := ex.h.queue
	if q == nil {
		// A reload cannot add the first route that queues (see
		// Server.reload); this is a guard, not a path.
		return "", errors.New("no delivery queue is open")
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ex.callerCtx), putTimeout)
	defer cancel()
	return q.Put(ctx, m)
}

// receipt answers 202 with the status URL of the stored delivery id.
func (ex *exchange) receipt(id string) {
	ex.deliveryID = id
	loc := deliveriesPrefix + id
	ex.w.Header().Set("Location", loc)
	ex.writeJSON(http.StatusAccepted, accepted{ID: id, StatusURL: loc})
}

// readBody reads the caller's whole body, up to limit bytes. On failure
// it answers (413, 400) or records the caller's hang-up, and reports false.
func (ex *exchange) readBody(limit int64) ([]byte, bool) {
	r := ex.r
	if r.Body == nil || r.Body == http.NoBody {
		return nil, true
	}
	ex.body = &callerBody{rc: r.Body, limit: limit}
	body, err := io.ReadAll(ex.body)
	var tooBig *http.MaxBytesError
	switch {
	case err == nil:
		return body, true
	case errors.As(err, &tooBig):
		ex.answerLocal(http.StatusRequestEntityTooLarge, "request body larger than this route allows; nothing stored")
	case ex.malformedBody(err):
		ex.answerLocal(http.StatusBadRequest, "malformed request body; nothing stored")
	default:
		// The caller hung up while sending: nothing was stored, and
		// there is no upstream exchange to abort.
		ex.outcome = hangup.Outcome{Side: hangup.Caller, Phase: hangup.SendRequest, Kind: ex.callerKind(err), Err: err}
		ex.status, ex.detail = hangup.StatusCallerGone, "caller hung up while sending its body; nothing stored"
	}
	return nil, false
}

// queueUnavailable answers 503 for a request the store did not take.
func (ex *exchange) queueUnavailable(err error) {
	ex.outcome = hangup.Outcome{Side: hangup.Proxy, Phase: hangup.SendRequest, Action: hangup.Answered5xx, Err: err}
	ex.proxyError = "destination_unavailable"
	ex.answerError(http.StatusServiceUnavailable, ex.proxyError, "delivery queue: "+err.Error())
}

// serveReserved answers a request under ReservedPrefix: the status URL of
// a delivery (GET, HEAD) and its cancellation (DELETE).
func (ex *exchange) serveReserved() {
	r := ex.r
	id, ok := strings.CutPrefix(r.URL.Path, deliveriesPrefix)
	if !ok || id == "" || strings.Contains(id, "/") {
		ex.answerLocal(http.StatusNotFound, "no such switchboard resource")
		return
	}
	q := ex.h.queue
	if q == nil {
		ex.answerLocal(http.StatusNotFound, "no delivery queue is open")
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		rec, err := q.Get(r.Context(), id)
		if err != nil {
			ex.queueError(err)
			return
		}
		ex.writeJSON(http.StatusOK, rec)
	case http.MethodDelete:
		if err := q.Cancel(r.Context(), id); err != nil {
			ex.queueError(err)
			return
		}
		ex.status, ex.wroteHeader = http.StatusNoContent, true
		ex.w.WriteHeader(http.StatusNoContent)
	default:
		ex.w.Header().Set("Allow", "GET, HEAD, DELETE")
		ex.answerLocal(http.StatusMethodNotAllowed, "use GET, HEAD or DELETE")
	}
}

// queueError answers a failed status-URL request.
func (ex *exchange) queueError(err error) {
	var se *queue.StateError
	switch {
	case errors.Is(err, queue.ErrNotFound):
		ex.answerLocal(http.StatusNotFound, "no such delivery")
	case errors.As(err, &se):
		ex.answerLocal(http.StatusConflict, "delivery is "+string(se.State)+", not pending")
	default:
		ex.queueUnavailable(err)
	}
}

// writeJSON answers with v as JSON, unless the caller is gone.
func (ex *exchange) writeJSON(status int, v any) {
	ex.status = status
	data, err := json.Marshal(v)
	if err != nil {
		ex.answerError(http.StatusInternalServerError, "", "encode answer: "+err.Error())
		return
	}
	if ex.callerGone() {
		ex.h.metrics.PreventedWrite("local_answer")
		return
	}
	h := ex.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	if ex.r.ProtoMajor == 1 && lastRequest(ex.r) {
		h.Set("Connection", "close")
	}
	ex.wroteHeader = true
	ex.w.WriteHeader(status)
	if ex.r.Method == http.MethodHead {
		return
	}
	n, err := ex.w.Write(append(data, '\n'))
	ex.bytesOut += int64(n)
	if err != nil {
		ex.downDead = true
	}
}
