package h1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// netRequest reads data as net/http's server would read a request head:
// http.ReadRequest plus the checks http.Server makes before calling a
// handler. Leading CR and LF bytes are skipped as the server skips them
// after a POST (up to four), the most it ever skips. n is the number of
// bytes the head took, skipped bytes included.
func netRequest(data []byte) (req *http.Request, n int, err error) {
	skip := 0
	for skip < 4 && skip < len(data) && (data[skip] == '\r' || data[skip] == '\n') {
		skip++
	}
	src := bytes.NewReader(data[skip:])
	br := bufio.NewReader(src)
	req, err = http.ReadRequest(br)
	if err != nil {
		return nil, 0, err
	}
	// ReadRequest drops Host from the header, which the server's own
	// readRequest keeps for these checks: read the fields again.
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(data[skip:])))
	tp.ReadLine()
	hdr, _ := tp.ReadMIMEHeader()
	hosts, haveHost := hdr["Host"]
	switch {
	case req.ProtoMajor != 1:
		return nil, 0, errors.New("server: 505")
	case req.ProtoAtLeast(1, 1) && !haveHost && req.Method != "CONNECT":
		return nil, 0, errors.New("server: missing Host")
	case len(hosts) == 1 && !netValidHost(hosts[0]):
		return nil, 0, errors.New("server: malformed Host")
	}
	for k, vv := range req.Header {
		if !netValidName(k) {
			return nil, 0, errors.New("server: invalid header name")
		}
		for _, v := range vv {
			if strings.ContainsFunc(v, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
				return nil, 0, errors.New("server: invalid header value")
			}
		}
	}
	return req, skip + len(data) - skip - br.Buffered() - src.Len(), nil
}

// netValidName and netValidHost restate httpguts.ValidHeaderFieldName and
// ValidHostHeader, which http.Server applies.
func netValidName(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range []byte(k) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func netValidHost(h string) bool {
	for _, c := range []byte(h) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!$%&()*+,-.:;=[']_~", c) >= 0) {
			return false
		}
	}
	return true
}

// ourHeader returns fields as net/http's Header would hold them, without
// the named keys.
func ourHeader(fields []Field, without ...string) http.Header {
	h := http.Header{}
	for _, f := range fields {
		k := textproto.CanonicalMIMEHeaderKey(string(f.Name))
		if !slices.Contains(without, k) {
			h[k] = append(h[k], string(f.Value))
		}
	}
	return h
}

// compareHeader reports how net/http's header differs from ours, ignoring
// the named keys and the Cache-Control that net/http adds for
// "Pragma: no-cache".
func compareHeader(ours []Field, theirs http.Header, without ...string) error {
	h := ourHeader(ours, without...)
	t := http.Header{}
	for k, vv := range theirs {
		if !slices.Contains(without, k) {
			t[k] = vv
		}
	}
	if _, ok := h["Cache-Control"]; !ok {
		delete(t, "Cache-Control")
	}
	if fmt.Sprint(h) != fmt.Sprint(t) {
		return fmt.Errorf("header\n ours %v\n net  %v", h, t)
	}
	return nil
}

// seedHeads adds the request vectors of the table tests to f.
func seedHeads(f *testing.F) {
	for _, tt := range requestTests {
		f.Add([]byte(tt.in))
	}
	for _, tt := range smugglingTests {
		f.Add([]byte(tt.in))
	}
}

// FuzzRequestVsNetHTTP holds ParseRequest to at least net/http's
// strictness: whatever net/http's server refuses, ParseRequest refuses,
// and where both accept they agree on method, target, Host, framing,
// persistence, head length and fields.
func FuzzRequestVsNetHTTP(f *testing.F) {
	seedHeads(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Request
		n, err := ParseRequest(data, &r, DefaultMaxHeaderBytes)
		req, netN, netErr := netRequest(data)
		if errors.Is(err, ErrIncomplete) && netErr == nil {
			t.Fatalf("incomplete for us, complete for net/http: %q", data)
		}
		if err != nil {
			return
		}
		if netErr != nil {
			t.Fatalf("net/http refuses (%v) what we accept: %q\nours: %s", netErr, data, r.summary())
		}
		host := string(r.Host)
		if auth, _ := checkTarget(r.Method, r.Target); auth != nil {
			host = string(auth)
		}
		wantCL := r.ContentLength
		switch {
		case r.Chunked:
			wantCL = -1
		case wantCL < 0:
			wantCL = 0 // net/http's "no body" for requests
		}
		ours := fmt.Sprintf("%s %s 1.%d host=%q cl=%d chunked=%v close=%v n=%d",
			r.Method, r.Target, r.Minor, host, wantCL, r.Chunked, r.Close, n)
		theirs := fmt.Sprintf("%s %s 1.%d host=%q cl=%d chunked=%v close=%v n=%d",
			req.Method, req.RequestURI, req.ProtoMinor, req.Host, req.ContentLength, len(req.TransferEncoding) > 0, req.Close, netN)
		if ours != theirs {
			t.Fatalf("%q\n ours %s\n net  %s", data, ours, theirs)
		}
		if err := compareHeader(r.Fields, req.Header, "Host", "Content-Length", "Transfer-Encoding", "Trailer"); err != nil {
			t.Fatalf("%q: %v", data, err)
		}
	})
}

// FuzzResponseVsNetHTTP holds ParseResponse to at least the strictness of
// http.ReadResponse, and to its reading where both accept.
func FuzzResponseVsNetHTTP(f *testing.F) {
	for _, tt := range responseTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Response
		n, err := ParseResponse(data, &r, DefaultMaxHeaderBytes)
		src := bytes.NewReader(data)
		br := bufio.NewReader(src)
		resp, netErr := http.ReadResponse(br, nil)
		if errors.Is(err, ErrIncomplete) && netErr == nil {
			t.Fatalf("incomplete for us, complete for net/http: %q", data)
		}
		if err != nil {
			return
		}
		if netErr != nil {
			t.Fatalf("net/http refuses (%v) what we accept: %q\nours: %s", netErr, data, r.summary())
		}
		status := fmt.Sprint(r.Status)
		if r.Reason != nil {
			status += " " + string(r.Reason)
		}
		wantCL := r.ContentLength
		if r.Chunked {
			wantCL = -1
		}
		if r.Status < 200 || r.Status == 204 || r.Status == 304 {
			wantCL = 0
		}
		// net/http's Close also covers a body delimited by the close.
		close := r.Close || r.BodyKind([]byte("GET")) == BodyUntilClose
		ours := fmt.Sprintf("%d.%d %q cl=%d chunked=%v close=%v n=%d", 1, r.Minor, status, wantCL, r.Chunked, close, n)
		theirs := fmt.Sprintf("%d.%d %q cl=%d chunked=%v close=%v n=%d", resp.ProtoMajor, resp.ProtoMinor, resp.Status,
			resp.ContentLength, len(resp.TransferEncoding) > 0, resp.Close, len(data)-br.Buffered()-src.Len())
		if ours != theirs {
			t.Fatalf("%q\n ours %s\n net  %s", data, ours, theirs)
		}
		if err := compareHeader(r.Fields, resp.Header, "Content-Length", "Transfer-Encoding", "Trailer", "Connection"); err != nil {
			t.Fatalf("%q: %v", data, err)
		}
	})
}

// FuzzChunked holds ChunkedReader to at least the strictness of net/http's
// chunked decoding (httputil.NewChunkedReader for the chunks, a request
// body for the trailers too) and to the same bytes and trailers where both
// accept.
func FuzzChunked(f *testing.F) {
	for _, tt := range chunkedTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c ChunkedReader
		c.Reset(bufio.NewReader(bytes.NewReader(data)), 0)
		ours, err := io.ReadAll(&c)
		var e *Error
		if errors.As(err, &e) && (e.Status == 0 || e.Reason == "") || err != nil && e == nil && err != io.ErrUnexpectedEOF {
			t.Fatalf("bad error %#v for %q", err, data)
		}
		if err != nil {
			return
		}
		theirs, netErr := io.ReadAll(httputil.NewChunkedReader(bufio.NewReader(bytes.NewReader(data))))
		if netErr != nil {
			t.Fatalf("httputil refuses (%v) what we accept: %q", netErr, data)
		}
		if !bytes.Equal(ours, theirs) {
			t.Fatalf("%q\n ours %q\n net  %q", data, ours, theirs)
		}
		head := "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
		req, netErr := http.ReadRequest(bufio.NewReader(io.MultiReader(strings.NewReader(head), bytes.NewReader(data))))
		if netErr != nil {
			t.Fatal(netErr)
		}
		body, netErr := io.ReadAll(req.Body)
		if netErr != nil {
			t.Fatalf("net/http refuses (%v) the body we accept: %q", netErr, data)
		}
		if !bytes.Equal(ours, body) {
			t.Fatalf("%q\n ours %q\n net  %q", data, ours, body)
		}
		if err := compareHeader(c.Trailers(), req.Trailer); err != nil {
			t.Fatalf("trailers of %q: %v", data, err)
		}
	})
}

// FuzzParse checks invariants of ParseRequest and ParseResponse on any
// input: no panic; a head within the limit and the buffer; fields aliasing
// the buffer; and every proper prefix of an accepted head incomplete, so a
// caller that parses as bytes arrive sees the same head.
func FuzzParse(f *testing.F) {
	seedHeads(f)
	for _, tt := range responseTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 512
		var r Request
		n, err := ParseRequest(data, &r, max)
		checkHead(t, data, n, err, max, r.Fields, func(b []byte) error {
			_, err := ParseRequest(b, &r, max)
			return err
		})
		var resp Response
		n, err = ParseResponse(data, &resp, max)
		checkHead(t, data, n, err, max, resp.Fields, func(b []byte) error {
			_, err := ParseResponse(b, &resp, max)
			return err
		})
	})
}

func checkHead(t *testing.T, data []byte, n int, err error, max int, fields []Field, parse func([]byte) error) {
	t.Helper()
	var e *Error
	switch {
	case errors.Is(err, ErrIncomplete):
		if len(data) >= max {
			t.Fatalf("incomplete with %d ≥ %d bytes: %q", len(data), max, data)
		}
		return
	case errors.As(err, &e):
		if e.Status == 0 || e.Reason == "" {
			t.Fatalf("bad error %#v for %q", e, data)
		}
		return
	case err != nil:
		t.Fatalf("unexpected error type %T %v", err, err)
	}
	if n <= 0 || n > len(data) || n > max {
		t.Fatalf("n = %d for %d bytes, limit %d", n, len(data), max)
	}
	for _, f := range fields {
		if !within(f.Name, data[:n]) || !within(f.Value, data[:n]) {
			t.Fatalf("field %q: %q is not in the head", f.Name, f.Value)
		}
	}
	for k := range n {
		if err := parse(data[:k]); !errors.Is(err, ErrIncomplete) {
			t.Fatalf("prefix %q of accepted head %q: %v", data[:k], data[:n], err)
		}
	}
}

// within reports whether s is a subslice of b (or empty).
func within(s, b []byte) bool {
	if len(s) == 0 {
		return true
	}
	for i := range b {
		if &b[i] == &s[0] {
			return i+len(s) <= len(b)
		}
	}
	return false
}

// FuzzAuthority holds validAuthority to net/url's host parsing: an
// authority we accept is one net/url parses to the same Host, so an
// absolute-form or CONNECT target never routes differently from net/http.
func FuzzAuthority(f *testing.F) {
	for _, a := range []string{
		"a", "a:80", "a:", "A.example:65535", "a_b-c.d~e!$&'()*+,;=", "[::1]", "[::1]:443",
		"[fe80::1:2]", "[::ffff:10.0.0.1]:8080", "[1:2:3:4:5:6:7:8]", "[1:2:3:4:5:6:1.2.3.4]",
		"[::]", "[1::]", "[1::2::3]", "[::ffff:010.0.0.1]", "[1:2:3:4:5:6:7::8]", "[10.0.0.1]",
		"[fe80::1%25eth0]", "a:99999", "u@a", "a%41", ":80", "a:1:2", "[::1]x",
	} {
		f.Add(a)
	}
	f.Fuzz(func(t *testing.T, a string) {
		if !validAuthority([]byte(a), false) {
			return
		}
		u, err := url.Parse("http://" + a + "/")
		if err != nil {
			t.Fatalf("net/url refuses authority %q: %v", a, err)
		}
		if u.Host != a {
			t.Fatalf("net/url reads authority %q as host %q", a, u.Host)
		}
	})
}
