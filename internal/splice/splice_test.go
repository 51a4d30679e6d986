//go:build linux

package splice

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds every socket operation of a test.
const testTimeout = 10 * time.Second

// tcpPair returns the two ends of a loopback TCP connection: the dialing
// end and the accepted one. Both get a deadline and are closed when the
// test ends (closing twice is harmless).
func tcpPair(tb testing.TB) (dialed, accepted *net.TCPConn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		c.Close()
		tb.Fatal(err)
	}
	dialed, accepted = c.(*net.TCPConn), s.(*net.TCPConn)
	tb.Cleanup(func() {
		dialed.Close()
		accepted.Close()
	})
	deadline := time.Now().Add(testTimeout)
	for _, conn := range []*net.TCPConn{dialed, accepted} {
		if err := conn.SetDeadline(deadline); err != nil {
			tb.Fatal(err)
		}
	}
	return dialed, accepted
}

func rawConn(tb testing.TB, c *net.TCPConn) syscall.RawConn {
	tb.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		tb.Fatal(err)
	}
	return rc
}

func getPipe(tb testing.TB) *Pipe {
	tb.Helper()
	p, err := Get()
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// openFDs counts this process's open descriptors (the count includes the
// one reading the directory, the same for every call).
func openFDs(tb testing.TB) int {
	tb.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatal(err)
	}
	return len(ents)
}

func randomBytes(n int, seed uint64) []byte {
	var key [32]byte
	key[0] = byte(seed)
	key[1] = byte(seed >> 8)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

// relay moves everything from src to dst through p until Fill reports
// the end of src, and returns the totals Fill and Drain reported.
func relay(p *Pipe, src, dst syscall.RawConn, max int) (filled, drained int, err error) {
	for {
		n, err := p.Fill(src, max)
		if err != nil {
			return filled, drained, fmt.Errorf("Fill: %w", err)
		}
		if n == 0 {
			return filled, drained, nil
		}
		filled += n
		m, err := p.Drain(dst)
		drained += m
		if err != nil {
			return filled, drained, fmt.Errorf("Drain: %w", err)
		}
		if m != n {
			return filled, drained, fmt.Errorf("Drain wrote %d of %d bytes without error", m, n)
		}
	}
}

func TestRelayByteExact(t *testing.T) {
	for _, size := range []int{1, 4095, 64 << 10, 1<<20 + 17, 3 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			data := randomBytes(size, uint64(size))

			sender, a := tcpPair(t)   // sender → a
			b, receiver := tcpPair(t) // b → receiver

			var wg sync.WaitGroup
			sendErr := make(chan error, 1)
			wg.Go(func() {
				_, err := sender.Write(data)
				if cerr := sender.Close(); err == nil {
					err = cerr
				}
				sendErr <- err
			})
			type result struct {
				b   []byte
				err error
			}
			got := make(chan result, 1)
			wg.Go(func() {
				b, err := io.ReadAll(receiver)
				got <- result{b, err}
			})
			defer wg.Wait()
			// If the test fails early, unblock both goroutines.
			defer sender.Close()
			defer receiver.Close()

			p := getPipe(t)
			filled, drained, err := relay(p, rawConn(t, a), rawConn(t, b), 256<<10)
			if err != nil {
				t.Fatalf("relay after %d/%d bytes: %v", filled, drained, err)
			}
			if filled != size || drained != size {
				t.Errorf("Fill moved %d bytes, Drain %d; sent %d", filled, drained, size)
			}
			if n := p.Buffered(); n != 0 {
				t.Errorf("Buffered() = %d at the end, want 0", n)
			}
			p.Put()
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			if err := <-sendErr; err != nil {
				t.Fatalf("sender: %v", err)
			}
			r := <-got
			if r.err != nil {
				t.Fatalf("receiver: %v", r.err)
			}
			if len(r.b) != size || sha256.Sum256(r.b) != sha256.Sum256(data) {
				i := 0
				for i < min(len(r.b), size) && r.b[i] == data[i] {
					i++
				}
				t.Fatalf("received %d bytes, sent %d; first difference at offset %d", len(r.b), size, i)
			}
		})
	}
}

func TestFillEOF(t *testing.T) {
	peer, a := tcpPair(t)
	if err := peer.Close(); err != nil {
		t.Fatal(err)
	}
	p := getPipe(t)
	defer p.Put()
	n, err := p.Fill(rawConn(t, a), 256<<10)
	if n != 0 || err != nil {
		t.Fatalf("Fill at EOF = %d, %v; want 0, nil", n, err)
	}
	if n := p.Buffered(); n != 0 {
		t.Fatalf("Buffered() = %d after EOF, want 0", n)
	}
}

// resetSource returns a socket whose peer has reset the connection.
func resetSource(t *testing.T) *net.TCPConn {
	t.Helper()
	peer, a := tcpPair(t)
	if err := peer.SetLinger(0); err != nil {
		t.Fatal(err)
	}
	if err := peer.Close(); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestFillSourceReset(t *testing.T) {
	a := resetSource(t)
	p := getPipe(t)
	defer p.Put()
	_, err := p.Fill(rawConn(t, a), 256<<10)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Fill from a reset socket: err = %v, want ECONNRESET", err)
	}
}

// A failed Fill moved nothing, so it must say 0 bytes and leave the pipe's
// count alone. Fill adds splice(2)'s return value to the count even when
// the call failed, and syscall.Splice returns -1 then: Fill returns -1 and
// Buffered() becomes -1 (and Put, seeing a non-zero count, closes a pipe
// that is in fact empty instead of pooling it).
func TestFillErrorReportsNoBytes(t *testing.T) {
	a := resetSource(t)
	p := getPipe(t)
	defer p.Put()
	n, err := p.Fill(rawConn(t, a), 256<<10)
	if err == nil {
		t.Fatal("Fill from a reset socket succeeded")
	}
	if n != 0 {
		t.Errorf("failed Fill returned n = %d (err %v), want 0", n, err)
	}
	if b := p.Buffered(); b != 0 {
		t.Errorf("Buffered() = %d after a failed Fill, want 0", b)
	}
}

// drainIntoReset fills p from a fresh source and drains it into a socket
// whose peer reset the connection, until Drain fails; it returns Drain's
// error.
func drainIntoReset(t *testing.T, p *Pipe) error {
	t.Helper()
	sender, a := tcpPair(t)
	b, peer := tcpPair(t)
	defer sender.Close()
	defer a.Close()
	defer b.Close()
	if err := peer.SetLinger(0); err != nil {
		t.Fatal(err)
	}
	if err := peer.Close(); err != nil {
		t.Fatal(err)
	}
	src, dst := rawConn(t, a), rawConn(t, b)
	chunk := bytes.Repeat([]byte{'x'}, 4<<10)
	// On loopback the reset is there before Close returns, so the first
	// Drain fails; the loop only guards against a slower stack.
	for range 100 {
		if _, err := sender.Write(chunk); err != nil {
			t.Fatalf("sender: %v", err)
		}
		n, err := p.Fill(src, len(chunk))
		if n <= 0 || err != nil {
			t.Fatalf("Fill = %d, %v", n, err)
		}
		if _, err := p.Drain(dst); err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("Drain into a reset socket never failed")
	return nil
}

func TestDrainDestinationReset(t *testing.T) {
	p := getPipe(t)
	err := drainIntoReset(t, p)
	if !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("Drain into a reset socket: err = %v, want EPIPE or ECONNRESET", err)
	}
	if p.Buffered() <= 0 {
		t.Errorf("Buffered() = %d after a failed Drain, want > 0", p.Buffered())
	}
	p.Put()
}

// Put closes a pipe that still holds bytes: failed relays leak no
// descriptors.
func TestPutClosesFailedPipe(t *testing.T) {
	const cycles = 50
	// Keep every pipe reachable so that only Put, not the pool's cleanup,
	// can close its descriptors.
	keep := make([]*Pipe, 0, cycles)
	before := openFDs(t)
	for range cycles {
		p := getPipe(t)
		keep = append(keep, p)
		if err := drainIntoReset(t, p); err == nil {
			t.Fatal("no error")
		}
		if p.Buffered() == 0 {
			t.Fatal("pipe empty after a failed Drain")
		}
		p.Put()
	}
	after := openFDs(t)
	runtime.KeepAlive(keep)
	if after > before {
		t.Fatalf("%d open descriptors before %d Get/fail/Put cycles, %d after", before, cycles, after)
	}
}

func TestFillDeadline(t *testing.T) {
	_, a := tcpPair(t)
	if err := a.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	p := getPipe(t)
	defer p.Put()
	start := time.Now()
	n, err := p.Fill(rawConn(t, a), 256<<10)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Fill past the deadline = %d, %v; want os.ErrDeadlineExceeded", n, err)
	}
	if n != 0 || p.Buffered() != 0 {
		t.Errorf("Fill past the deadline: n = %d, Buffered() = %d; want 0, 0", n, p.Buffered())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Fill took %v to see a 50ms deadline", d)
	}
}

func TestPoolReuse(t *testing.T) {
	const rounds = 1000
	before := openFDs(t)
	var last *Pipe
	reused := 0
	for range rounds {
		p := getPipe(t)
		if p == last {
			reused++
		}
		p.Put()
		last = p
	}
	// The race detector makes sync.Pool drop a quarter of what it is given;
	// a dropped pipe's descriptors are closed by its cleanup after a GC.
	if reused < rounds/2 {
		t.Errorf("Get returned the pipe just Put back %d times out of %d", reused, rounds)
	}
	after := openFDs(t)
	for deadline := time.Now().Add(5 * time.Second); after > before && time.Now().Before(deadline); {
		runtime.GC()
		time.Sleep(time.Millisecond)
		after = openFDs(t)
	}
	if after > before {
		t.Fatalf("%d open descriptors before %d Get/Put rounds, %d after", before, rounds, after)
	}
}

func BenchmarkRelay1MiB(b *testing.B) {
	const size = 1 << 20
	bench := func(b *testing.B, relay func(a, dst *net.TCPConn, total int) error) {
		sender, a := tcpPair(b)
		dst, receiver := tcpPair(b)
		for _, c := range []*net.TCPConn{sender, a, dst, receiver} {
			c.SetDeadline(time.Now().Add(time.Minute))
		}
		total := b.N * size
		chunk := randomBytes(size, 1)

		var wg sync.WaitGroup
		errc := make(chan error, 2)
		wg.Go(func() {
			for range b.N {
				if _, err := sender.Write(chunk); err != nil {
					errc <- fmt.Errorf("sender: %w", err)
					return
				}
			}
			errc <- nil
		})
		wg.Go(func() {
			n, err := io.Copy(io.Discard, receiver)
			if err == nil && n != int64(total) {
				err = fmt.Errorf("received %d bytes, want %d", n, total)
			}
			errc <- err
		})
		defer wg.Wait()
		defer sender.Close()
		defer receiver.Close()

		b.SetBytes(size)
		b.ReportAllocs()
		b.ResetTimer()
		err := relay(a, dst, total)
		dst.CloseWrite()
		for range 2 {
			if e := <-errc; err == nil {
				err = e
			}
		}
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
	}

	b.Run("splice", func(b *testing.B) {
		bench(b, func(a, dst *net.TCPConn, total int) error {
			p := getPipe(b)
			defer p.Put()
			src, out := rawConn(b, a), rawConn(b, dst)
			for done := 0; done < total; {
				n, err := p.Fill(src, min(256<<10, total-done))
				if err != nil {
					return err
				}
				if n == 0 {
					return io.ErrUnexpectedEOF
				}
				m, err := p.Drain(out)
				done += m
				if err != nil {
					return err
				}
			}
			return nil
		})
	})
	b.Run("copy", func(b *testing.B) {
		buf := make([]byte, 32<<10)
		bench(b, func(a, dst *net.TCPConn, total int) error {
			// Hide ReadFrom and WriteTo, which would splice too.
			w := struct{ io.Writer }{dst}
			r := struct{ io.Reader }{io.LimitReader(a, int64(total))}
			n, err := io.CopyBuffer(w, r, buf)
			if err == nil && n != int64(total) {
				err = io.ErrUnexpectedEOF
			}
			return err
		})
	})
}
