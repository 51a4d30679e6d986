// Package rawio reads and writes sockets with raw system calls, outside
// the Go scheduler's system-call accounting.
//
// Every ordinary system call (syscall.Syscall, which net.Conn's Read and
// Write use) tells the runtime it is entering the kernel, and the first
// one after the process was idle wakes the runtime's monitor thread
// (sysmon), which then ticks every 20 µs until the process is idle again,
// taking the processor from any goroutine that has been in a system call
// for a tick. A proxy at a moderate request rate goes idle between
// requests, so each request woke the monitor and was interrupted by its
// ticks. With GOMAXPROCS=1 on one core at 2,000 requests a second, that
// was two thirds of the proxy's context switches (6.3 per request; 2.0
// with raw calls) and a third of its CPU time (168 µs per request; 107).
//
// A raw system call is invisible to the scheduler. That is safe for reads
// and writes on a non-blocking socket, which never wait in the kernel:
// when there is nothing to read or no room to write the call returns
// EAGAIN, and the goroutine waits in the runtime's poller as with
// net.Conn (syscall.RawConn's Read and Write), deadlines and Close
// included.
package rawio

import (
	"io"
	"net"
	"os"
	"syscall"
)

// Reader reads from one socket. It is used by one goroutine at a time, as
// a net.Conn's reads are.
type Reader struct {
	rc  syscall.RawConn
	fn  func(uintptr) bool // r.read, made once
	p   []byte
	n   int
	err error
}

// NewReader returns a Reader for the socket rc (see Conn), or nil if rc is
// nil or the system is not Linux.
func NewReader(rc syscall.RawConn) *Reader {
	if rc == nil || !supported {
		return nil
	}
	r := &Reader{rc: rc}
	r.fn = r.read
	return r
}

// Read reads what the socket has, up to len(p), waiting in the runtime's
// poller until it has something; io.EOF once the peer closed.
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.p, r.n, r.err = p, 0, nil
	err := r.rc.Read(r.fn)
	n := r.n
	if err == nil {
		err = r.err
	}
	r.p, r.err = nil, nil
	if err != nil && err != io.EOF {
		return n, &net.OpError{Op: "read", Net: "tcp", Err: err}
	}
	return n, err
}

func (r *Reader) read(fd uintptr) bool {
	for {
		n, errno := rawRead(fd, r.p)
		switch errno {
		case 0:
			r.n = n
			if n == 0 {
				r.err = io.EOF
			}
			return true
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false // nothing yet: the poller waits, then calls again
		default:
			r.err = os.NewSyscallError("read", errno)
			return true
		}
	}
}

// Writer writes to one socket. It is used by one goroutine at a time, as
// a net.Conn's writes are.
type Writer struct {
	rc  syscall.RawConn
	fn  func(uintptr) bool // w.write, made once: a method value allocates
	p   []byte
	n   int
	err error
}

// NewWriter returns a Writer for the socket rc (see Conn), or nil if rc is
// nil or the system is not Linux.
func NewWriter(rc syscall.RawConn) *Writer {
	if rc == nil || !supported {
		return nil
	}
	w := &Writer{rc: rc}
	w.fn = w.write
	return w
}

// Write writes all of p, waiting in the runtime's poller while the socket
// is full; deadlines and Close apply as for the connection's own Write.
func (w *Writer) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	w.p, w.n, w.err = p, 0, nil
	err := w.rc.Write(w.fn)
	n := w.n
	if err == nil {
		err = w.err
	}
	w.p, w.err = nil, nil
	if err != nil {
		return n, &net.OpError{Op: "write", Net: "tcp", Err: err}
	}
	return n, nil
}

func (w *Writer) write(fd uintptr) bool {
	for len(w.p) > 0 {
		n, errno := rawWrite(fd, w.p)
		switch errno {
		case 0:
			w.n += n
			w.p = w.p[n:]
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false // full: the poller waits, then calls again
		default:
			w.err = os.NewSyscallError("write", errno)
			return true
		}
	}
	return true
}

// Conn returns the raw socket under c, or nil if c is not a socket. One
// serves a connection's Reader, Writer and any other raw use of it.
func Conn(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}
