package h1

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

// chunkedTests are chunked bodies and what a ChunkedReader with a 4096-byte
// bufio.Reader and the default trailer limit makes of them. They seed the
// fuzz corpus.
var chunkedTests = []struct {
	name, in, want string
}{
	{"one chunk", "5\r\nhello\r\n0\r\n\r\n", `body="hello"`},
	{"two chunks", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", `body="hello world"`},
	{"hex digits", "A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n", `body="01234567890123456789"`},
	{"leading zeros", "005\r\nhello\r\n000\r\n\r\n", `body="hello"`},
	{"16 digits", "0000000000000005\r\nhello\r\n0\r\n\r\n", `body="hello"`},
	{"empty body", "0\r\n\r\n", `body=""`},
	{"what follows", "0\r\n\r\nGET / HTTP/1.1\r\n", `body="" rest="GET / HTTP/1.1\r\n"`},
	{"extension", "5;a\r\nhello\r\n0;b=c\r\n\r\n", `body="hello"`},
	{"extensions with BWS", "5; a = b ;c=\"q \\\" s\"\r\nhello\r\n0\r\n\r\n", `body="hello"`},
	{"trailers", "5\r\nhello\r\n0\r\nX-Sum: abc \r\nexpires:\r\n\r\n", `body="hello" X-Sum="abc" expires=""`},

	{"hex prefix", "0x5\r\nhello\r\n0\r\n\r\n", "400"},
	{"negative", "-1\r\nhello\r\n0\r\n\r\n", "400"},
	{"plus", "+5\r\nhello\r\n0\r\n\r\n", "400"},
	{"leading space", " 5\r\nhello\r\n0\r\n\r\n", "400"},
	{"trailing space", "5 \r\nhello\r\n0\r\n\r\n", "400"},
	{"space before extension", "5 ;a\r\nhello\r\n0\r\n\r\n", "400"},
	{"empty size", "\r\nhello\r\n0\r\n\r\n", "400"},
	{"17 digits", "00000000000000005\r\nhello\r\n0\r\n\r\n", "400"},
	{"over int64", "8000000000000000\r\nhello\r\n0\r\n\r\n", "400"},
	{"huge", "ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n", "400"},
	{"int64 max but short", "7fffffffffffffff\r\nhello", "unexpected EOF"},
	{"empty extension name", "5;\r\nhello\r\n0\r\n\r\n", "400"},
	{"extension without value", "5;a=\r\nhello\r\n0\r\n\r\n", "400"},
	{"extension trailing space", "5;a \r\nhello\r\n0\r\n\r\n", "400"},
	{"extension unterminated quote", "5;a=\"b\r\nhello\r\n0\r\n\r\n", "400"},
	{"extension CTL", "5;a=b\x01\r\nhello\r\n0\r\n\r\n", "400"},
	{"extension too long", "5;a=" + strings.Repeat("b", MaxChunkExt) + "\r\nhello\r\n0\r\n\r\n", "400"},
	{"chunk line longer than the buffer", "5;a=" + strings.Repeat("b", 5000) + "\r\nhello\r\n0\r\n\r\n", "400"},
	{"CR in size line", "5\r\r\nhello\r\n0\r\n\r\n", "400"},
	{"no CRLF after data", "5\r\nhelloX\r\n0\r\n\r\n", "400"},
	{"LF after data", "5\r\nhello\n0\r\n\r\n", "400"},
	{"data longer than the size", "3\r\nhello\r\n0\r\n\r\n", "400"},
	{"bare LF size line", "5\nhello\r\n0\r\n\r\n", "400"},
	{"bare LF last chunk", "5\r\nhello\r\n0\n\r\n", "400"},
	{"bare LF end", "5\r\nhello\r\n0\r\n\n", "400"},
	{"bare LF trailer", "0\r\nX: y\n\r\n", "400"},
	{"bare CR trailer", "0\r\nX: y\rz\r\n\r\n", "400"},
	{"obs-fold trailer", "0\r\nX: y\r\n z\r\n\r\n", "400"},
	{"NUL in trailer", "0\r\nX: \x00\r\n\r\n", "400"},
	{"space before colon in trailer", "0\r\nX : y\r\n\r\n", "400"},
	{"Content-Length trailer", "0\r\nContent-Length: 5\r\n\r\n", "400"},
	{"Transfer-Encoding trailer", "0\r\ntransfer-encoding: chunked\r\n\r\n", "400"},
	{"Host trailer", "0\r\nHost: b\r\n\r\n", "400"},
	{"trailer too large", "0\r\nX: " + strings.Repeat("v", DefaultMaxTrailerBytes) + "\r\n\r\n", "431"},
	{"too many tiny chunks", strings.Repeat("1;aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\nx\r\n", 1000) + "0\r\n\r\n", "400"},
	{"empty input", "", "unexpected EOF"},
	{"cut in size line", "5", "unexpected EOF"},
	{"cut in data", "5\r\nhel", "unexpected EOF"},
	{"cut after data", "5\r\nhello", "unexpected EOF"},
	{"cut after CR", "5\r\nhello\r", "unexpected EOF"},
	{"cut before last chunk", "5\r\nhello\r\n", "unexpected EOF"},
	{"no end of trailers", "0\r\n", "unexpected EOF"},
	{"cut in trailer", "0\r\nX: y\r\n", "unexpected EOF"},
}

func TestChunkedReader(t *testing.T) {
	for _, tt := range chunkedTests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decodeChunked(tt.in, 4096, 0); got != tt.want {
				t.Errorf("decode %.80q\n got %s\nwant %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestChunkedTrailerLimit(t *testing.T) {
	body := "0\r\nX: 12345\r\n\r\n" // trailer section: 12 bytes
	if got := decodeChunked(body, 4096, 12); got != `body="" X="12345"` {
		t.Errorf("at the limit: %s", got)
	}
	if got := decodeChunked(body, 4096, 11); got != "431" {
		t.Errorf("over the limit: %s", got)
	}
	// A trailer line may be longer than the bufio.Reader's buffer.
	long := "0\r\nX: " + strings.Repeat("v", 100) + "\r\n\r\n"
	if got := decodeChunked(long, 16, 200); got != `body="" X="`+strings.Repeat("v", 100)+`"` {
		t.Errorf("long trailer line: %s", got)
	}
	if got := decodeChunked("0\r\n"+fields(MaxFields+1)+"\r\n", 4096, 1<<20); got != "431" {
		t.Errorf("too many trailer fields: %s", got)
	}
}

// stepReader returns one piece per Read and then errWouldBlock: a Read that
// reaches it would have blocked on a network connection.
type stepReader struct{ pieces []string }

var errWouldBlock = errors.New("read would block")

func (s *stepReader) Read(p []byte) (int, error) {
	if len(s.pieces) == 0 {
		return 0, errWouldBlock
	}
	n := copy(p, s.pieces[0])
	s.pieces[0] = s.pieces[0][n:]
	if s.pieces[0] == "" {
		s.pieces = s.pieces[1:]
	}
	return n, nil
}

// TestChunkedReadDoesNotWait checks that Read returns the data it has
// rather than read on into the next chunk line, and that it reports io.EOF
// with the last data when the end of the body is already buffered.
func TestChunkedReadDoesNotWait(t *testing.T) {
	var c ChunkedReader
	src := &stepReader{pieces: []string{"5\r\nhello\r\n", "3\r\nabc", "\r\n0\r\n\r\n"}}
	c.Reset(bufio.NewReader(src), 0)
	p := make([]byte, 64)
	steps := []struct {
		data string
		err  error
	}{
		{"hello", nil},
		{"abc", nil},
		{"", io.EOF},
	}
	for i, want := range steps {
		n, err := c.Read(p)
		if string(p[:n]) != want.data || err != want.err {
			t.Fatalf("Read %d = %q, %v; want %q, %v", i, p[:n], err, want.data, want.err)
		}
	}

	c.Reset(bufio.NewReader(&stepReader{pieces: []string{"2\r\nhi\r\n0\r\n\r\n"}}), 0)
	if n, err := c.Read(p); string(p[:n]) != "hi" || err != io.EOF {
		t.Errorf("Read = %q, %v; want hi with io.EOF", p[:n], err)
	}
}

// TestChunkedSmallReads reads a body one byte at a time.
func TestChunkedSmallReads(t *testing.T) {
	var c ChunkedReader
	c.Reset(bufio.NewReader(strings.NewReader("5\r\nhello\r\n1;x=y\r\n!\r\n0\r\nA: b\r\n\r\n")), 0)
	var got []byte
	var p [1]byte
	for {
		n, err := c.Read(p[:])
		got = append(got, p[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if string(got) != "hello!" || len(c.Trailers()) != 1 || string(c.Trailers()[0].Value) != "b" {
		t.Errorf("got %q, trailers %q", got, c.Trailers())
	}
	if n, err := c.Read(p[:]); n != 0 || err != io.EOF {
		t.Errorf("Read after EOF = %d, %v", n, err)
	}
}

func TestAppendChunk(t *testing.T) {
	var b []byte
	b = AppendChunk(b, []byte("hello"))
	b = AppendChunk(b, nil)
	b = AppendChunkHeader(b, 300)
	b = append(b, strings.Repeat("x", 300)...)
	b = append(b, "\r\n"...)
	b = AppendLastChunk(b, []Field{{[]byte("X-Sum"), []byte("1")}})
	want := "5\r\nhello\r\n12c\r\n" + strings.Repeat("x", 300) + "\r\n0\r\nX-Sum: 1\r\n\r\n"
	if string(b) != want {
		t.Fatalf("encoded %q", b)
	}
	if got := decodeChunked(string(b), 4096, 0); got != `body="hello`+strings.Repeat("x", 300)+`" X-Sum="1"` {
		t.Errorf("round trip: %s", got)
	}
}

func TestChunkedReadEmpty(t *testing.T) {
	var c ChunkedReader
	c.Reset(bufio.NewReader(&stepReader{}), 0)
	if n, err := c.Read(nil); n != 0 || err != nil {
		t.Errorf("Read(nil) = %d, %v; want 0, nil without reading", n, err)
	}
}
