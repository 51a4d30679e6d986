package h1

import (
	"strings"
	"testing"
)

// requestTests are request heads and what ParseRequest makes of them: a
// Request summary, a status, or "incomplete". They seed the fuzz corpus.
var requestTests = []struct {
	name, in, want string
}{
	// Accepted.
	{"get", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET / 1.1 host=a cl=-1"},
	{"no fields 1.0", "GET / HTTP/1.0\r\n\r\n", "GET / 1.0 host=- cl=-1 close"},
	{"1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", "GET / 1.0 host=- cl=-1"},
	{"1.0 keep-alive and close", "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", "GET / 1.0 host=- cl=-1 close"},
	{"1.1 close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE\r\n\r\n", "GET / 1.1 host=a cl=-1 close"},
	{"close in second Connection", "GET / HTTP/1.1\r\nHost: a\r\nConnection: x\r\nConnection: ,close,\r\n\r\n", "GET / 1.1 host=a cl=-1 close"},
	{"close inside a token is not close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: closed, xclose\r\n\r\n", "GET / 1.1 host=a cl=-1"},
	{"upgrade", "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", "GET /ws 1.1 host=a cl=-1 upgrade"},
	{"upgrade option without field", "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n", "GET / 1.1 host=a cl=-1"},
	{"upgrade field without option", "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", "GET / 1.1 host=a cl=-1"},
	{"expect", "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n", "PUT / 1.1 host=a cl=3 expect"},
	{"other expectation", "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", "PUT / 1.1 host=a cl=-1"},
	{"content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", "POST / 1.1 host=a cl=5"},
	{"content-length OWS trimmed", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \t5 \t\r\n\r\n", "POST / 1.1 host=a cl=5"},
	{"content-length leading zeros", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n", "POST / 1.1 host=a cl=7"},
	{"content-length zero", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", "POST / 1.1 host=a cl=0"},
	{"content-length max", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n", "POST / 1.1 host=a cl=9223372036854775807"},
	{"chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", "POST / 1.1 host=a cl=-1 chunked"},
	{"chunked upper case", "POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: CHUNKED\r\n\r\n", "POST / 1.1 host=a cl=-1 chunked"},
	{"chunked after HTAB", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n", "POST / 1.1 host=a cl=-1 chunked"},
	{"one leading CRLF", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET / 1.1 host=a cl=-1"},
	{"two leading CRLFs", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET / 1.1 host=a cl=-1"},
	{"options asterisk", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "OPTIONS * 1.1 host=a cl=-1"},
	{"connect", "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", "CONNECT a.example:443 1.1 host=a.example:443 cl=-1"},
	{"connect ipv6", "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n", "CONNECT [::1]:443 1.1 host=[::1]:443 cl=-1"},
	{"absolute-form", "GET http://a.example/p?q HTTP/1.1\r\nHost: a.example\r\n\r\n", "GET http://a.example/p?q 1.1 host=a.example cl=-1"},
	{"absolute-form case and port", "GET HTTPS://A.example:8443 HTTP/1.1\r\nHost: a.EXAMPLE:8443\r\n\r\n", "GET HTTPS://A.example:8443 1.1 host=a.EXAMPLE:8443 cl=-1"},
	{"absolute-form query only", "GET http://a?x HTTP/1.1\r\nHost: a\r\n\r\n", "GET http://a?x 1.1 host=a cl=-1"},
	{"absolute-form 1.0 without Host", "GET http://a/ HTTP/1.0\r\n\r\n", "GET http://a/ 1.0 host=- cl=-1 close"},
	{"empty host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", "GET / 1.1 host= cl=-1"},
	{"host ipv6", "GET / HTTP/1.1\r\nHost: [fe80::1:2]:8080\r\n\r\n", "GET / 1.1 host=[fe80::1:2]:8080 cl=-1"},
	{"host ipv4-mapped", "GET / HTTP/1.1\r\nHost: [::ffff:10.0.0.1]\r\n\r\n", "GET / 1.1 host=[::ffff:10.0.0.1] cl=-1"},
	{"host with empty port", "GET / HTTP/1.1\r\nHost: a:\r\n\r\n", "GET / 1.1 host=a: cl=-1"},
	{"host sub-delims", "GET / HTTP/1.1\r\nHost: a_b-c.d~e!$&'()*+,;=\r\n\r\n", "GET / 1.1 host=a_b-c.d~e!$&'()*+,;= cl=-1"},
	{"percent-encoding in path", "GET /a%2Fb HTTP/1.1\r\nHost: a\r\n\r\n", "GET /a%2Fb 1.1 host=a cl=-1"},
	{"bad percent-encoding in query", "GET /a?x=%zz HTTP/1.1\r\nHost: a\r\n\r\n", "GET /a?x=%zz 1.1 host=a cl=-1"},
	{"raw UTF-8 target", "GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", "GET /\xc3\xa9 1.1 host=a cl=-1"},
	{"unwise ASCII in target", "GET /a\"b<c>{|}^`\\ HTTP/1.1\r\nHost: a\r\n\r\n", "GET /a\"b<c>{|}^`\\ 1.1 host=a cl=-1"},
	{"double slash path", "GET //a/b HTTP/1.1\r\nHost: a\r\n\r\n", "GET //a/b 1.1 host=a cl=-1"},
	{"extension method", "PURGE-ALL /x HTTP/1.1\r\nHost: a\r\n\r\n", "PURGE-ALL /x 1.1 host=a cl=-1"},
	{"obs-text value", "GET / HTTP/1.1\r\nHost: a\r\nX: caf\xe9\r\n\r\n", "GET / 1.1 host=a cl=-1"},
	{"empty value", "GET / HTTP/1.1\r\nHost: a\r\nX:\r\nY: \t \r\n\r\n", "GET / 1.1 host=a cl=-1"},
	{"HTAB inside value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\tb\r\n\r\n", "GET / 1.1 host=a cl=-1"},
	{"trailer declared", "POST / HTTP/1.1\r\nHost: a\r\nTrailer: Expires, X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n", "POST / 1.1 host=a cl=-1 chunked"},
	{"200 fields", "GET / HTTP/1.1\r\nHost: a\r\n" + fields(199) + "\r\n", "GET / 1.1 host=a cl=-1"},

	// Request line.
	{"double space after method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"double space after target", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"space after version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", "400"},
	{"leading space", " GET / HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"tab separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"method not a token", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"method only", "GET\r\n\r\n", "400"},
	{"HTTP/0.9", "GET /\r\n\r\n", "400"},
	{"three leading CRLFs", "\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"leading bare LF", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", "505"},
	{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", "505"},
	{"h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "505"},
	{"HTTP/0.9 version", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", "505"},
	{"HTTP/1.10", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", "400"},
	{"HTTP/1", "GET / HTTP/1\r\nHost: a\r\n\r\n", "400"},
	{"lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", "400"},
	{"NUL in target", "GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"DEL in target", "GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"fragment in target", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"bad percent-encoding in path", "GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"truncated percent-encoding", "GET /a%2 HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"asterisk with GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"connect without port", "CONNECT a.example HTTP/1.1\r\nHost: a.example\r\n\r\n", "400"},
	{"connect origin-form", "CONNECT /rpc HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"connect host mismatch", "CONNECT a:443 HTTP/1.1\r\nHost: b:443\r\n\r\n", "400"},
	{"connect without Host", "CONNECT a:443 HTTP/1.1\r\n\r\n", "400"},
	{"absolute-form other scheme", "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"absolute-form userinfo", "GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"absolute-form empty host", "GET http:///p HTTP/1.1\r\nHost: \r\n\r\n", "400"},
	{"absolute-form bad port", "GET http://a:99999/ HTTP/1.1\r\nHost: a:99999\r\n\r\n", "400"},
	{"absolute-form Host mismatch", "GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n", "400"},
	{"absolute-form no slashes", "GET http:a HTTP/1.1\r\nHost: a\r\n\r\n", "400"},

	// Host.
	{"no Host in 1.1", "GET / HTTP/1.1\r\n\r\n", "400"},
	{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", "400"},
	{"Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "400"},
	{"Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", "400"},
	{"Host with two colons", "GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n", "400"},
	{"Host port not digits", "GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", "400"},
	{"Host with percent", "GET / HTTP/1.1\r\nHost: a%41\r\n\r\n", "400"},
	{"Host UTF-8", "GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n", "400"},
	{"Host IPv6 zone", "GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]\r\n\r\n", "400"},
	{"Host IPv4 in brackets", "GET / HTTP/1.1\r\nHost: [10.0.0.1]\r\n\r\n", "400"},
	{"Host bad IPv6", "GET / HTTP/1.1\r\nHost: [1::2::3]\r\n\r\n", "400"},
	{"Host port only", "GET / HTTP/1.1\r\nHost: :80\r\n\r\n", "400"},

	// Line endings and folding.
	{"bare LF request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", "400"},
	{"bare LF field", "GET / HTTP/1.1\r\nHost: a\n\r\n", "400"},
	{"bare LF end", "GET / HTTP/1.1\r\nHost: a\r\n\n", "400"},
	{"bare CR in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", "400"},
	{"bare CR end", "GET / HTTP/1.1\r\nHost: a\r\n\rX", "400"},
	{"bare CR after value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\r\n\r\n", "400"},
	{"obs-fold after request line", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", "400"},
	{"obs-fold continuation", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", "400"},

	// Field syntax.
	{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", "400"},
	{"tab before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", "400"},
	{"empty name", "GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", "400"},
	{"no colon", "GET / HTTP/1.1\r\nHost: a\r\nX\r\n\r\n", "400"},
	{"name not a token", "GET / HTTP/1.1\r\nHost: a\r\nX(y): v\r\n\r\n", "400"},
	{"NUL in name", "GET / HTTP/1.1\r\nHost: a\r\nX\x00: v\r\n\r\n", "400"},
	{"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", "400"},
	{"CTL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", "400"},
	{"DEL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", "400"},
	{"UTF-8 name", "GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: v\r\n\r\n", "400"},

	// Content-Length.
	{"two equal Content-Lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", "400"},
	{"two different Content-Lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n", "400"},
	{"Content-Length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", "400"},
	{"Content-Length plus", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", "400"},
	{"Content-Length minus", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", "400"},
	{"Content-Length hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", "400"},
	{"Content-Length inner space", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 0\r\n\r\n", "400"},
	{"Content-Length empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", "400"},
	{"Content-Length overflow", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", "400"},
	{"Content-Length huge", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", "400"},

	// Transfer-Encoding.
	{"gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", "501"},
	{"identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", "501"},
	{"chunked twice in a list", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", "400"},
	{"gzip then chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "400"},
	{"chunked not last", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "400"},
	{"chunked with parameter", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", "400"},
	{"empty Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n", "400"},
	{"two Transfer-Encoding fields", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "400"},
	{"Transfer-Encoding in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "400"},
	{"Content-Length and Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", "400"},
	{"Trailer names Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nTrailer: X, content-length\r\n\r\n", "400"},
	{"Trailer names Trailer", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: Trailer\r\n\r\n", "400"},

	// Size.
	{"201 fields", "GET / HTTP/1.1\r\nHost: a\r\n" + fields(200) + "\r\n", "431"},
	{"incomplete request line", "GET / HTT", "incomplete"},
	{"incomplete fields", "GET / HTTP/1.1\r\nHost: a\r\n", "incomplete"},
	{"incomplete CR", "GET / HTTP/1.1\r\nHost: a\r\n\r", "incomplete"},
	{"incomplete leading CR", "\r", "incomplete"},
	{"empty", "", "incomplete"},
}

func TestParseRequest(t *testing.T) {
	for _, tt := range requestTests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseReq(tt.in, 0); got != tt.want {
				t.Errorf("ParseRequest(%q)\n got %s\nwant %s", tt.in, got, tt.want)
			}
		})
	}
}

// TestParseRequestLimit checks the head size limit, counted from buf[0]
// through the final CRLF.
func TestParseRequestLimit(t *testing.T) {
	head := "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"
	tests := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"exactly the limit", head, len(head), "GET / 1.1 host=a cl=-1"},
		{"one over", head, len(head) - 1, "431"},
		{"body past the limit is not looked at", head + "\x00\x00", len(head), "n=29 of 31: GET / 1.1 host=a cl=-1"},
		{"incomplete under the limit", head[:20], len(head), "incomplete"},
		{"incomplete at the limit", head[:20], 20, "431"},
		{"error before the limit", "GET / HTTP/1.1\n", 100, "400"},
		{"zero means the default", head, 0, "GET / 1.1 host=a cl=-1"},
		{"default limit", "GET /" + strings.Repeat("a", DefaultMaxHeaderBytes), 0, "431"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseReq(tt.in, tt.max); got != tt.want {
				t.Errorf("ParseRequest(%.40q, %d)\n got %s\nwant %s", tt.in, tt.max, got, tt.want)
			}
		})
	}
}

func TestRequestFields(t *testing.T) {
	in := "GET / HTTP/1.1\r\nHost: a\r\nx-Mixed-CASE:  v 1 \t\r\nEmpty:\r\nx-mixed-case: v2\r\n\r\nBODY"
	var r Request
	n, err := ParseRequest([]byte(in), &r, 0)
	if err != nil || n != len(in)-len("BODY") {
		t.Fatalf("ParseRequest = %d, %v", n, err)
	}
	want := []Field{{[]byte("Host"), []byte("a")}, {[]byte("x-Mixed-CASE"), []byte("v 1")}, {[]byte("Empty"), []byte{}}, {[]byte("x-mixed-case"), []byte("v2")}}
	if len(r.Fields) != len(want) {
		t.Fatalf("Fields = %q", r.Fields)
	}
	for i, f := range r.Fields {
		if string(f.Name) != string(want[i].Name) || string(f.Value) != string(want[i].Value) {
			t.Errorf("Fields[%d] = %q: %q, want %q: %q", i, f.Name, f.Value, want[i].Name, want[i].Value)
		}
	}
	if got := r.Get("X-MIXED-case"); string(got) != "v 1" {
		t.Errorf("Get = %q, want the first value", got)
	}
	if got := r.Get("missing"); got != nil {
		t.Errorf("Get(missing) = %q", got)
	}
	if r.BodyKind() != BodyNone {
		t.Errorf("BodyKind = %v", r.BodyKind())
	}
}

// TestRequestReuse checks that a reused Request forgets the previous head.
func TestRequestReuse(t *testing.T) {
	var r Request
	if _, err := ParseRequest([]byte("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close, upgrade\r\nUpgrade: x\r\nExpect: 100-continue\r\n\r\n"), &r, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseRequest([]byte("GET /b HTTP/1.1\r\nHost: b\r\n\r\n"), &r, 0); err != nil {
		t.Fatal(err)
	}
	if got, want := r.summary(), "GET /b 1.1 host=b cl=-1"; got != want || len(r.Fields) != 1 {
		t.Errorf("reused Request = %s with %d fields, want %s with 1", got, len(r.Fields), want)
	}
}

func TestRequestBodyKind(t *testing.T) {
	tests := []struct {
		in   string
		want BodyKind
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", BodyNone},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", BodyNone},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n", BodyLength},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", BodyChunked},
	}
	for _, tt := range tests {
		var r Request
		if _, err := ParseRequest([]byte(tt.in), &r, 0); err != nil {
			t.Fatal(err)
		}
		if got := r.BodyKind(); got != tt.want {
			t.Errorf("%q: BodyKind = %d, want %d", tt.in, got, tt.want)
		}
	}
}
