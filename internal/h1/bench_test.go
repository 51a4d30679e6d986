package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// typicalGet is a browser-like GET with eight fields.
const typicalGet = "GET /api/v1/items?id=12345&sort=desc HTTP/1.1\r\n" +
	"Host: api.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n" +
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
	"Accept-Language: en-US,en;q=0.5\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Connection: keep-alive\r\n" +
	"Cookie: session=abcdef0123456789; theme=dark\r\n" +
	"Cache-Control: max-age=0\r\n" +
	"\r\n"

// typicalResponse is an API response head with eight fields.
const typicalResponse = "HTTP/1.1 200 OK\r\n" +
	"Date: Mon, 02 Jan 2006 15:04:05 GMT\r\n" +
	"Content-Type: application/json; charset=utf-8\r\n" +
	"Content-Length: 1234\r\n" +
	"Connection: keep-alive\r\n" +
	"Cache-Control: no-cache, no-store\r\n" +
	"Server: nginx\r\n" +
	"Vary: Accept-Encoding\r\n" +
	"X-Request-Id: 0b4c7e0e-5b8a-4f7e-9a43-1f0c2e7d9a10\r\n" +
	"\r\n"

// chunkedBody is 64 KiB in 16 chunks of 4 KiB, with a trailer.
var chunkedBody = func() []byte {
	var b []byte
	chunk := bytes.Repeat([]byte("x"), 4096)
	for range 16 {
		b = AppendChunk(b, chunk)
	}
	return AppendLastChunk(b, []Field{{[]byte("X-Checksum"), []byte("abc")}})
}()

func BenchmarkParseRequest(b *testing.B) {
	buf := []byte(typicalGet)
	var r Request
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := ParseRequest(buf, &r, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNetHTTPReadRequest is the same head through http.ReadRequest,
// for comparison.
func BenchmarkNetHTTPReadRequest(b *testing.B) {
	src := strings.NewReader(typicalGet)
	br := bufio.NewReader(src)
	b.ReportAllocs()
	b.SetBytes(int64(len(typicalGet)))
	for b.Loop() {
		src.Reset(typicalGet)
		br.Reset(src)
		if _, err := http.ReadRequest(br); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseResponse(b *testing.B) {
	buf := []byte(typicalResponse)
	var r Response
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := ParseResponse(buf, &r, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkChunkedRead(b *testing.B) {
	src := bytes.NewReader(chunkedBody)
	br := bufio.NewReader(src)
	var c ChunkedReader
	p := make([]byte, 32<<10)
	b.ReportAllocs()
	b.SetBytes(64 << 10)
	for b.Loop() {
		src.Reset(chunkedBody)
		br.Reset(src)
		c.Reset(br, 0)
		if err := drain(&c, p); err != nil {
			b.Fatal(err)
		}
	}
}

// drain reads c to its end.
func drain(c *ChunkedReader, p []byte) error {
	for {
		_, err := c.Read(p)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// TestNoAllocs checks that parsing allocates nothing once the Request,
// Response and ChunkedReader are warm.
func TestNoAllocs(t *testing.T) {
	req := []byte(typicalGet)
	resp := []byte(typicalResponse)
	var r Request
	var rs Response
	src := bytes.NewReader(chunkedBody)
	br := bufio.NewReader(src)
	var c ChunkedReader
	p := make([]byte, 1000) // not a divisor of the chunk size
	tests := []struct {
		name string
		f    func()
	}{
		{"ParseRequest", func() {
			if _, err := ParseRequest(req, &r, 0); err != nil {
				t.Fatal(err)
			}
		}},
		{"ParseResponse", func() {
			if _, err := ParseResponse(resp, &rs, 0); err != nil {
				t.Fatal(err)
			}
		}},
		{"ParseRequest error", func() {
			if _, err := ParseRequest(req[:len(req)-3], &r, 100); err == nil {
				t.Fatal("no error")
			}
		}},
		{"ChunkedReader", func() {
			src.Reset(chunkedBody)
			br.Reset(src)
			c.Reset(br, 0)
			if err := drain(&c, p); err != nil || len(c.Trailers()) != 1 {
				t.Fatal(err, c.Trailers())
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.f() // warm up
			if n := testing.AllocsPerRun(100, tt.f); n != 0 {
				t.Errorf("%v allocations per run, want 0", n)
			}
		})
	}
}
