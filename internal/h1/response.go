package h1

import "bytes"

// Response is a parsed response head, reused like Request.
type Response struct {
	Minor  int // 0 or 1: HTTP/1.0 or HTTP/1.1
	Status int // 100 to 999
	Reason []byte
	Fields []Field

	// ContentLength is the Content-Length, -1 if there is none. It is
	// reported as sent even where the status or request method means
	// there is no body; see BodyKind.
	ContentLength int64
	Chunked       bool
	// Close reports whether Connection has "close", or the response is
	// HTTP/1.0 without keep-alive. A body delimited by the close
	// (BodyUntilClose) closes the connection too.
	Close     bool
	KeepAlive []byte // the value of the first Keep-Alive field, if any
}

// ParseResponse parses the response head at the start of buf, with the
// contract of ParseRequest. No empty lines may precede the status line.
func ParseResponse(buf []byte, r *Response, maxHeaderBytes int) (n int, err error) {
	r.reset()
	b, max := window(buf, maxHeaderBytes)
	n, err = r.parse(b)
	if err == errShort {
		return 0, short(buf, max)
	}
	return n, err
}

func (r *Response) reset() {
	clear(r.Fields)
	*r = Response{Fields: r.Fields[:0], ContentLength: -1}
}

func (r *Response) parse(b []byte) (int, error) {
	i, err := r.parseLine(b)
	if err != nil {
		return 0, err
	}
	r.Fields, i, err = parseFields(b, i, r.Fields)
	if err != nil {
		return 0, err
	}
	var fr framing
	fr.inspect(r.Fields)
	if fr.badTrailer {
		return 0, errTrailerDeclared
	}
	chunked, err := fr.chunked(r.Minor)
	if err != nil {
		return 0, err
	}
	// Identical repeated Content-Length values are taken as one, as
	// net/http and RFC 9110 §8.6 allow; a request gets no such leeway.
	cl, err := fr.contentLength(true)
	if err != nil {
		return 0, err
	}
	r.Chunked, r.ContentLength = chunked, cl
	r.Close = fr.close || r.Minor == 0 && !fr.keepAlive
	r.KeepAlive = fr.keepAliveField
	return i, nil
}

// parseLine parses the status line: HTTP-version SP 3DIGIT [SP reason]
// CRLF. net/http also takes a missing reason with its space, and so do we.
func (r *Response) parseLine(b []byte) (int, error) {
	e := bytes.IndexByte(b, '\n')
	if e < 0 {
		return 0, errShort
	}
	if e == 0 || b[e-1] != '\r' {
		return 0, errBareLF
	}
	line := b[:e-1]
	if len(line) < len("HTTP/1.1 200") || line[8] != ' ' {
		return 0, errStatusLine
	}
	minor, err := parseVersion(line[:8])
	if err != nil {
		return 0, err
	}
	c := line[9:12]
	if c[0] < '1' || c[0] > '9' || class[c[1]]&cDigit == 0 || class[c[2]]&cDigit == 0 {
		return 0, errStatusLine
	}
	r.Minor = minor
	r.Status = int(c[0]-'0')*100 + int(c[1]-'0')*10 + int(c[2]-'0')
	if len(line) > 12 {
		if line[12] != ' ' || scanValue(line, 13) != len(line) {
			return 0, errStatusLine
		}
		r.Reason = line[13:]
	}
	return e + 1, nil
}

// Get returns the value of the first field named name, ignoring ASCII case,
// or nil.
func (r *Response) Get(name string) []byte { return get(r.Fields, name) }

// BodyKind says how the body of a response to a request with the given
// method is delimited (RFC 9112 §6.3).
func (r *Response) BodyKind(method []byte) BodyKind {
	switch {
	case !BodyAllowed(method, r.Status):
		return BodyNone
	case r.Chunked:
		return BodyChunked
	case r.ContentLength == 0:
		return BodyNone
	case r.ContentLength > 0:
		return BodyLength
	}
	return BodyUntilClose
}

// BodyKind is how a message body is delimited.
type BodyKind uint8

const (
	BodyNone       BodyKind = iota // no body
	BodyChunked                    // chunked transfer coding: read it with a ChunkedReader
	BodyLength                     // exactly ContentLength bytes
	BodyUntilClose                 // everything until the connection closes (responses only)
)

// BodyAllowed reports whether a response with the given status to a
// request with the given method has a body: not for HEAD, not for 1xx, 204
// and 304, and not for a 2xx to CONNECT, which starts a tunnel
// (RFC 9112 §6.3).
func BodyAllowed(method []byte, status int) bool {
	switch {
	case string(method) == "HEAD", status < 200, status == 204, status == 304:
		return false
	case string(method) == "CONNECT" && status < 300:
		return false
	}
	return true
}
