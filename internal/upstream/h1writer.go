package upstream

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http/httptrace"
	"strconv"
	"sync"
)

// bodyWriter writes one request's body on a goroutine of its own while the
// exchange's goroutine reads the response, as net/http's write loop does:
// an upstream that answers before it has read the whole body (a 413 to a
// large upload, a 401) is heard at once, however slowly the body comes and
// however little of it the upstream takes. Only requests with a body start
// one; the head is written before, on the exchange's goroutine, so
// WroteHeaders and the bytes-written count keep their meaning. The writer
// reports WroteRequest itself, once the body is out or has failed.
//
// The exchange's goroutine calls end before the exchange ends: before
// RoundTrip returns an error, before the response body's Close returns,
// and before its Read returns io.EOF or an error. end
//   - stops the writer: it starts no other read of the body, write or hook;
//   - closes the connection, unless the whole request is out already, so
//     that a write blocked on an upstream that reads no more returns;
//   - closes the request's body, so that a read blocked on a slow source
//     (a caller sending slowly) returns, if the body's Close can end it;
//   - waits for the goroutine to return.
//
// One case is not waited for: a writer still inside the body's Read once
// the body is closed. Not every body ends a pending Read on Close: the
// proxy's fast-path body and its replay buffer do not, and net/http's
// HTTP/1 server body makes Close itself wait for the Read. Waiting there
// would hold the exchange (and the proxy's handler) until the caller sends
// more, and a caller waiting for its answer may send nothing. Such a
// writer is abandoned: when its Read returns, it drops what it read and
// returns at once, without writing, reporting or touching the request or
// the connection, which end has closed and which is never reused. It gives
// back only the buffers it took itself, which nothing else refers to. Its
// Read returns when the caller sends, hangs up or is disconnected: the
// proxy's fast path closes a caller's connection whose request body was
// not read to its end once the handler returns, and servers close theirs
// when they shut down.
//
// The connection goes back to the idle list only if the whole request was
// out before the response ended and the writer was not abandoned; one
// whose request was still going out when its response ended is closed.
//
// A writer that fails on its own records its error first. If the
// connection did not fail (the body's source did, or did not match its
// Content-Length), it then closes the connection, so that the exchange's
// goroutine, awaiting an answer to a request that will never be whole,
// returns; the exchange reports the writer's error. If the upstream
// refused the write (it closed or reset), the connection is left be: an
// answer it sent before is still read and returned, as net/http does;
// else the write's error is reported.
type bodyWriter struct {
	pc     *h1Conn
	r      *h1Request // only its body framing is read
	body   io.Reader  // r.body
	trace  *httptrace.ClientTrace
	closer io.Closer // the request's body, closed once, by closeBody
	once   sync.Once
	done   chan struct{} // closed when run returns

	mu         sync.Mutex // guards following
	reading    bool       // run is inside body's Read
	stopped    bool       // end ran: no more reads, writes or hooks
	abandoned  bool       // stopped inside body's Read: nobody waits for run
	sentAll    bool       // the whole request went out
	failed     bool       // the write failed before end
	closedConn bool       // run closed the connection for its failure
	err        error      // the write's outcome, once run is done
}

// errWriterStopped is what a body writer's read returns once the exchange
// has ended.
var errWriterStopped = errors.New("request body write stopped: the exchange ended")

// startBody starts writing r's body on pc; r's head is out. The writer
// takes over closing the body.
func (pc *h1Conn) startBody(r *h1Request, trace *httptrace.ClientTrace) *bodyWriter {
	w := &bodyWriter{pc: pc, r: r, body: r.body, trace: trace, closer: r.closer, done: make(chan struct{})}
	r.closer = nil
	// The body is about to be read: a replay needs GetBody now. (Only a
	// request written whole is replayed, and that read its body.)
	r.bodyRead = true
	go w.run()
	return w
}

// run writes the body and reports the outcome; see bodyWriter.
func (w *bodyWriter) run() {
	defer close(w.done)
	bw := writerPool.Get().(*bufio.Writer)
	bw.Reset(w.pc)
	err := w.write(bw)
	bw.Reset(nil)
	writerPool.Put(bw)

	w.mu.Lock()
	if w.abandoned {
		w.mu.Unlock()
		return
	}
	if w.stopped && w.sentAll {
		err = nil // the read for the body's end was cut short, not the request
	}
	w.err = err
	w.failed = err != nil && !w.stopped
	// pc.werr is this goroutine's: only it writes to pc now.
	w.closedConn = w.failed && w.pc.werr == nil
	w.mu.Unlock()
	if w.closedConn {
		w.pc.close()
	}
	w.closeBody()
	traceWroteRequest(w.trace, err)
}

// writeResult is how a body write ended, as end saw it.
type writeResult struct {
	err        error
	failed     bool // it failed on its own, before end: err is the exchange's error
	closedConn bool // it failed and closed the connection; see bodyWriter
	sentAll    bool // the whole request went out
	connClosed bool // end closed the connection: the request was not all out
}

// end stops the writer and waits for it; see bodyWriter. It may be called
// more than once, and concurrently (a response body's Close during its
// Read).
func (w *bodyWriter) end() writeResult {
	w.mu.Lock()
	w.stopped = true
	sentAll := w.sentAll
	w.mu.Unlock()
	if !sentAll {
		w.pc.close()
	}
	w.closeBody()
	w.mu.Lock()
	if w.reading {
		w.abandoned = true
	}
	abandoned := w.abandoned
	w.mu.Unlock()
	if abandoned {
		return writeResult{err: errWriterStopped, connClosed: !sentAll}
	}
	<-w.done
	// run set these before done was closed, and sets them no more.
	return writeResult{err: w.err, failed: w.failed, closedConn: w.closedConn, sentAll: w.sentAll, connClosed: !sentAll}
}

// closeBody closes the request's body, once, from run or end.
func (w *bodyWriter) closeBody() {
	w.once.Do(func() {
		if w.closer != nil {
			w.closer.Close()
		}
	})
}

// Read reads the body for write, unless the exchange has ended: what a
// read returns after that is dropped.
func (w *bodyWriter) Read(p []byte) (int, error) {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return 0, errWriterStopped
	}
	w.reading = true
	w.mu.Unlock()
	n, err := w.body.Read(p)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reading = false
	if w.stopped {
		return 0, errWriterStopped
	}
	return n, err
}

// markSentAll records that the last byte of the request went out.
func (w *bodyWriter) markSentAll() {
	w.mu.Lock()
	w.sentAll = true
	w.mu.Unlock()
}

// write sends the request body through bw, flushing after every piece
// read so that a body that streams reaches the upstream as it comes. It
// returns a *bodyReadError when reading the body failed and a write error
// as it is.
func (w *bodyWriter) write(bw *bufio.Writer) error {
	r := w.r
	bp := copyPool.Get().(*[]byte)
	defer copyPool.Put(bp)
	buf := *bp
	var sent int64
	put := func(p []byte) error {
		if !r.chunked {
			if sent+int64(len(p)) > r.length {
				return errBodyTooLong
			}
			sent += int64(len(p))
			_, err := bw.Write(p)
			if err == nil {
				err = bw.Flush()
			}
			if err == nil && sent == r.length {
				w.markSentAll()
			}
			return err
		}
		b := strconv.AppendInt(bw.AvailableBuffer(), int64(len(p)), 16)
		b = append(b, "\r\n"...)
		bw.Write(b)
		bw.Write(p)
		bw.WriteString("\r\n")
		return bw.Flush()
	}
	if len(r.prefix) > 0 {
		if err := put(r.prefix); err != nil {
			return err
		}
	}
	for empty := 0; ; {
		n, err := w.Read(buf)
		if n > 0 {
			empty = 0
			if werr := put(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return &bodyReadError{err}
		}
		if n == 0 {
			if empty++; empty >= 100 {
				return &bodyReadError{io.ErrNoProgress}
			}
		}
	}
	if !r.chunked {
		if sent < r.length {
			return fmt.Errorf("request body shorter than its Content-Length (%d of %d bytes)", sent, r.length)
		}
		return nil
	}
	b := append(bw.AvailableBuffer(), "0\r\n"...)
	b, err := appendTrailers(b, r.trailer)
	if err != nil {
		return err
	}
	b = append(b, "\r\n"...)
	bw.Write(b)
	if err := bw.Flush(); err != nil {
		return err
	}
	w.markSentAll()
	return nil
}
