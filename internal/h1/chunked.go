package h1

import (
	"bufio"
	"io"
	"strconv"
)

// ChunkedReader decodes a chunked body (RFC 9112 §7.1) from a *bufio.Reader,
// strictly:
//
//   - a chunk size is 1 to 16 hex digits with a value up to 2⁶³-1, followed
//     directly by CRLF or by a chunk-ext ("5 " and "0x5" are refused);
//   - a chunk-ext follows the RFC grammar (";" name ["=" token or
//     quoted-string], BWS only before ";" or "=" or after them) and is at
//     most MaxChunkExt bytes; a chunk line is shorter than 4096 bytes;
//   - chunk data is followed by CRLF; every line ends in CRLF;
//   - the trailer section follows the header field rules, is at most
//     maxTrailerBytes long, and may not carry Content-Length,
//     Transfer-Encoding, Trailer or Host;
//   - like net/http, a body whose chunk framing outweighs its data by more
//     than 16 KiB (many tiny chunks, long extensions) is refused.
//
// The zero ChunkedReader is not usable; call Reset first. Read allocates
// nothing per chunk; the trailer buffer grows once to its largest size and
// is reused.
type ChunkedReader struct {
	br         *bufio.Reader
	state      chunkState
	n          int64 // unread data bytes in the current chunk
	excess     int64 // framing bytes not yet paid for by data (net/http's heuristic)
	maxTrailer int
	err        error // sticky: the error Read returns once the data runs out
	trailerBuf []byte
	trailers   []Field
}

type chunkState uint8

const (
	stateSize    chunkState = iota // before a chunk-size line
	stateData                      // inside chunk data
	stateDataEnd                   // before the CRLF after chunk data
	stateTrailer                   // before the trailer section
)

// MaxChunkExt is the longest chunk-ext accepted on one chunk line.
const MaxChunkExt = 1024

// DefaultMaxTrailerBytes is the trailer limit when Reset is given ≤ 0; it
// matches what net/http can take (its bufio.Reader's default size).
const DefaultMaxTrailerBytes = 4096

// maxChunkLine is net/http's limit on a chunk line without its CRLF.
const maxChunkLine = 4096

// maxExcess is net/http's limit on framing not paid for by data.
const maxExcess = 16 << 10

// Reset makes c read a new chunked body from br, with a trailer section of
// at most maxTrailerBytes including its final CRLF. It invalidates the
// trailers of the previous body.
func (c *ChunkedReader) Reset(br *bufio.Reader, maxTrailerBytes int) {
	if maxTrailerBytes <= 0 {
		maxTrailerBytes = DefaultMaxTrailerBytes
	}
	clear(c.trailers)
	*c = ChunkedReader{
		br:         br,
		maxTrailer: maxTrailerBytes,
		trailerBuf: c.trailerBuf[:0],
		trailers:   c.trailers[:0],
	}
}

// Trailers returns the trailer fields once Read has returned io.EOF. They
// alias c's buffer and are valid until the next Reset.
func (c *ChunkedReader) Trailers() []Field { return c.trailers }

// Read reads decoded body bytes into p. It returns io.EOF once the last
// chunk and the trailer section have been consumed, leaving br at the
// first byte after the body; a body cut short gives io.ErrUnexpectedEOF and
// malformed framing an *Error. Once it has data, Read returns rather than
// wait for the next chunk line to arrive.
func (c *ChunkedReader) Read(p []byte) (n int, err error) {
	if len(p) == 0 && c.err == nil {
		return 0, nil
	}
	for c.err == nil {
		switch c.state {
		case stateSize:
			if n > 0 && !c.lineBuffered() {
				return n, nil
			}
			c.err = c.readSize()
		case stateData:
			if len(p) == 0 {
				return n, nil // filled
			}
			k := len(p)
			if int64(k) > c.n {
				k = int(c.n)
			}
			m, err := c.br.Read(p[:k])
			n += m
			p = p[m:]
			c.n -= int64(m)
			if c.n == 0 {
				c.state = stateDataEnd
			}
			if err != nil {
				c.err = unexpected(err)
			} else if c.n > 0 {
				return n, nil // the next read could block
			}
		case stateDataEnd:
			if n > 0 && c.br.Buffered() < 2 {
				return n, nil
			}
			c.err = c.readDataEnd()
		case stateTrailer:
			if n > 0 && !c.emptyTrailerBuffered() {
				return n, nil
			}
			c.err = c.readTrailers()
		}
	}
	return n, c.err
}

// unexpected maps io.EOF inside a body to io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// lineBuffered reports whether a whole line is buffered, so reading it
// cannot block.
func (c *ChunkedReader) lineBuffered() bool {
	buf, _ := c.br.Peek(c.br.Buffered())
	for _, b := range buf {
		if b == '\n' {
			return true
		}
	}
	return false
}

// emptyTrailerBuffered reports whether the (common) empty trailer section
// is buffered.
func (c *ChunkedReader) emptyTrailerBuffered() bool {
	buf, _ := c.br.Peek(c.br.Buffered())
	return len(buf) >= 2 && buf[0] == '\r' && buf[1] == '\n'
}

// readLine returns the next line without its CRLF. The slice is valid
// until the next read from br.
func (c *ChunkedReader) readLine() ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	switch {
	case err == bufio.ErrBufferFull:
		return nil, errChunkLine
	case err != nil:
		return nil, unexpected(err)
	case len(line) < 2 || line[len(line)-2] != '\r':
		return nil, errBareLF
	}
	return line[:len(line)-2], nil
}

// readSize reads a chunk-size line.
func (c *ChunkedReader) readSize() error {
	line, err := c.readLine()
	if err != nil {
		return err
	}
	if len(line) >= maxChunkLine {
		return errChunkLine
	}
	var n uint64
	i := 0
	for ; i < len(line) && class[line[i]]&cHex != 0; i++ {
		if i == 16 || n > 1<<59-1 {
			return errChunkSize // more than 16 digits or over 2⁶³-1
		}
		n = n<<4 | uint64(unhex(line[i]))
	}
	if i == 0 {
		return errChunkSize
	}
	if ext := line[i:]; len(ext) > 0 {
		if ext[0] != ';' {
			return errChunkSize
		}
		if len(ext) > MaxChunkExt || !validChunkExt(ext) {
			return errChunkExt
		}
	}
	// net/http's defence against framing that costs more than the data
	// it carries: each chunk pays its line and CRLFs, earns 16 bytes
	// plus twice its data.
	c.excess += int64(len(line)) + 2
	if n >= 1<<40 {
		c.excess = 0
	} else {
		c.excess = max(c.excess-16-2*int64(n), 0)
	}
	if c.excess > maxExcess {
		return errChunkOverhead
	}
	c.n = int64(n)
	if n == 0 {
		c.state = stateTrailer
	} else {
		c.state = stateData
	}
	return nil
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// validChunkExt reports whether ext, which starts with ';', is a chunk-ext:
// *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ).
func validChunkExt(ext []byte) bool {
	for len(ext) > 0 {
		ext = skipBWSBefore(ext, ';')
		if len(ext) == 0 || ext[0] != ';' {
			return false
		}
		ext = skipOWS(ext[1:])
		i := 0
		for i < len(ext) && class[ext[i]]&cToken != 0 {
			i++
		}
		if i == 0 {
			return false
		}
		ext = skipBWSBefore(ext[i:], '=')
		if len(ext) == 0 || ext[0] != '=' {
			continue
		}
		ext = skipOWS(ext[1:])
		if len(ext) > 0 && ext[0] == '"' {
			i = quotedStringEnd(ext)
		} else {
			i = 0
			for i < len(ext) && class[ext[i]]&cToken != 0 {
				i++
			}
		}
		if i == 0 {
			return false
		}
		ext = ext[i:]
	}
	return true
}

// skipBWSBefore skips whitespace if next comes after it.
func skipBWSBefore(b []byte, next byte) []byte {
	s := skipOWS(b)
	if len(s) > 0 && s[0] == next {
		return s
	}
	return b
}

func skipOWS(b []byte) []byte {
	for len(b) > 0 && isOWS(b[0]) {
		b = b[1:]
	}
	return b
}

// quotedStringEnd returns the length of the quoted-string (RFC 9110
// §5.6.4) at the start of b, or 0 if there is none.
func quotedStringEnd(b []byte) int {
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			i++
			if i == len(b) || class[b[i]]&cValue == 0 {
				return 0
			}
		case class[c]&cValue == 0:
			return 0
		}
	}
	return 0
}

// readDataEnd reads the CRLF after chunk data.
func (c *ChunkedReader) readDataEnd() error {
	crlf, err := c.br.Peek(2)
	if err != nil {
		return unexpected(err)
	}
	if crlf[0] != '\r' || crlf[1] != '\n' {
		return errChunkEnd
	}
	c.br.Discard(2)
	c.state = stateSize
	return nil
}

// readTrailers reads the trailer section into c.trailerBuf, line by line
// (a line may be longer than br's buffer), and parses it with the header
// field rules. It returns io.EOF when the body is complete.
func (c *ChunkedReader) readTrailers() error {
	start := 0 // of the current line in trailerBuf
	for {
		part, err := c.br.ReadSlice('\n')
		if len(c.trailerBuf)+len(part) > c.maxTrailer {
			return errTrailerSize
		}
		c.trailerBuf = append(c.trailerBuf, part...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return unexpected(err)
		}
		line := c.trailerBuf[start:]
		if len(line) < 2 || line[len(line)-2] != '\r' {
			return errBareLF
		}
		if len(line) == 2 {
			break
		}
		start = len(c.trailerBuf)
	}
	fields, _, err := parseFields(c.trailerBuf, 0, c.trailers)
	c.trailers = fields
	if err != nil {
		if err == errTooManyFields {
			return errTrailerSize
		}
		return err
	}
	for _, f := range fields {
		if equalFold(f.Name, "content-length") || equalFold(f.Name, "transfer-encoding") ||
			equalFold(f.Name, "trailer") || equalFold(f.Name, "host") {
			return errTrailerField
		}
	}
	return io.EOF
}

// AppendChunkHeader appends the chunk-size line for n bytes of data,
// "<hex>\r\n". With n = 0 it is the last-chunk line; AppendLastChunk ends
// the body properly.
func AppendChunkHeader(dst []byte, n int) []byte {
	dst = strconv.AppendUint(dst, uint64(n), 16)
	return append(dst, '\r', '\n')
}

// AppendChunk appends data as one chunk. Empty data appends nothing, since
// a zero-size chunk would end the body.
func AppendChunk(dst, data []byte) []byte {
	if len(data) == 0 {
		return dst
	}
	dst = AppendChunkHeader(dst, len(data))
	dst = append(dst, data...)
	return append(dst, '\r', '\n')
}

// AppendLastChunk appends the last chunk, the trailer fields (as given: the
// caller validates them) and the CRLF that ends the body.
func AppendLastChunk(dst []byte, trailers []Field) []byte {
	dst = append(dst, "0\r\n"...)
	for _, f := range trailers {
		dst = append(dst, f.Name...)
		dst = append(dst, ": "...)
		dst = append(dst, f.Value...)
		dst = append(dst, '\r', '\n')
	}
	return append(dst, '\r', '\n')
}
