//go:build linux

package rawio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair returns the two ends of a loopback TCP connection.
func pair(t *testing.T) (a, b *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-acc
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// A write larger than the socket buffers waits for the reader, and every
// byte arrives in order; the reader sees io.EOF, bare, at the end.
func TestWriteReadWhole(t *testing.T) {
	a, b := pair(t)
	w, r := NewWriter(Conn(a)), NewReader(Conn(b))
	want := make([]byte, 48<<20+7)
	for i := range want {
		want[i] = byte(i * 7)
	}
	done := make(chan error, 1)
	go func() {
		n, err := w.Write(want)
		if err == nil && n != len(want) {
			err = io.ErrShortWrite
		}
		a.CloseWrite()
		done <- err
	}()
	b.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, want %d equal ones", len(got), len(want))
	}
	if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("after the end: %d, %v; want 0, io.EOF", n, err)
	}
}

// Errors read as net.Conn's do: a deadline is a timeout, a closed
// connection net.ErrClosed, a reset ECONNRESET or EPIPE.
func TestErrors(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		_, b := pair(t)
		b.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := NewReader(Conn(b)).Read(make([]byte, 1))
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("err = %v; want a timeout", err)
		}
	})
	t.Run("closed while reading", func(t *testing.T) {
		_, b := pair(t)
		r := NewReader(Conn(b))
		go func() {
			time.Sleep(20 * time.Millisecond)
			b.Close()
		}()
		if _, err := r.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("err = %v; want net.ErrClosed", err)
		}
	})
	t.Run("peer reset", func(t *testing.T) {
		a, b := pair(t)
		a.SetLinger(0)
		a.Close()
		b.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, rerr := NewReader(Conn(b)).Read(make([]byte, 1))
		if !errors.Is(rerr, syscall.ECONNRESET) {
			t.Fatalf("read err = %v; want ECONNRESET", rerr)
		}
		var werr error
		w := NewWriter(Conn(b))
		for i := 0; i < 100 && werr == nil; i++ {
			_, werr = w.Write([]byte("x"))
		}
		if !errors.Is(werr, syscall.EPIPE) && !errors.Is(werr, syscall.ECONNRESET) {
			t.Fatalf("write err = %v; want EPIPE or ECONNRESET", werr)
		}
	})
}

// Not a socket: no raw reader or writer.
func TestNotASocket(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Conn(a) != nil || NewReader(Conn(a)) != nil || NewWriter(Conn(a)) != nil {
		t.Fatal("a net.Pipe end got a raw reader or writer")
	}
}

// Reads and writes allocate nothing.
func TestNoAllocs(t *testing.T) {
	a, b := pair(t)
	w, r := NewWriter(Conn(a)), NewReader(Conn(b))
	p, q := []byte("hello"), make([]byte, 16)
	if n := testing.AllocsPerRun(100, func() {
		w.Write(p)
		io.ReadFull(r, q[:len(p)])
	}); n != 0 {
		t.Fatalf("%v allocations per write and read", n)
	}
}
