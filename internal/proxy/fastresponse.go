package proxy

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/h1"
)

// fastBody is a fast-path request's body, read from the connection's
// buffered reader. A transport may read it on its own goroutine, even after
// the handler returned; close (by the connection's goroutine) ends that.
type fastBody struct {
	fc      *fastConn
	mu      sync.Mutex // guards eof, closed and the watcher start
	r       io.Reader  // the framed reader: lr or cr
	lr      h1.LengthReader
	cr      h1.ChunkedReader
	trailer http.Header // the request's Trailer map, filled at the body's end
	eof     bool
	closed  bool
}

// reset prepares the body of req and sets req.Body.
// A nil req forgets the last request.
func (b *fastBody) reset(fc *fastConn, req *http.Request) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fc, b.eof, b.closed = fc, false, false
	b.lr, b.trailer = h1.LengthReader{}, nil
	switch {
	case req == nil:
		b.r = nil
	case len(req.TransferEncoding) > 0:
		b.cr.Reset(fc.br, 0)
		b.r, b.trailer = &b.cr, req.Trailer
		req.Body = b
	case req.ContentLength > 0:
		b.lr = h1.LengthReader{R: fc.br, Left: req.ContentLength}
		b.r = &b.lr
		req.Body = b
	default:
		b.r, b.eof = nil, true
		req.Body = http.NoBody
	}
}

func (b *fastBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return 0, http.ErrBodyReadAfterClose
	}
	if b.eof {
		b.mu.Unlock()
		return 0, io.EOF
	}
	b.mu.Unlock()
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.keepTrailers()
		b.mu.Lock()
		if !b.closed {
			b.eof = true
			b.fc.startWatch()
		}
		b.mu.Unlock()
	}
	return n, err
}

// keepTrailers puts the trailer fields of a chunked body into the
// request's Trailer map, as net/http does for those it announced: a
// transport sends them on after the body.
func (b *fastBody) keepTrailers() {
	if b.r != &b.cr || b.trailer == nil {
		return
	}
	for _, f := range b.cr.Trailers() {
		k := http.CanonicalHeaderKey(string(f.Name))
		if _, announced := b.trailer[k]; announced {
			b.trailer[k] = append(b.trailer[k], string(f.Value))
		}
	}
}

// Close ends this reader's use of the body; the connection's goroutine
// decides what becomes of the rest.
func (b *fastBody) Close() error { return nil }

// close stops the body for good and reports whether it had been read to
// its end.
func (b *fastBody) close() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return b.eof
}

// fastResponse is the fast path's http.ResponseWriter, owned by the
// handler's goroutine. It writes through the connection's bufio.Writer. A
// body that fits stageSize before the handler returns or flushes gets a
// Content-Length; a longer one without a declared length is chunked (or,
// for HTTP/1.0, ends with the connection), as with net/http.
type fastResponse struct {
	fc         *fastConn
	req        *http.Request
	h          http.Header
	status     int
	wrote      bool  // WriteHeader ran
	committed  bool  // the head is in the writer
	cl         int64 // the declared or computed Content-Length, -1 if none
	n          int64 // body bytes accepted
	chunked    bool
	noBody     bool
	closeAfter bool // the connection ends after this response
	stage      *[]byte
	err        error // the first write error: the caller's side ended
}

const stageSize = 2048

var fastStages = sync.Pool{New: func() any { b := make([]byte, 0, stageSize); return &b }}

func (w *fastResponse) reset(fc *fastConn, req *http.Request, h http.Header) {
	*w = fastResponse{fc: fc, req: req, h: h, cl: -1}
}

func (w *fastResponse) Header() http.Header { return w.h }

func (w *fastResponse) WriteHeader(code int) {
	if w.wrote {
		return
	}
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.informational(code)
		return
	}
	w.wrote, w.status = true, code
	w.noBody = w.req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified
	if v := w.h["Content-Length"]; len(v) > 0 {
		if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 {
			w.cl = n
		} else {
			delete(w.h, "Content-Length")
		}
	}
}

// informational writes a 1xx response at once.
func (w *fastResponse) informational(code int) {
	bw := w.fc.bw
	bw.Write(appendStatusLine(bw.AvailableBuffer(), code))
	w.writeFields(false)
	bw.WriteString("\r\n")
	if err := bw.Flush(); err != nil && w.err == nil {
		w.err = err
	}
}

func (w *fastResponse) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.noBody {
		if w.req.Method == http.MethodHead {
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if w.cl >= 0 && w.n+int64(len(p)) > w.cl {
		return 0, http.ErrContentLength
	}
	if !w.committed {
		if w.cl < 0 && (w.stage == nil || len(*w.stage)+len(p) <= stageSize) && len(p) <= stageSize {
			if w.stage == nil {
				w.stage = fastStages.Get().(*[]byte)
			}
			*w.stage = append(*w.stage, p...)
			w.n += int64(len(p))
			return len(p), nil
		}
		if err := w.commit(false); err != nil {
			return 0, err
		}
	}
	w.n += int64(len(p))
	return len(p), w.writeBody(p)
}

// writeBody writes p as (a chunk of) the body.
func (w *fastResponse) writeBody(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	bw := w.fc.bw
	if w.chunked {
		b := strconv.AppendInt(bw.AvailableBuffer(), int64(len(p)), 16)
		bw.Write(append(b, '\r', '\n'))
	}
	_, err := bw.Write(p)
	if w.chunked && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	return w.failed(err)
}

// failed records a write error: the caller's side ended, and nothing more
// is written to it.
func (w *fastResponse) failed(err error) error {
	if err != nil && w.err == nil {
		w.err = err
		w.fc.dead = true
	}
	return w.err
}

// rawBody readies the response for its next n body bytes to be written
// straight to the caller's socket (spliceBody): the head and all before it
// are flushed. It returns a nil socket if the response cannot take them
// so: not n bytes left of a declared length, not a TCP socket, or a head
// that went out chunked; the response then takes its body through Write as
// before. An error means the caller's side ended.
func (w *fastResponse) rawBody(n int64) (syscall.RawConn, error) {
	if !w.wrote || w.err != nil || w.noBody || w.chunked || w.cl < 0 || w.cl-w.n < n {
		return nil, w.err
	}
	rc := w.fc.c.rc
	if rc == nil {
		return nil, nil
	}
	if !w.committed {
		if err := w.commit(false); err != nil {
			return nil, err
		}
		if w.chunked {
			return nil, nil // the head chose chunks after all (trailers)
		}
	}
	if err := w.failed(w.fc.bw.Flush()); err != nil {
		return nil, err
	}
	return rc, nil
}

// rawWrote counts n body bytes written to the caller's socket after
// rawBody, and records the write's failure.
func (w *fastResponse) rawWrote(n int64, err error) {
	w.n += n
	w.failed(err)
}

// FlushError sends what was written so far; http.ResponseController uses
// it.
func (w *fastResponse) FlushError() error {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return w.err
	}
	if !w.committed {
		if err := w.commit(false); err != nil {
			return err
		}
	}
	return w.failed(w.fc.bw.Flush())
}

func (w *fastResponse) Flush() { _ = w.FlushError() }

// commit writes the head, choosing the framing: final means the handler
// has returned, so a staged body's length is known.
func (w *fastResponse) commit(final bool) error {
	w.committed = true
	h, r := w.h, w.req
	trailers := h["Trailer"] != nil && r.ProtoAtLeast(1, 1)
	switch {
	case w.noBody:
		if w.status == http.StatusNoContent || w.status == http.StatusNotModified {
			delete(h, "Content-Length")
		}
	case trailers:
		w.chunked = true
	case w.cl >= 0:
	case final:
		w.cl = w.n
		h["Content-Length"] = []string{strconv.FormatInt(w.cl, 10)}
	case r.ProtoAtLeast(1, 1):
		w.chunked = true
	default:
		w.closeAfter = true // HTTP/1.0: the body ends with the connection
	}
	if w.chunked {
		delete(h, "Content-Length")
		w.cl = -1
	}
	if r.Close || w.fc.fs.srv.conns.closing.Load() || h1.HasToken(h["Connection"], "close") {
		w.closeAfter = true
	}
	bw := w.fc.bw
	bw.Write(appendStatusLine(bw.AvailableBuffer(), w.status))
	w.writeFields(true)
	switch {
	case w.closeAfter:
		bw.WriteString("Connection: close\r\n")
	case !r.ProtoAtLeast(1, 1):
		bw.WriteString("Connection: keep-alive\r\n")
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if _, ok := h["Date"]; !ok {
		bw.Write(appendDate(append(bw.AvailableBuffer(), "Date: "...)))
		bw.WriteString("\r\n")
	}
	_, err := bw.WriteString("\r\n")
	if err := w.failed(err); err != nil {
		return err
	}
	if w.stage != nil {
		err := w.writeBody(*w.stage)
		*w.stage = (*w.stage)[:0]
		fastStages.Put(w.stage)
		w.stage = nil
		return err
	}
	return nil
}

// writeFields writes the header fields, but not the trailers, the framing
// fields or Connection, which commit writes itself. As net/http does, it
// drops fields with invalid names and turns line breaks in values into
// spaces.
func (w *fastResponse) writeFields(head bool) {
	bw := w.fc.bw
	for k, vv := range w.h {
		switch {
		case strings.HasPrefix(k, http.TrailerPrefix), !h1.IsToken(k):
			continue
		case head && (k == "Connection" || k == "Transfer-Encoding"):
			continue
		}
		for _, v := range vv {
			writeField(bw, k, v)
		}
	}
}

// finish completes the response after the handler returned.
func (w *fastResponse) finish() error {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return w.err
	}
	if !w.committed {
		if err := w.commit(true); err != nil {
			return err
		}
	}
	bw := w.fc.bw
	switch {
	case w.chunked:
		bw.WriteString("0\r\n")
		w.writeTrailers()
		bw.WriteString("\r\n")
	case !w.noBody && w.cl >= 0 && w.n < w.cl:
		// Shorter than declared: only closing tells the caller.
		w.closeAfter = true
	}
	return w.failed(bw.Flush())
}

// writeTrailers writes the announced trailer fields and those set with
// http.TrailerPrefix.
func (w *fastResponse) writeTrailers() {
	bw := w.fc.bw
	for k := range h1.TrailerNames(w.h["Trailer"]) {
		if h1.IsToken(k) {
			for _, v := range w.h[k] {
				writeField(bw, k, v)
			}
		}
	}
	for k, vv := range w.h {
		name, ok := strings.CutPrefix(k, http.TrailerPrefix)
		if !ok || !h1.IsToken(name) {
			continue
		}
		for _, v := range vv {
			writeField(bw, name, v)
		}
	}
}

// writeField writes the field line "k: v", with any line break in v
// turned into a space, as net/http does.
func writeField(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	if strings.ContainsAny(v, "\r\n") {
		for i := 0; i < len(v); i++ {
			c := v[i]
			if c == '\r' || c == '\n' {
				c = ' '
			}
			bw.WriteByte(c)
		}
	} else {
		bw.WriteString(v)
	}
	bw.WriteString("\r\n")
}

// appendStatusLine appends "HTTP/1.1 code text\r\n".
func appendStatusLine(b []byte, code int) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(code)...)
	return append(b, '\r', '\n')
}

// The Date field's value is formatted once a second.
type dateEntry struct {
	sec int64
	b   []byte
}

var dateCache atomic.Pointer[dateEntry]

func appendDate(b []byte) []byte {
	now := time.Now()
	e := dateCache.Load()
	if e == nil || e.sec != now.Unix() {
		e = &dateEntry{sec: now.Unix(), b: now.UTC().AppendFormat(nil, http.TimeFormat)}
		dateCache.Store(e)
	}
	return append(b, e.b...)
}
