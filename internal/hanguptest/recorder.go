package hanguptest

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// recordsBuffer is the capacity of Recorder.Started and Recorder.Ended. They
// are buffered so a handler never blocks on a test that does not read them;
// a record that finds its channel full is not sent (Records still has every
// ended one). 256 is more requests than any single test here makes.
const recordsBuffer = 256

// Recorder wraps Go HTTP handlers and records, per request, when it started,
// when its context ended (the upstream's view of an abort: for HTTP/1.1 the
// connection closed, for HTTP/2 an RST_STREAM), and how many writes the
// handler attempted after that. It is safe for concurrent use; one Recorder
// may wrap several handlers.
type Recorder struct {
	started chan RequestRecord // see recordsBuffer
	ended   chan RequestRecord // see recordsBuffer

	mu      sync.Mutex // guards records
	records []RequestRecord
}

// RequestRecord is what a Recorder learned about one request.
type RequestRecord struct {
	Method, Path string
	Proto        string    // "HTTP/1.1", "HTTP/2.0"
	Start        time.Time // when the wrapped handler was called
	// CtxDone is when the request's context ended, if it ended before the
	// handler returned; zero otherwise.
	CtxDone time.Time
	End     time.Time // when the handler returned; zero in Started records
	// WritesAfterDone counts ResponseWriter.Write calls made while the
	// context was already done: writes to a dead stream.
	WritesAfterDone int
	BodyBytes       int64 // request body bytes the handler read
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{
		started: make(chan RequestRecord, recordsBuffer),
		ended:   make(chan RequestRecord, recordsBuffer),
	}
}

// Started returns a channel that receives a record when a request starts.
// It holds 256 records so a handler never waits for the test; a record that
// finds it full is not sent. It is never closed.
func (r *Recorder) Started() <-chan RequestRecord { return r.started }

// Ended returns a channel that receives the final record when a handler
// returns (or panics). It holds 256 records so a handler never waits for the
// test; a record that finds it full is not sent, but Records has it. It is
// never closed.
func (r *Recorder) Ended() <-chan RequestRecord { return r.ended }

// Records returns the final records of all requests that have ended, in the
// order they ended.
func (r *Recorder) Records() []RequestRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]RequestRecord(nil), r.records...)
}

// Wrap returns a handler that records each request and calls h.
func (r *Recorder) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.serve(h, w, req)
	})
}

func (r *Recorder) serve(h http.Handler, w http.ResponseWriter, req *http.Request) {
	rec := RequestRecord{
		Method: req.Method,
		Path:   req.URL.Path,
		Proto:  req.Proto,
		Start:  time.Now(),
	}
	trySend(r.started, rec)

	ctx := req.Context()
	var ctxDone time.Time // written by the AfterFunc before it closes fired
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		ctxDone = time.Now()
		close(fired)
	})
	rw := &recordingWriter{ResponseWriter: w, ctx: ctx}
	body := &countingReader{r: req.Body}
	if req.Body != nil {
		req.Body = body
	}
	defer func() {
		rec.End = time.Now()
		doneBefore := ctx.Err() != nil // net/http cancels ctx itself once we return
		if !stop() {
			<-fired // the AfterFunc ran: wait for its write of ctxDone
		}
		if doneBefore {
			// The AfterFunc goroutine runs a little after the cancel, possibly
			// after the handler noticed it and returned: End bounds CtxDone.
			rec.CtxDone = rec.End
			if !ctxDone.IsZero() && ctxDone.Before(rec.End) {
				rec.CtxDone = ctxDone
			}
		}
		rec.WritesAfterDone = int(rw.afterDone.Load())
		rec.BodyBytes = body.n.Load()
		r.mu.Lock()
		r.records = append(r.records, rec)
		r.mu.Unlock()
		trySend(r.ended, rec)
	}()
	h.ServeHTTP(rw, req)
}

// trySend sends rec on ch unless ch is full; see recordsBuffer.
func trySend(ch chan<- RequestRecord, rec RequestRecord) {
	select {
	case ch <- rec:
	default:
	}
}

// recordingWriter counts writes made after ctx ended. Flush and Unwrap keep
// http.ResponseController (flushing, full duplex, deadlines) working.
type recordingWriter struct {
	http.ResponseWriter
	ctx       context.Context // the request's; owned by net/http
	afterDone atomic.Int64
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	if w.ctx.Err() != nil {
		w.afterDone.Add(1)
	}
	return w.ResponseWriter.Write(p)
}

func (w *recordingWriter) Flush() {
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *recordingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// countingReader counts bytes read from a request body.
type countingReader struct {
	r io.ReadCloser
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }
