// Package hangup names every way an HTTP exchange can end and classifies Go
// errors into that taxonomy.
//
// An exchange has two sockets and either side can hang up at any moment. Each
// ending is described by an [Outcome]: which [Side] hung up (the caller, the
// upstream or switchboard itself), in which [Phase] of the exchange, what
// [Kind] of hang-up it was (an orderly FIN, a reset, a timeout or a refused
// connection) and which [Action] switchboard took.
//
// [Classify] is the one place where Go errors (syscall errnos, io.EOF,
// net.ErrClosed, context errors, HTTP/2 stream errors and the unexported
// errors of net/http) are turned into a [Kind]. The proxy, the delivery queue
// and the client library all call it, so a hang-up means the same thing
// everywhere. [RetrySafe] is the one statement of when a request may be sent
// again.
package hangup
