package h1

import "testing"

// responseTests are response heads and what ParseResponse makes of them.
// They seed the fuzz corpus.
var responseTests = []struct {
	name, in, want string
}{
	{"ok", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", `1.1 200 "OK" cl=5`},
	{"no reason", "HTTP/1.1 200\r\n\r\n", `1.1 200 "" cl=-1`},
	{"empty reason", "HTTP/1.1 204 \r\n\r\n", `1.1 204 "" cl=-1`},
	{"reason with spaces and obs-text", "HTTP/1.1 404 Not  F\xf6und \r\n\r\n", "1.1 404 \"Not  F\\xf6und \" cl=-1"},
	{"reason with HTAB", "HTTP/1.1 200 a\tb\r\n\r\n", `1.1 200 "a\tb" cl=-1`},
	{"1.0", "HTTP/1.0 200 OK\r\n\r\n", `1.0 200 "OK" cl=-1 close`},
	{"1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n", `1.0 200 "OK" cl=0 keep-alive=timeout=5`},
	{"close", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", `1.1 200 "OK" cl=-1 close`},
	{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n", `1.1 200 "OK" cl=-1 chunked`},
	{"equal Content-Lengths", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", `1.1 200 "OK" cl=5`},
	{"equal Content-Lengths after OWS", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length:\t5 \r\n\r\n", `1.1 200 "OK" cl=5`},
	{"101", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", `1.1 101 "Switching Protocols" cl=-1`},
	{"999", "HTTP/1.1 999 Request Denied\r\n\r\n", `1.1 999 "Request Denied" cl=-1`},

	{"different Content-Lengths", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "400"},
	{"Content-Lengths with leading zero", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 05\r\n\r\n", "400"},
	{"Content-Length list", "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", "400"},
	{"Content-Length and chunked", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", "400"},
	{"gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "501"},
	{"gzip, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "400"},
	{"Transfer-Encoding in 1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "400"},
	{"two spaces before status", "HTTP/1.1  200 OK\r\n\r\n", "400"},
	{"no space after status", "HTTP/1.1 200OK\r\n\r\n", "400"},
	{"plus status", "HTTP/1.1 +12 OK\r\n\r\n", "400"},
	{"status 099", "HTTP/1.1 099 OK\r\n\r\n", "400"},
	{"two-digit status", "HTTP/1.1 20 OK\r\n\r\n", "400"},
	{"four-digit status", "HTTP/1.1 2000 OK\r\n\r\n", "400"},
	{"CTL in reason", "HTTP/1.1 200 O\x01K\r\n\r\n", "400"},
	{"NUL in reason", "HTTP/1.1 200 O\x00K\r\n\r\n", "400"},
	{"HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n", "505"},
	{"HTTP/1.2", "HTTP/1.2 200 OK\r\n\r\n", "505"},
	{"ICY", "ICY 200 OK\r\n\r\n", "400"},
	{"leading CRLF", "\r\nHTTP/1.1 200 OK\r\n\r\n", "400"},
	{"bare LF status line", "HTTP/1.1 200 OK\n\r\n", "400"},
	{"bare LF field", "HTTP/1.1 200 OK\r\nX: y\n\r\n", "400"},
	{"obs-fold", "HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n", "400"},
	{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n", "400"},
	{"Trailer names Transfer-Encoding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Transfer-Encoding\r\n\r\n", "400"},
	{"incomplete", "HTTP/1.1 200 OK\r\n", "incomplete"},
	{"incomplete status line", "HTTP/1.1 2", "incomplete"},
}

func TestParseResponse(t *testing.T) {
	for _, tt := range responseTests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseResp(tt.in, 0); got != tt.want {
				t.Errorf("ParseResponse(%q)\n got %s\nwant %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseResponseLimit(t *testing.T) {
	head := "HTTP/1.1 200 OK\r\nX: y\r\n\r\n"
	if got := parseResp(head, len(head)); got != `1.1 200 "OK" cl=-1` {
		t.Errorf("at the limit: %s", got)
	}
	if got := parseResp(head, len(head)-1); got != "431" {
		t.Errorf("over the limit: %s", got)
	}
}

func TestResponseBodyKind(t *testing.T) {
	tests := []struct {
		name, method, in string
		want             BodyKind
	}{
		{"length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", BodyLength},
		{"zero length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", BodyNone},
		{"chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", BodyChunked},
		{"until close", "GET", "HTTP/1.1 200 OK\r\n\r\n", BodyUntilClose},
		{"HEAD", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", BodyNone},
		{"HEAD chunked", "HEAD", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", BodyNone},
		{"100", "GET", "HTTP/1.1 100 Continue\r\n\r\n", BodyNone},
		{"101", "GET", "HTTP/1.1 101 Switching Protocols\r\n\r\n", BodyNone},
		{"204", "GET", "HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n", BodyNone},
		{"304", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n", BodyNone},
		{"CONNECT 200", "CONNECT", "HTTP/1.1 200 OK\r\n\r\n", BodyNone},
		{"CONNECT 407", "CONNECT", "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 3\r\n\r\n", BodyLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Response
			if _, err := ParseResponse([]byte(tt.in), &r, 0); err != nil {
				t.Fatal(err)
			}
			if got := r.BodyKind([]byte(tt.method)); got != tt.want {
				t.Errorf("BodyKind(%s) = %d, want %d", tt.method, got, tt.want)
			}
		})
	}
}

func TestResponseGet(t *testing.T) {
	var r Response
	if _, err := ParseResponse([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nkeep-alive: timeout=1\r\n\r\n"), &r, 0); err != nil {
		t.Fatal(err)
	}
	if got := r.Get("content-type"); string(got) != "text/plain" {
		t.Errorf("Get = %q", got)
	}
	if string(r.KeepAlive) != "timeout=1" {
		t.Errorf("KeepAlive = %q", r.KeepAlive)
	}
}
