package h1

import "bytes"

// Request is a parsed request head. Its slices alias the buffer given to
// ParseRequest and are valid while that buffer is. Reuse a Request across
// requests: ParseRequest resets it and reuses the capacity of Fields, so it
// allocates nothing once that capacity suffices. After an error its
// contents are unspecified.
type Request struct {
	Method []byte
	Target []byte // the raw request-target
	Minor  int    // 0 or 1: HTTP/1.0 or HTTP/1.1
	Fields []Field

	// Host is the value of the single Host field, nil if there is none
	// (allowed in HTTP/1.0 only). Where the target has an authority
	// (absolute-form, or authority-form for CONNECT), a Host field must
	// equal it, ignoring case.
	Host          []byte
	ContentLength int64 // -1 if there is no Content-Length
	Chunked       bool  // Transfer-Encoding: chunked, the only coding accepted
	// Close reports whether the connection must close after this
	// exchange: Connection: close, or HTTP/1.0 without keep-alive.
	Close bool
	// Upgrade reports whether Connection has the "upgrade" option and an
	// Upgrade field is present.
	Upgrade   bool
	Expect100 bool // Expect: 100-continue
}

// maxLeadingEmptyLines is how many CRLFs may precede the request line.
// RFC 9112 §2.2 says a server SHOULD ignore at least one; net/http's server
// skips up to four CR or LF bytes after a POST (and ReadRequest none), so
// two CRLFs stay within what it takes.
const maxLeadingEmptyLines = 2

// ParseRequest parses the request head at the start of buf: up to two
// empty lines (CRLF), the request line, the field lines and the empty line
// that ends them. It returns the length n of all that; the body, if any,
// starts at buf[n].
//
// If buf ends before the head does, ParseRequest returns ErrIncomplete
// while len(buf) < maxHeaderBytes, and a 431 *Error once buf holds
// maxHeaderBytes bytes or more: a head, counted from buf[0] through its
// final CRLF, may be at most maxHeaderBytes long (DefaultMaxHeaderBytes if
// maxHeaderBytes ≤ 0). Bytes past a complete head are not looked at. A
// malformed head is reported as soon as the offending line is complete,
// with an *Error.
func ParseRequest(buf []byte, r *Request, maxHeaderBytes int) (n int, err error) {
	r.reset()
	b, max := window(buf, maxHeaderBytes)
	n, err = r.parse(b)
	if err == errShort {
		return 0, short(buf, max)
	}
	return n, err
}

// window returns the part of buf a head may occupy and the limit used.
func window(buf []byte, maxHeaderBytes int) ([]byte, int) {
	if maxHeaderBytes <= 0 {
		maxHeaderBytes = DefaultMaxHeaderBytes
	}
	if len(buf) > maxHeaderBytes {
		buf = buf[:maxHeaderBytes]
	}
	return buf, maxHeaderBytes
}

// short turns "the head did not end within the window" into the error for
// the caller.
func short(buf []byte, max int) error {
	if len(buf) >= max {
		return errTooLarge
	}
	return ErrIncomplete
}

func (r *Request) reset() {
	clear(r.Fields) // drop references into the previous buffer
	*r = Request{Fields: r.Fields[:0], ContentLength: -1}
}

func (r *Request) parse(b []byte) (int, error) {
	i := 0
	for k := 0; k < maxLeadingEmptyLines && i < len(b) && b[i] == '\r'; k++ {
		if i+1 == len(b) {
			return 0, errShort
		}
		if b[i+1] != '\n' {
			break
		}
		i += 2
	}
	i, err := r.parseLine(b, i)
	if err != nil {
		return 0, err
	}
	authority, err := checkTarget(r.Method, r.Target)
	if err != nil {
		return 0, err
	}
	r.Fields, i, err = parseFields(b, i, r.Fields)
	if err != nil {
		return 0, err
	}
	var fr framing
	fr.inspect(r.Fields)
	return i, r.frame(&fr, authority)
}

// parseLine parses the request line at b[i:]: method SP request-target SP
// HTTP-version CRLF, with single spaces (RFC 9112 §3). It returns the index
// of the first field line.
func (r *Request) parseLine(b []byte, i int) (int, error) {
	j := i
	for j < len(b) && class[b[j]]&cToken != 0 {
		j++
	}
	switch {
	case j == len(b):
		return 0, errShort
	case j == i || b[j] == '\r' || b[j] == '\n':
		return 0, errRequestLine
	case b[j] != ' ':
		return 0, errMethod
	}
	r.Method = b[i:j]
	i = j + 1
	j = scanTarget(b, i)
	switch {
	case j == len(b):
		return 0, errShort
	case j == i || b[j] == '\r' || b[j] == '\n':
		// An empty target (two spaces) or no version (HTTP/0.9).
		return 0, errRequestLine
	case b[j] != ' ':
		return 0, errTarget
	}
	r.Target = b[i:j]
	i = j + 1
	e := bytes.IndexByte(b[i:], '\n')
	if e < 0 {
		return 0, errShort
	}
	e += i
	if b[e-1] != '\r' {
		return 0, errBareLF
	}
	minor, err := parseVersion(b[i : e-1])
	if err != nil {
		return 0, err
	}
	r.Minor = minor
	return e + 1, nil
}

// parseVersion parses HTTP-version and returns its minor version. Versions
// that are well formed but not 1.0 or 1.1 get status 505.
func parseVersion(v []byte) (int, error) {
	switch string(v) {
	case "HTTP/1.1":
		return 1, nil
	case "HTTP/1.0":
		return 0, nil
	}
	if len(v) == 8 && string(v[:5]) == "HTTP/" && v[6] == '.' &&
		class[v[5]]&cDigit != 0 && class[v[7]]&cDigit != 0 {
		return 0, errVersionNot1
	}
	return 0, errVersion
}

// frame applies the framing and routing fields.
func (r *Request) frame(fr *framing, authority []byte) error {
	switch {
	case fr.hosts > 1:
		return errManyHost
	case fr.hosts == 0 && r.Minor == 1:
		return errNoHost
	case fr.hosts == 1 && len(fr.host) > 0 && !validAuthority(fr.host, false):
		return errHost
	case authority != nil && fr.hosts == 1 && !equalFoldBytes(authority, fr.host):
		// RFC 9112 §3.2: the client MUST send a Host identical to the
		// target's authority. Recipients disagree on which one wins
		// (RFC 9112 §3.2.2 says the target), so a proxy refuses both.
		return errHostMismatch
	case fr.badTrailer:
		return errTrailerDeclared
	}
	r.Host = fr.host
	chunked, err := fr.chunked(r.Minor)
	if err != nil {
		return err
	}
	cl, err := fr.contentLength(false)
	if err != nil {
		return err
	}
	r.Chunked, r.ContentLength = chunked, cl
	r.Close = fr.close || r.Minor == 0 && !fr.keepAlive
	r.Upgrade = fr.upgrade && fr.upgrades > 0
	r.Expect100 = fr.expect100
	return nil
}

// Get returns the value of the first field named name, ignoring ASCII case,
// or nil.
func (r *Request) Get(name string) []byte { return get(r.Fields, name) }

// BodyKind says how the request body is delimited (RFC 9112 §6.3): chunked,
// by Content-Length, or absent (no framing field, or Content-Length: 0).
func (r *Request) BodyKind() BodyKind {
	switch {
	case r.Chunked:
		return BodyChunked
	case r.ContentLength > 0:
		return BodyLength
	}
	return BodyNone
}
