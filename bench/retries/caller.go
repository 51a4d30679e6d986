package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// class is a kind of request the callers send.
type class struct {
	id    string // short, used in X-Req-Id
	name  string // for the report
	post  bool
	keyed bool // carries an Idempotency-Key
}

var classes = []class{
	{id: "get", name: "GET"},
	{id: "postkey", name: "POST + Idempotency-Key", post: true, keyed: true},
	{id: "post", name: "POST, no key", post: true},
}

// postBody is the 64-byte body of every POST.
var postBody = strings.Repeat("0123456789abcdef", 4)

// load is one run of a class against one target.
type load struct {
	addrs    []string // caller w connects to addrs[w%len(addrs)]
	class    class
	prefix   string // X-Req-Id prefix, unique per target and class
	n        int
	callers  int
	timeout  time.Duration // per request, from dial or write to the end of the body
	deadline time.Time     // no new request starts after it
}

// tally is what the callers saw in one load.
type tally struct {
	mu       sync.Mutex     // guards following
	requests int            // requests started
	errs     map[string]int // error kind → count
	elapsed  time.Duration
}

func (t *tally) errors() int {
	n := 0
	for _, v := range t.errs {
		n += v
	}
	return n
}

// run sends l.n requests from l.callers concurrent keep-alive callers. A
// caller is a raw HTTP/1.1 client with no retry of its own: a request
// that fails is recorded and the connection dropped; the next request
// dials afresh.
func (l *load) run(ctx context.Context) *tally {
	t := &tally{errs: make(map[string]int)}
	var next atomic.Int64
	var wg sync.WaitGroup
	began := time.Now()
	for w := range l.callers {
		wg.Go(func() { l.caller(ctx, l.addrs[w%len(l.addrs)], &next, t) })
	}
	wg.Wait()
	t.elapsed = time.Since(began)
	return t
}

// caller sends requests over one connection at a time until l.n requests
// were started, ctx is done or the deadline passed.
func (l *load) caller(ctx context.Context, addr string, next *atomic.Int64, t *tally) {
	var c net.Conn
	var br *bufio.Reader
	reused := false
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for {
		i := next.Add(1) - 1
		if int(i) >= l.n || ctx.Err() != nil || time.Now().After(l.deadline) {
			return
		}
		req := l.request(fmt.Sprintf("%s-%d", l.prefix, i))
		start := time.Now()
		var kind string
		if c == nil {
			var err error
			c, err = net.DialTimeout("tcp", addr, l.timeout)
			if err != nil {
				c = nil
				t.record("dial: " + errKind(err))
				continue
			}
			br = bufio.NewReader(c)
			reused = false
		}
		c.SetDeadline(start.Add(l.timeout))
		ans, err := exchange(c, br, req)
		switch {
		case err != nil && reused:
			kind = "reused conn: " + errKind(err)
		case err != nil:
			kind = errKind(err)
		case ans.status >= 500:
			kind = fmt.Sprint(ans.status)
		}
		t.record(kind)
		if err != nil || !ans.open {
			c.Close()
			c = nil
			continue
		}
		reused = true
	}
}

func (t *tally) record(kind string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.requests++
	if kind != "" {
		t.errs[kind]++
	}
}

// request renders one request of l's class.
func (l *load) request(id string) []byte {
	var b strings.Builder
	method := "GET"
	if l.class.post {
		method = "POST"
	}
	fmt.Fprintf(&b, "%s /retries HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Req-Id: %s\r\n", method, id)
	if l.class.keyed {
		fmt.Fprintf(&b, "Idempotency-Key: %s\r\n", newKey())
	}
	if l.class.post {
		fmt.Fprintf(&b, "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n%s", len(postBody), postBody)
	} else {
		b.WriteString("\r\n")
	}
	return []byte(b.String())
}

// newKey is a random UUID-shaped idempotency key.
func newKey() string {
	var k [16]byte
	rand.Read(k[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", k[0:4], k[4:6], k[6:8], k[8:10], k[10:16])
}

// answer is a complete response as far as the caller cares.
type answer struct {
	status int
	open   bool // the connection may carry the next request
}

// exchange writes req on c and reads one complete response (head and body).
func exchange(c net.Conn, br *bufio.Reader, req []byte) (answer, error) {
	if _, err := c.Write(req); err != nil {
		return answer{}, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return answer{}, err
	}
	return answer{status: resp.StatusCode, open: !resp.Close}, nil
}

// errKind names a caller-side failure for the report.
func errKind(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	}
	return err.Error()
}
