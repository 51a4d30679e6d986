package upstream

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/switchboard-proxy/switchboard/internal/h1"
)

// readResponseHead parses one response head for req from br, and frames
// its body, which reads on from br. It is the one place that parses
// responses. It reads with internal/h1, which refuses what net/http refuses
// and also ambiguous framing (Content-Length with Transfer-Encoding, say)
// that net/http would accept and that a proxy must not pass on. A head
// longer than br's buffer, rare from an upstream, is left to net/http's
// ReadResponse, which reads any length (the connection's head limit still
// applies). Its strings reuse rec's where the bytes are the same.
func readResponseHead(br *bufio.Reader, req *http.Request, rec *h1.Recent) (*http.Response, error) {
	hr := respHeads.Get().(*h1.Response)
	defer respHeads.Put(hr)
	m := responseMemFrom(req.Context())
	for {
		buf, _ := br.Peek(br.Buffered())
		n, err := h1.ParseResponse(buf, hr, br.Size())
		switch {
		case err == nil:
			res := newResponse(buf[:n], hr, req, m, rec)
			br.Discard(n)
			frameBody(res, hr, br, m)
			return res, nil
		case tooLong(err) && len(buf) >= br.Size():
			return http.ReadResponse(br, req)
		case err != h1.ErrIncomplete:
			return nil, err
		}
		if _, err := br.Peek(len(buf) + 1); err != nil {
			return nil, err
		}
	}
}

// tooLong reports whether err says a head does not fit.
func tooLong(err error) bool {
	var he *h1.Error
	return errors.As(err, &he) && he.Status == http.StatusRequestHeaderFieldsTooLarge
}

var respHeads = sync.Pool{New: func() any { return new(h1.Response) }}

// newResponse builds the response of the head hr, as net/http's
// ReadResponse would: Transfer-Encoding and Trailer move out of the
// header into their own fields. It builds it in m when m is not nil, and
// its strings with rec (see h1.Recent).
func newResponse(head []byte, hr *h1.Response, req *http.Request, m *ResponseMem, rec *h1.Recent) *http.Response {
	s := h1.NewStrings(head, rec)
	var res *http.Response
	var hdr http.Header
	if m != nil {
		if m.header == nil {
			m.header = make(http.Header, len(hr.Fields))
		}
		clear(m.header)
		m.header, m.values = s.HeaderInto(m.header, m.values, hr.Fields)
		res, hdr = &m.res, m.header
	} else {
		res, hdr = new(http.Response), s.Header(hr.Fields)
	}
	*res = http.Response{
		Status:     status(hr.Status, s.Of(hr.Reason)),
		StatusCode: hr.Status,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: hr.Minor,
		Header:     hdr,
		Close:      hr.Close,
		Request:    req,
	}
	if hr.Minor == 0 {
		res.Proto = "HTTP/1.0"
	}
	delete(res.Header, "Transfer-Encoding")
	if names, ok := res.Header["Trailer"]; ok {
		delete(res.Header, "Trailer")
		if hr.Chunked {
			res.Trailer = h1.TrailerNames(names)
		}
	}
	return res
}

// frameBody sets res's body, read from br, and its length; in m, which
// newResponse built res in, when m is not nil.
func frameBody(res *http.Response, hr *h1.Response, br *bufio.Reader, m *ResponseMem) {
	switch kind := hr.BodyKind([]byte(res.Request.Method)); {
	case kind == h1.BodyNone:
		res.Body = http.NoBody
		res.ContentLength = 0
		if res.Request.Method == http.MethodHead {
			res.ContentLength = hr.ContentLength // as declared
		}
	case kind == h1.BodyChunked:
		b := &chunkedBody{res: res}
		b.cr.Reset(br, 0)
		res.Body, res.ContentLength, res.TransferEncoding = b, -1, []string{"chunked"}
	case kind == h1.BodyLength:
		var b *lengthBody
		if m != nil {
			b = &m.length
		} else {
			b = new(lengthBody)
		}
		b.LengthReader = h1.LengthReader{R: br, Left: hr.ContentLength}
		res.Body, res.ContentLength = b, hr.ContentLength
	default:
		// Delimited by the connection's end, which is then not reused.
		res.Body, res.ContentLength, res.Close = io.NopCloser(br), -1, true
	}
}

// status returns "code reason", without allocating for the usual phrase.
func status(code int, reason string) string {
	if code < len(statusLines) && statusLines[code] != "" && reason == http.StatusText(code) {
		return statusLines[code]
	}
	return strconv.Itoa(code) + " " + reason
}

var statusLines = func() (t [600]string) {
	for code := range t {
		if text := http.StatusText(code); text != "" {
			t[code] = strconv.Itoa(code) + " " + text
		}
	}
	return t
}()

// lengthBody is a body of a declared length.
type lengthBody struct{ h1.LengthReader }

func (b *lengthBody) Close() error { return nil }

// chunkedBody is a chunked body; at its end its trailers go into the
// response's Trailer, as net/http does.
type chunkedBody struct {
	res *http.Response
	cr  h1.ChunkedReader
}

func (b *chunkedBody) Read(p []byte) (int, error) {
	n, err := b.cr.Read(p)
	if err == io.EOF {
		for _, f := range b.cr.Trailers() {
			if b.res.Trailer == nil {
				b.res.Trailer = http.Header{}
			}
			k := http.CanonicalHeaderKey(string(f.Name))
			b.res.Trailer[k] = append(b.res.Trailer[k], string(f.Value))
		}
	}
	return n, err
}

func (b *chunkedBody) Close() error { return nil }
