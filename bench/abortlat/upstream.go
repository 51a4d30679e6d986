package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// upstream is a raw TCP HTTP/1.1 peer. For each connection it reads the
// request head, finds the trial named in the path (/abortlat/ID), plays that
// trial's phase and then reads until the proxy ends the connection.
type upstream struct {
	ln     net.Listener
	trials sync.Map // id (string) → *trial
	wg     sync.WaitGroup
}

// upstreamEnd is what the upstream saw when the proxy let go.
type upstreamEnd struct {
	at  time.Time // when Read returned the error
	how string    // "EOF", "RST" or the error text
}

func newUpstream() (*upstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u := &upstream{ln: ln}
	u.wg.Add(1)
	go u.accept()
	return u, nil
}

func (u *upstream) addr() string { return u.ln.Addr().String() }

func (u *upstream) close() {
	u.ln.Close()
	u.wg.Wait()
}

func (u *upstream) accept() {
	defer u.wg.Done()
	for {
		c, err := u.ln.Accept()
		if err != nil {
			return
		}
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			defer c.Close()
			u.serve(c)
		}()
	}
}

// serve plays one connection. Every read has a deadline so that no
// goroutine outlives the run by more than a few seconds.
func (u *upstream) serve(c net.Conn) {
	c.SetDeadline(time.Now().Add(trialTimeout + 2*time.Second))
	br := bufio.NewReaderSize(c, 64<<10)
	path, contentLength, err := readHead(br)
	if err != nil {
		return
	}
	v, ok := u.trials.Load(strings.TrimPrefix(path, "/abortlat/"))
	if !ok {
		return
	}
	t := v.(*trial)
	switch t.phase {
	case phaseAwaitHeaders:
		close(t.ready)
	case phaseSendRequest:
		// Read the first 64 KiB of the body the proxy forwards.
		if contentLength < bodySent {
			t.fail(fmt.Errorf("upstream got Content-Length %d, want ≥ %d", contentLength, bodySent))
			return
		}
		if _, err := io.CopyN(io.Discard, br, bodySent); err != nil {
			t.fail(fmt.Errorf("upstream reading the first %d body bytes: %w", bodySent, err))
			return
		}
		close(t.ready)
	case phaseStreamResponse:
		stop := make(chan struct{})
		defer close(stop)
		go stream(c, stop)
	}
	t.end <- drain(br)
}

// readHead reads a request head and returns its path and Content-Length.
func readHead(br *bufio.Reader) (path string, contentLength int64, err error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", 0, err
	}
	if f := strings.Fields(line); len(f) == 3 {
		path = f[1]
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", 0, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return path, contentLength, nil
		}
		name, value, _ := strings.Cut(line, ":")
		if strings.EqualFold(name, "Content-Length") {
			contentLength, _ = strconv.ParseInt(strings.TrimSpace(value), 10, 64)
		}
	}
}

// stream writes a chunked response head and a chunk at once, then a chunk
// every 5 ms until stop or a write fails.
func stream(c net.Conn, stop <-chan struct{}) {
	if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"+chunk); err != nil {
		return
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			if _, err := io.WriteString(c, chunk); err != nil {
				return
			}
		}
	}
}

// chunk is one chunk of the streamed body: "tick\n".
const chunk = "5\r\ntick\n\r\n"

// drain reads until the connection ends and notes when and how.
func drain(br *bufio.Reader) upstreamEnd {
	buf := make([]byte, 32<<10)
	for {
		_, err := br.Read(buf)
		if err == nil {
			continue
		}
		end := upstreamEnd{at: time.Now()}
		switch {
		case errors.Is(err, io.EOF):
			end.how = "EOF"
		case errors.Is(err, syscall.ECONNRESET):
			end.how = "RST"
		case errors.Is(err, syscall.ETIMEDOUT), isTimeout(err):
			end.how = "still open"
		default:
			end.how = err.Error()
		}
		return end
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
