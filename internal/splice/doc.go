// Package splice moves bytes from one socket to another through a kernel
// pipe with splice(2), so that they never pass through user space: a
// response body relayed this way costs the proxy neither the copy out of
// the upstream's socket nor the copy into the caller's.
//
// net.TCPConn's ReadFrom splices too, but its error does not say which
// socket failed, and a proxy must know: a failed read is the upstream's
// hang-up, a failed write the caller's. Here the two halves are separate
// calls: Fill reads from one socket into the pipe, Drain writes the pipe
// out to the other, each through the socket's syscall.RawConn, so the Go
// runtime's poller does the waiting and deadlines and Close work as for
// any read or write.
//
// On systems without splice(2), Get reports ErrUnsupported and callers copy
// as usual.
package splice
