package upstream

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/switchboard-proxy/switchboard/internal/h1"
)

// h1Request is one request prepared for the HTTP/1.1 transport: its head,
// checked and encoded once, and how its body is framed. It may be sent more
// than once (see shouldReplay).
type h1Request struct {
	req     *http.Request
	mem     *ResponseMem // the caller's room for the response; nil: none
	head    *[]byte      // the encoded head, from headPool
	body    io.Reader    // nil: no body
	length  int64        // body bytes when not chunked
	chunked bool
	trailer http.Header // sent after a chunked body
	// prefix holds body bytes read before the head was encoded (see
	// probeBody); they are sent first.
	prefix []byte
	// bodyRead is set once anything was read from body, or a
	// bodyWriter took it: the body can then only be sent again through
	// req.GetBody.
	bodyRead bool
	// closer is the body to close at the end: req.Body, or what GetBody
	// gave for a replay.
	closer io.Closer
	close  bool // the request asks for the connection to be closed
	// replayable reports whether the request may be sent again after
	// it may have reached the upstream: net/http's Request.isReplayable.
	replayable bool
}

// maxResponseHead bounds a response head (status line and header fields),
// like net/http's Transport.MaxResponseHeaderBytes, as configured before.
const maxResponseHead = 1 << 20

var (
	errHeadTooLarge = errors.New("upstream response head larger than 1 MiB")
	errBodyTooLong  = errors.New("request body longer than its Content-Length")
)

// headPool holds buffers for request heads.
var headPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// copyPool holds buffers for copying request bodies.
var copyPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// newH1Request checks req and encodes its head. Nothing is sent: a request
// the transport refuses (an invalid header field, a bad Host) fails here,
// before a connection is even taken. The returned request must be released.
// With m, the caller's ResponseMem (nil for none), the response is built in
// m, and so is the request if it has no body.
func newH1Request(req *http.Request, m *ResponseMem) (*h1Request, error) {
	var r *h1Request
	if m != nil && (req.Body == nil || req.Body == http.NoBody) {
		r = &m.req
	} else {
		r = new(h1Request)
	}
	*r = h1Request{req: req, mem: m, head: headPool.Get().(*[]byte), closer: req.Body}
	if err := r.frame(); err != nil {
		r.release()
		return nil, err
	}
	head, err := appendHead((*r.head)[:0], r)
	if err != nil {
		r.release()
		return nil, err
	}
	*r.head = head
	r.replayable = isReplayable(req)
	return r, nil
}

// release gives the head's buffer back. Huge heads are not kept.
func (r *h1Request) release() {
	if r.head != nil && cap(*r.head) <= 64<<10 {
		headPool.Put(r.head)
	}
	r.head = nil
}

// frame decides how the body is sent, by net/http's rules: a known length
// as Content-Length, an unknown one chunked; "Content-Length: 0" for a
// bodyless POST, PUT or PATCH, as many servers expect.
func (r *h1Request) frame() error {
	req := r.req
	if req.Body != nil && req.Body != http.NoBody {
		r.body = req.Body
	}
	switch {
	case r.body == nil && req.ContentLength != 0:
		return fmt.Errorf("request has Content-Length %d but no body", req.ContentLength)
	case r.body == nil:
		r.length = 0
	case req.ContentLength > 0:
		r.length = req.ContentLength
	default:
		// Unknown length (or 0 with a body, which net/http also
		// takes as unknown).
		if requestMethodUsuallyLacksBody(req.Method) {
			if err := r.probeBody(); err != nil {
				return err
			}
			if r.body == nil {
				break
			}
		}
		r.chunked = true
		r.length = -1
		if len(req.Trailer) > 0 {
			r.trailer = req.Trailer
		}
	}
	r.close = req.Close || h1.HasToken(req.Header["Connection"], "close")
	return nil
}

// probeBody reads the start of a body of unknown length on a request whose
// method usually has none: a GET with an empty body must not go out as an
// (empty) chunked body, which confuses servers (net/http does the same, see
// its transferWriter.probeRequestBody). Unlike net/http it waits for the
// read, which cannot be bounded without another goroutine; a body that
// blocks here delays the request until it sends or fails.
func (r *h1Request) probeBody() error {
	bp := copyPool.Get().(*[]byte)
	defer copyPool.Put(bp)
	for range 100 {
		n, err := r.body.Read(*bp)
		r.bodyRead = true
		if n > 0 {
			r.prefix = append([]byte(nil), (*bp)[:n]...)
			if err == io.EOF {
				r.body = eofReader{}
				return nil
			}
			if err != nil {
				return fmt.Errorf("read request body: %w", err)
			}
			return nil
		}
		switch {
		case err == io.EOF:
			r.body = nil // empty: send no body at all
			return nil
		case err != nil:
			return fmt.Errorf("read request body: %w", err)
		}
	}
	return fmt.Errorf("read request body: %w", io.ErrNoProgress)
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// requestMethodUsuallyLacksBody is net/http's list of methods whose
// requests normally have no body.
func requestMethodUsuallyLacksBody(method string) bool {
	switch method {
	case "", "GET", "HEAD", "DELETE", "OPTIONS", "PROPFIND", "SEARCH":
		return true
	}
	return false
}

// isReplayable is net/http's Request.isReplayable: the request may be sent
// again even though it may have reached the upstream, because its method is
// safe or it carries an idempotency key, and its body can be had again.
func isReplayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	switch req.Method {
	case "", "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	_, key := req.Header["Idempotency-Key"]
	_, xkey := req.Header["X-Idempotency-Key"]
	return key || xkey
}

// appendHead appends r's request line and header section to b. It refuses
// anything that could split or smuggle a request: a control character in
// the target, an invalid method, Host, field name or value.
func appendHead(b []byte, r *h1Request) ([]byte, error) {
	req := r.req
	if req.URL == nil {
		return nil, errors.New("request has no URL")
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	if !h1.IsToken(method) {
		return nil, fmt.Errorf("invalid request method %q", method)
	}
	b = append(b, method...)
	b = append(b, ' ')
	start := len(b)
	b = appendRequestURI(b, req.URL)
	for _, c := range b[start:] {
		if c <= ' ' || c == 0x7f {
			return nil, fmt.Errorf("invalid character %q in request target", c)
		}
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if host == "" || !validHost(host) {
		return nil, fmt.Errorf("invalid Host %q", host)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	for k, vv := range req.Header {
		if k == "User-Agent" {
			// Only the first value, as net/http; an empty one means
			// no User-Agent at all.
			if len(vv) == 0 || vv[0] == "" {
				continue
			}
			vv = vv[:1]
		} else if isFramingField(k) {
			continue // the transport's own, from the request's fields
		}
		var err error
		if b, err = appendField(b, k, vv); err != nil {
			return nil, err
		}
	}
	if r.close && !h1.HasToken(req.Header["Connection"], "close") {
		b = append(b, "Connection: close\r\n"...)
	}
	switch {
	case r.chunked:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
		var err error
		if b, err = appendTrailerNames(b, r.trailer); err != nil {
			return nil, err
		}
	case r.length > 0 || r.body == nil && (method == "POST" || method == "PUT" || method == "PATCH"):
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, r.length, 10)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...), nil
}

// appendRequestURI appends u's origin-form target, as URL.RequestURI
// returns it, without allocating in the common case.
func appendRequestURI(b []byte, u *url.URL) []byte {
	if u.Opaque != "" {
		return append(b, u.RequestURI()...)
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	b = append(b, p...)
	if u.ForceQuery || u.RawQuery != "" {
		b = append(b, '?')
		b = append(b, u.RawQuery...)
	}
	return b
}

// isFramingField reports whether the header field k is one the transport
// writes itself (or, for Trailer, from Request.Trailer), in any case
// spelling: a second Content-Length or Transfer-Encoding would let the
// upstream frame the body otherwise than we do.
func isFramingField(k string) bool {
	switch len(k) {
	case 4:
		return strings.EqualFold(k, "Host")
	case 7:
		return strings.EqualFold(k, "Trailer")
	case 14:
		return strings.EqualFold(k, "Content-Length")
	case 17:
		return strings.EqualFold(k, "Transfer-Encoding")
	}
	return false
}

// appendField appends the field k with each of vv, trimmed of surrounding
// blanks as net/http does.
func appendField(b []byte, k string, vv []string) ([]byte, error) {
	if !h1.IsToken(k) {
		return nil, fmt.Errorf("invalid header field name %q", k)
	}
	for _, v := range vv {
		v = strings.Trim(v, " \t")
		if !validFieldValue(v) {
			return nil, fmt.Errorf("invalid value for header field %q", k)
		}
		b = append(b, k...)
		b = append(b, ": "...)
		b = append(b, v...)
		b = append(b, "\r\n"...)
	}
	return b, nil
}

// appendTrailerNames announces the trailer fields in a Trailer field.
func appendTrailerNames(b []byte, trailer http.Header) ([]byte, error) {
	if len(trailer) == 0 {
		return b, nil
	}
	keys := make([]string, 0, len(trailer))
	for k := range trailer {
		k = http.CanonicalHeaderKey(k)
		if !h1.IsToken(k) || isFramingField(k) {
			return nil, fmt.Errorf("invalid trailer field name %q", k)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, "Trailer: "...)
	b = append(b, strings.Join(keys, ", ")...)
	return append(b, "\r\n"...), nil
}

// appendTrailers appends the trailer section of a chunked body, values as
// they are now (a relayed request's trailers arrive with its body's end).
func appendTrailers(b []byte, trailer http.Header) ([]byte, error) {
	for k, vv := range trailer {
		if isFramingField(k) {
			return nil, fmt.Errorf("invalid trailer field name %q", k)
		}
		var err error
		if b, err = appendField(b, k, vv); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// bodyReadError is a failure to read the request body: the request's
// source failed, not the upstream.
type bodyReadError struct{ err error }

func (e *bodyReadError) Error() string { return "read request body: " + e.err.Error() }
func (e *bodyReadError) Unwrap() error { return e.err }

// rewind readies the body to be sent again; it reports false when it
// cannot be.
func (r *h1Request) rewind() bool {
	if !r.bodyRead {
		return true
	}
	if r.req.GetBody == nil {
		return false
	}
	body, err := r.req.GetBody()
	if err != nil {
		return false
	}
	r.closeBody()
	r.closer = body
	r.body, r.prefix, r.bodyRead = body, nil, false
	if body == http.NoBody {
		r.body = nil
	}
	return true
}

// closeBody closes the request's body, as RoundTrip must.
func (r *h1Request) closeBody() {
	if r.closer != nil {
		r.closer.Close()
		r.closer = nil
	}
}

// validFieldValue reports whether v may be sent as a field value: no
// control character but horizontal tab (so no CR, LF or NUL).
func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// validHost reports whether h may be sent as a Host field: the characters
// of a host (name, IPv4, bracketed IPv6 with a zone) and port, as
// net/http's httpguts.ValidHostHeader allows.
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		if !hostChar[h[i]] {
			return false
		}
	}
	return true
}

// hostChar are the bytes validHost accepts.
var hostChar = charSet("!$%&'()*+,-.:;=[]_~")

// charSet returns a table of the ASCII letters and digits and extra.
func charSet(extra string) (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range extra {
		t[c] = true
	}
	return t
}
