package hangup

import "net/http"

// IdempotentMethod reports whether method is idempotent by RFC 9110 §9.2.2,
// so repeating the request has the same effect as sending it once.
func IdempotentMethod(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace,
		http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// Attempt describes a failed attempt for the purpose of deciding whether it
// may be sent again.
type Attempt struct {
	Method string
	// HasIdempotencyKey is true when the request carries an
	// Idempotency-Key header: the upstream promises to apply it once.
	HasIdempotencyKey bool
	// BodyReplayable is true when the whole request body is held and can be
	// sent again (or there is no body).
	BodyReplayable bool
	// NothingWritten is true when provably no byte of the request reached
	// the upstream: the connection was refused or failed before anything was
	// written to it.
	NothingWritten bool
}

// RetrySafe reports whether a failed attempt may be sent again, and if not,
// why not. The request must be idempotent, carry an Idempotency-Key, or never
// have reached the upstream; and its body must be replayable. A request that
// fails both tests is refused as not idempotent, the more basic reason.
func RetrySafe(a Attempt) (ok bool, reason string) {
	safe, why := "", ""
	switch {
	case a.NothingWritten:
		safe = "nothing_written"
	case IdempotentMethod(a.Method):
		safe = "idempotent_method"
	case a.HasIdempotencyKey:
		safe = "idempotency_key"
	default:
		why = "not_idempotent"
	}
	switch {
	case why != "":
		return false, why
	case !a.BodyReplayable:
		return false, "body_not_replayable"
	}
	return true, safe
}
