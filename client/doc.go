// Package client gives Go programs that call HTTP services the hang-up
// handling of the switchboard proxy: a failed request is classified (who
// hung up, in which phase, how), retried when that is safe, and otherwise
// returned as an error that says what happened.
//
// [Transport] is an [http.RoundTripper] for any [http.Client]; [New] returns
// a client that uses one. They decide with the same code as the proxy: the
// classification of package hangup ([hangup.Classify], [hangup.RetrySafe])
// and the proxy's attempt loop (backoff with full jitter, Retry-After, a
// retry budget, the caller's deadline).
//
// # What is retried
//
// An attempt is tried again when the server could not be reached
// (connection refused, connect timeout), hung up before any response byte
// (the "socket hang up" of Node.js: a reset or a close), ran out its
// per-try timeout, or answered with a status of Options.RetryOnStatus
// (502, 503 and 504 by default) — and the request is safe to send again:
//
//   - its method is idempotent (GET, HEAD, OPTIONS, TRACE, PUT, DELETE), or
//   - it carries an Idempotency-Key header (Options.AddIdempotencyKey adds
//     one), or
//   - provably no byte of it was written,
//
// and its body can be sent again (it has GetBody, or it fits in
// Options.BufferBody). A response cut short in the middle of its body is
// never retried: the caller already has it, and reading its body fails with
// a *hangup.Error in the stream_response phase.
//
// # What "nothing written" covers
//
// With the default base (Options.Base nil), the Transport dials through its
// own dialer and counts the bytes written to each connection, so it proves
// that nothing was written when
//
//   - the dial failed: refused, unreachable, timed out (a *hangup.DialError);
//   - no connection was handed to the attempt at all (httptrace GotConn
//     never ran: the caller's or the per-try deadline ended the wait);
//   - an HTTP/1.1 connection, fresh or reused, failed before a single byte
//     of this request was written to it.
//
// It cannot prove it for HTTP/2, whose connection carries many requests at
// once, nor for bytes the kernel accepted but the server never read: those
// count as written, so the proof errs on the safe side.
//
// With an *http.Transport as Options.Base, a failed dial (a *net.OpError
// with Op "dial", or a *hangup.DialError from its DialContext) and an
// attempt that never got a connection still prove it; a connection that
// failed before writing does not, because its bytes are not counted. With
// any other RoundTripper only a typed dial error proves it, and a base that
// retries by itself must not report a dial error after it has already
// written the request on another connection. (net/http itself replays a
// request on a new connection when a reused one turns out closed before
// anything was written; AttemptInfo.ConnReplays counts those.)
//
// # Cancellation and errors
//
// The request's context bounds everything: cancelling it aborts the attempt
// in flight (net/http closes the HTTP/1.1 connection or resets the HTTP/2
// stream) and any wait between attempts, and no attempt starts after it. Its
// deadline also stops retries that could not finish in time.
//
// A request that ends without a response returns an error wrapping a
// *hangup.Error (through *url.Error when it comes from an http.Client), and
// so does a Read of a response body that fails before its end. Its
// Side says who ended the exchange (hangup.Upstream: the server, or
// hangup.Caller: the request's context), Phase and Kind say where and how,
// Attempts and Elapsed how often it was tried, NoRetry why it was not tried
// again, and Err is the cause, so errors.Is and errors.As see through it:
//
//	upstream reset the connection before responding (after 3 attempts over 1.2s; attempts_exhausted): read tcp …: connection reset by peer
//	caller cancelled the request while waiting to retry (after 2 attempts over 80ms): context canceled
//
// A response is returned as it is, whatever its status, once it is not
// retried.
//
// # Observing
//
// Options.OnAttempt is called after every attempt with an [AttemptInfo];
// [Transport.Stats] returns counters of requests, attempts, retries and
// refused retries by reason, and exhausted budgets, for export as metrics.
//
// # Queueing for later
//
// An [Outbox] ([OpenOutbox]) keeps the requests that could not be delivered
// now in a local bbolt file and delivers them from one background goroutine
// with backoff, until each is delivered (2xx, 3xx), dead (its attempts or
// its age ran out, or the server rejected it), or dropped. [Outbox.Send]
// tries a request at once and queues it only when later delivery may mend
// the failure; it returns once the entry is fsynced. Every attempt carries
// the same Idempotency-Key, so delivery is at least once, and exactly once
// at a server that applies each key once. [Outbox.List], [Outbox.Get],
// [Outbox.Replay] and [Outbox.Drop] inspect and manage the entries;
// OutboxOptions.OnOutcome and Outcomes report each entry's end.
package client
