// Package queue is switchboard's delivery queue (rule R9): requests that
// cannot be answered now are stored durably and delivered later, at least
// once, each attempt carrying the same Idempotency-Key, until they are
// delivered or dead-lettered.
//
// The store is NATS JetStream: by default a nats-server embedded in the
// process (no TCP listener, an in-process client connection, data under
// Options.Dir, every write fsynced before it is acknowledged), or an
// external cluster named by Options.URL, reached through the same code.
//
// # Layout
//
// With the stream name N (Options.Stream, "SWITCHBOARD" by default):
//
//   - Stream N, subject "N.work", work-queue retention: one message per
//     pending delivery, holding the stored request (metadata as one JSON
//     line, then the body bytes). Workers share one durable pull consumer
//     with explicit acks; a message is removed when it is acked, so the
//     stream is exactly the work still to do. JetStream hands a message to
//     one worker at a time until its AckWait runs out; a worker extends the
//     window with InProgress while an upstream call lasts, so one delivery
//     runs at a time per message, and a worker that dies without acking
//     gives the message to another after AckWait. Backoff is a negative
//     acknowledgement with a delay (the message stays in the stream).
//   - Stream N_DEAD, subjects "N.dead.<id>", one message per subject: the
//     stored request of each dead letter, kept so it can be replayed.
//   - Key-value bucket N_state: one record per delivery id (state,
//     attempts, every attempt's outcome, the upstream's answer once
//     delivered). Records change by compare-and-set on their revision, so a
//     cancel racing a worker is never lost.
//
// # Which write is the truth
//
// Put publishes the message first, then creates the record, and returns
// only when both are acknowledged. A crash between the two leaves a message
// without a record; the worker that takes the message writes the record
// from it, so nothing is lost, only invisible to Get until then. Every
// state change that ends a delivery writes the record before the message is
// acked: a crash in between makes the message come back, and the worker
// then acks it without delivering again. A crash during an upstream call
// means a second delivery with the same Idempotency-Key: at least once.
//
// Each message carries a generation, raised by Replay; a message older than
// its record is stale and is dropped, one newer than its record (a replay
// that crashed before updating the record) is adopted.
package queue
