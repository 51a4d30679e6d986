package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

type phase string

const (
	phaseAwaitHeaders   phase = "await_headers"
	phaseStreamResponse phase = "stream_response"
	phaseSendRequest    phase = "send_request"
)

type kind string

const (
	kindFIN kind = "fin"
	kindRST kind = "reset"
)

const (
	// bodyDeclared is the Content-Length the caller announces in
	// send_request; bodySent is how much of it it sends before hanging up.
	bodyDeclared = 1 << 20
	bodySent     = 64 << 10
	// trialTimeout bounds each wait of a trial: reaching the phase, and
	// the upstream seeing the end after the caller's close.
	trialTimeout = 2 * time.Second
)

// trial is one caller hang-up.
type trial struct {
	id    string
	phase phase
	kind  kind
	ready chan struct{}    // closed by the upstream once it reached the phase
	end   chan upstreamEnd // the upstream's read ended
	failc chan error       // the upstream could not play the phase
}

func newTrial(id string, p phase, k kind) *trial {
	return &trial{id: id, phase: p, kind: k, ready: make(chan struct{}),
		end: make(chan upstreamEnd, 1), failc: make(chan error, 1)}
}

func (t *trial) fail(err error) {
	select {
	case t.failc <- err:
	default:
	}
}

// result is one trial's measurement.
type result struct {
	phase   phase
	kind    kind
	id      string
	latency time.Duration // caller's close call → upstream's Read returns
	how     string        // what the upstream's Read returned
	err     error         // the trial did not measure anything
}

// run plays t against the proxy at addr: it brings the exchange to the
// phase, closes the caller's connection and times how long until the
// upstream's read on its connection ends.
func (t *trial) run(addr string, u *upstream) result {
	res := result{phase: t.phase, kind: t.kind, id: t.id}
	u.trials.Store(t.id, t)
	defer u.trials.Delete(t.id)

	d := net.Dialer{Timeout: trialTimeout}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		res.err = err
		return res
	}
	tc := c.(*net.TCPConn)
	tc.SetDeadline(time.Now().Add(trialTimeout))
	if err := t.reachPhase(tc); err != nil {
		c.Close()
		res.err = err
		return res
	}

	var start time.Time
	if t.kind == kindRST {
		tc.SetLinger(0)
		start = time.Now()
		tc.Close()
	} else {
		start = time.Now()
		tc.CloseWrite()
		tc.Close()
	}

	select {
	case end := <-t.end:
		res.latency, res.how = end.at.Sub(start), end.how
		if end.how == "still open" {
			res.err = fmt.Errorf("upstream connection still open %v after the caller's close", trialTimeout)
		}
	case <-time.After(trialTimeout + 3*time.Second):
		res.err = errors.New("upstream never reported the end of its connection")
	}
	return res
}

// reachPhase sends the request and waits until the exchange is in t.phase.
func (t *trial) reachPhase(c *net.TCPConn) error {
	path := "/abortlat/" + t.id
	switch t.phase {
	case phaseAwaitHeaders:
		if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: abortlat\r\n\r\n", path); err != nil {
			return err
		}
		return t.waitReady()
	case phaseSendRequest:
		head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: abortlat\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", path, bodyDeclared)
		if _, err := c.Write(append([]byte(head), make([]byte, bodySent)...)); err != nil {
			return err
		}
		return t.waitReady()
	case phaseStreamResponse:
		if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: abortlat\r\n\r\n", path); err != nil {
			return err
		}
		return readFirstChunk(c)
	}
	return fmt.Errorf("unknown phase %q", t.phase)
}

func (t *trial) waitReady() error {
	select {
	case <-t.ready:
		return nil
	case err := <-t.failc:
		return err
	case <-time.After(trialTimeout):
		return fmt.Errorf("upstream did not reach %s within %v", t.phase, trialTimeout)
	}
}

// readFirstChunk reads the response head and the body's first chunk.
func readFirstChunk(c net.Conn) error {
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if i := bytes.Index(got, []byte("\r\n\r\n")); i >= 0 {
			head, body := string(got[:i]), got[i+4:]
			if !strings.HasPrefix(head, "HTTP/1.1 200") {
				return fmt.Errorf("response head %q, want 200", firstLine(head))
			}
			if bytes.Contains(body, []byte("tick\n")) {
				return nil
			}
		}
		if err != nil {
			return fmt.Errorf("reading the first chunk: %w", err)
		}
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}
