package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// idleResult is the memory measurement of one round.
type idleResult struct {
	conns      int   // connections that made their request and were held
	open       int   // of those, still open when the RSS was read
	before     int64 // RSS before, bytes
	after      int64 // RSS with the connections idle, bytes
	perConn    float64
	failed     int
	firstError string
}

// measureIdle reads the RSS of pid, opens n keep-alive connections to
// addr (par at a time), makes one request on each and leaves it idle,
// reads the RSS again once the proxy has settled, and closes them all
// with a reset.
func measureIdle(ctx context.Context, pid int, addr string, n, par int) (*idleResult, error) {
	r := &idleResult{}
	var err error
	if r.before, err = rssBytes(pid); err != nil {
		return nil, err
	}
	conns := make([]net.Conn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	jobs := make(chan int) // unbuffered: workers take one index at a time
	for range par {
		wg.Go(func() {
			for i := range jobs {
				conns[i], errs[i] = idleConn(ctx, addr)
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.(*net.TCPConn).SetLinger(0) // no TIME_WAIT pile-up across rounds
				c.Close()
			}
		}
	}()
	for i, c := range conns {
		if c != nil {
			r.conns++
		} else if r.failed++; r.firstError == "" {
			r.firstError = errs[i].Error()
		}
	}
	// Let the proxy finish whatever it does after a response (return
	// buffers, park goroutines) before reading its RSS.
	select {
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	case <-time.After(time.Second):
	}
	if r.after, err = rssBytes(pid); err != nil {
		return nil, err
	}
	for _, c := range conns {
		if c != nil && isOpen(c) {
			r.open++
		}
	}
	if r.conns > 0 {
		r.perConn = float64(r.after-r.before) / float64(r.conns)
	}
	return r, nil
}

// idleConn dials addr, makes one GET of the small body and returns the
// connection, idle.
func idleConn(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET "+pathSmall+" HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: suite-idle\r\n\r\n"); err != nil {
		c.Close()
		return nil, err
	}
	// The reader is dropped after the response: the body is 13 bytes and
	// nothing else comes until the next request, so nothing is lost.
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 1024), nil)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && (resp.StatusCode != 200 || resp.Close) {
			err = fmt.Errorf("status %d, close %v", resp.StatusCode, resp.Close)
		}
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// isOpen reports whether the peer has not closed c, by a non-blocking
// peek: a closed connection reads 0 bytes (EOF) or an error at once.
func isOpen(c net.Conn) bool {
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return false
	}
	open := false
	var buf [1]byte
	rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = n > 0 || errors.Is(err, syscall.EAGAIN)
		return true // never wait for readiness
	})
	return open
}
