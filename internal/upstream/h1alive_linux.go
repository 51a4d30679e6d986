package upstream

import (
	"syscall"
	"unsafe"
)

// alive reports whether the idle connection pc can carry a request: its
// upstream has not closed or reset it, and has sent nothing unasked. With
// no goroutine reading idle connections (as net/http's read loop does),
// only a look at the socket tells: a non-blocking recv with MSG_PEEK on the
// TCP socket (under TLS too) finds EOF, an error, a byte, or nothing yet.
func (pc *h1Conn) alive() bool {
	if pc.peek == nil {
		if pc.rawConn() == nil {
			return true // not a socket: nothing to look at
		}
		pc.peek = pc.peekSocket
	}
	pc.peekLive = false
	if err := pc.rc.Read(pc.peek); err != nil {
		return false
	}
	return pc.peekLive
}

// peekSocket is the raw read of alive; it never waits.
func (pc *h1Conn) peekSocket(fd uintptr) bool {
	var b [1]byte
	for {
		// syscall.Recvfrom would allocate room for an address; a raw
		// call does not wake the runtime's monitor (see rawio).
		_, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		pc.peekLive = errno == syscall.EAGAIN
		return true
	}
}
