package splice

import (
	"runtime"
	"sync"
	"syscall"
)

// Pipe is a kernel pipe between two sockets. It is used by one goroutine
// at a time.
type Pipe struct {
	rfd, wfd int
	data     int // bytes in the pipe

	// The raw callbacks' arguments and results, and the callbacks, made
	// once: a method value allocates.
	max     int
	n       int
	err     error
	fillFn  func(uintptr) bool
	drainFn func(uintptr) bool
	cleanup runtime.Cleanup // closes the descriptors of a pipe the pool drops
}

// pipeSize is the capacity asked for each pipe, as Go's own splice asks;
// where the system allows less, the pipe keeps its default (64 KiB).
const pipeSize = 1 << 20

const fSetPipeSz = 1031 // F_SETPIPE_SZ

var pipes sync.Pool

// Get returns an empty pipe, from a pool or new.
func Get() (*Pipe, error) {
	if p, ok := pipes.Get().(*Pipe); ok {
		return p, nil
	}
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		return nil, err
	}
	syscall.Syscall(syscall.SYS_FCNTL, uintptr(fds[0]), fSetPipeSz, pipeSize)
	p := &Pipe{rfd: fds[0], wfd: fds[1]}
	p.fillFn, p.drainFn = p.fill, p.drain
	p.cleanup = runtime.AddCleanup(p, closePipe, fds)
	return p, nil
}

// Put gives the pipe back for reuse if it is empty; one still holding
// bytes (a Drain failed) is closed.
func (p *Pipe) Put() {
	if p.data == 0 {
		pipes.Put(p)
		return
	}
	p.cleanup.Stop()
	closePipe([2]int{p.rfd, p.wfd})
}

func closePipe(fds [2]int) {
	syscall.Close(fds[0])
	syscall.Close(fds[1])
}

// Buffered returns how many bytes Fill put into the pipe that Drain has
// not written out yet.
func (p *Pipe) Buffered() int { return p.data }

// Fill moves up to max bytes from the socket src into the pipe, waiting
// until src has some. It returns 0, nil when src reached its end. Call it
// only on an empty pipe.
func (p *Pipe) Fill(src syscall.RawConn, max int) (int, error) {
	p.max, p.n, p.err = max, 0, nil
	if err := src.Read(p.fillFn); err != nil {
		return 0, err
	}
	p.data += p.n
	return p.n, p.err
}

func (p *Pipe) fill(fd uintptr) bool {
	for {
		n, err := syscall.Splice(int(fd), nil, p.wfd, nil, p.max, spliceFlags)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // nothing to read yet: wait
		}
		if err == nil {
			p.n = int(n)
		}
		p.err = err
		return true
	}
}

// Drain writes everything in the pipe to the socket dst, waiting while
// dst cannot take more. It returns how many bytes went out.
func (p *Pipe) Drain(dst syscall.RawConn) (int, error) {
	p.n, p.err = 0, nil
	if err := dst.Write(p.drainFn); err != nil && p.err == nil {
		p.err = err
	}
	return p.n, p.err
}

func (p *Pipe) drain(fd uintptr) bool {
	for p.data > 0 {
		n, err := syscall.Splice(p.rfd, nil, int(fd), nil, p.data, spliceFlags)
		switch err {
		case nil:
			p.data -= int(n)
			p.n += int(n)
			continue
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // the socket is full: wait
		}
		p.err = err
		return true
	}
	return true
}

// spliceFlags: move pages rather than copy where the kernel can, and
// never block on the pipe (the sockets are non-blocking already).
const spliceFlags = 0x1 | 0x2 // SPLICE_F_MOVE | SPLICE_F_NONBLOCK
