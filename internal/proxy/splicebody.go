package proxy

import (
	"io"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/splice"
)

// spliceMin is the shortest response body worth splicing: below it the
// pipe's extra system calls cost more than the copies they save.
const spliceMin = 64 << 10

// spliceChunk bounds one move from the upstream's socket into the pipe, so
// that the idle-body timer is re-armed and the caller checked at least
// that often.
const spliceChunk = 256 << 10

// splicedBytes counts the body bytes relayed by spliceBody in this
// process, for tests to see the path taken.
var splicedBytes atomic.Int64

// rawBody is an upstream response body whose rest can be read straight
// from its socket (the HTTP/1.1 transport's; see upstream's RawRest).
type rawBody interface {
	RawRest() (rc syscall.RawConn, left int64, ok bool)
	RawDone(n int64, err error) error
}

// rawWriter is a ResponseWriter whose body can be written straight to the
// caller's socket (the fast path's fastResponse).
type rawWriter interface {
	rawBody(n int64) (syscall.RawConn, error)
	rawWrote(n int64, err error)
}

// spliceBody relays the rest of a response body from the upstream's socket
// to the caller's through a kernel pipe (internal/splice), when both are
// plain TCP sockets and the body has a declared length: no byte of it
// passes through the proxy's memory. It reports whether it did; if not,
// nothing was read or written and the caller copies on as usual.
//
// The rules hold as for a copy: the caller is checked before every write
// (R2), a hang-up of either side ends the relay with that side's error,
// and the idle-body timeout times every read.
func (ex *exchange) spliceBody(body io.Reader, idle time.Duration) (bool, error) {
	rb, ok := body.(rawBody)
	if !ok {
		return false, nil
	}
	rw, ok := ex.w.(rawWriter)
	if !ok {
		return false, nil
	}
	p, err := splice.Get()
	if err != nil {
		return false, nil
	}
	defer p.Put()
	src, left, ok := rb.RawRest()
	if !ok {
		return false, nil
	}
	// Flushing what rawBody flushes is a write: the caller is checked
	// first.
	var dst syscall.RawConn
	werr := ex.mayWrite()
	if werr == nil {
		if dst, werr = rw.rawBody(left); dst == nil && werr == nil {
			return false, rb.RawDone(0, nil) // still open: copy on
		}
	}
	var read, wrote int64
	var rerr error
	for werr == nil && read < left {
		if idle > 0 {
			ex.try.armIdle(idle)
		}
		var n int
		n, rerr = p.Fill(src, int(min(left-read, spliceChunk)))
		read += int64(n)
		if idle > 0 {
			ex.try.stopIdle()
		}
		if rerr == nil && n == 0 {
			rerr = io.EOF
		}
		if n > 0 {
			if werr = ex.mayWrite(); werr == nil {
				var m int
				m, werr = p.Drain(dst)
				wrote += int64(m)
				splicedBytes.Add(int64(m))
			}
		}
		if rerr != nil {
			break
		}
	}
	ex.bytesOut += wrote
	rw.rawWrote(wrote, werr)
	bodyErr := rb.RawDone(read, rerr)
	if werr != nil {
		ex.downDead = true
		return true, callerWriteError{werr}
	}
	if bodyErr == io.EOF {
		return true, nil
	}
	return true, bodyErr
}
