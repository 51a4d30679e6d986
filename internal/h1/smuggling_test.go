package h1

import (
	"fmt"
	"testing"
)

// smuggle parses a whole request, head and body, as the server loop would:
// the head's outcome, then the body by its framing, then what is left on
// the connection for the next request.
func smuggle(in string) string {
	var r Request
	n, err := ParseRequest([]byte(in), &r, 0)
	if err != nil {
		return outcome(err, nil)
	}
	rest := in[n:]
	switch r.BodyKind() {
	case BodyChunked:
		return r.summary() + " | " + decodeChunked(rest, 4096, 0)
	case BodyLength:
		if int64(len(rest)) < r.ContentLength {
			return r.summary() + " | short body"
		}
		return fmt.Sprintf("%s | body=%q rest=%q", r.summary(), rest[:r.ContentLength], rest[r.ContentLength:])
	}
	return fmt.Sprintf("%s | rest=%q", r.summary(), rest)
}

const post = "POST / HTTP/1.1\r\nHost: a\r\n"

// smugglingTests are request-smuggling vectors (CL.TE, TE.CL, TE.TE
// obfuscations, chunk framing tricks, start-line tricks) and the one
// reading of each that this package allows: a refusal with its status, or
// the exact framing. They seed the fuzz corpus.
var smugglingTests = []struct {
	name, in, want string
}{
	{"CL.TE", post + "Content-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nSMUGGLED", "400"},
	{"TE.CL", post + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n", "400"},
	{"TE.TE space before colon", post + "Transfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n", "400"},
	{"TE.TE xchunked", post + "Transfer-Encoding: xchunked\r\n\r\n", "501"},
	{"TE.TE chunk", post + "Transfer-Encoding: chunk\r\n\r\n", "501"},
	{"TE.TE quoted", post + "Transfer-Encoding: \"chunked\"\r\n\r\n", "400"},
	{"TE.TE HTAB is OWS", post + "Transfer-Encoding:\tchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", `POST / 1.1 host=a cl=-1 chunked | body="hello"`},
	{"TE.TE trailing OWS", post + "Transfer-Encoding: chunked \t\r\n\r\n0\r\n\r\n", `POST / 1.1 host=a cl=-1 chunked | body=""`},
	{"TE.TE vertical tab", post + "Transfer-Encoding:\vchunked\r\n\r\n", "400"},
	{"TE.TE obs-fold", post + "X: y\r\n Transfer-Encoding: chunked\r\n\r\n", "400"},
	{"TE.TE obs-fold value", post + "Transfer-Encoding:\r\n chunked\r\n\r\n", "400"},
	{"TE.TE second field", post + "Transfer-Encoding: chunked\r\nTransfer-encoding: x\r\n\r\n", "400"},
	{"TE.TE list with identity", post + "Transfer-Encoding: chunked, identity\r\n\r\n", "400"},
	{"TE.TE identity first", post + "Transfer-Encoding: identity, chunked\r\n\r\n", "400"},
	{"TE.TE NUL", post + "Transfer-Encoding: chunked\x00\r\n\r\n", "400"},
	{"TE.TE bare CR", post + "X: a\rTransfer-Encoding: chunked\r\n\r\n", "400"},
	{"TE in HTTP/1.0 with CL", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello", "400"},
	{"CL.CL differing", post + "Content-Length: 0\r\nContent-Length: 5\r\n\r\nhello", "400"},
	{"CL.CL equal", post + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", "400"},
	{"CL list", post + "Content-Length: 5, 5\r\n\r\nhello", "400"},
	{"CL plus", post + "Content-Length: +5\r\n\r\nhello", "400"},
	{"CL hex", post + "Content-Length: 0x5\r\n\r\nhello", "400"},
	{"CL exponent", post + "Content-Length: 5e0\r\n\r\nhello", "400"},
	{"CL trailing OWS is trimmed", post + "Content-Length: 5 \r\n\r\nhelloGET", `POST / 1.1 host=a cl=5 | body="hello" rest="GET"`},
	{"CL space before colon", post + "Content-Length : 5\r\n\r\nhello", "400"},
	{"CL double colon", post + "Content-Length:: 5\r\n\r\nhello", "400"},
	{"CL name with NUL", post + "Content-Length\x00: 5\r\n\r\nhello", "400"},
	{"CL overflow", post + "Content-Length: 18446744073709551621\r\n\r\nhello", "400"},
	{"chunk size 0x5", post + "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", "POST / 1.1 host=a cl=-1 chunked | 400"},
	{"chunk ext bounded", post + "Transfer-Encoding: chunked\r\n\r\n5;ext\r\nhello\r\n0\r\n\r\n", `POST / 1.1 host=a cl=-1 chunked | body="hello"`},
	{"chunk size -1", post + "Transfer-Encoding: chunked\r\n\r\n-1\r\n\r\n", "POST / 1.1 host=a cl=-1 chunked | 400"},
	{"chunk size overflow to 5", post + "Transfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n", "POST / 1.1 host=a cl=-1 chunked | 400"},
	{"chunk missing CRLF after data", post + "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloGET / HTTP/1.1\r\n\r\n0\r\n\r\n", "POST / 1.1 host=a cl=-1 chunked | 400"},
	{"chunk bare LF lines", post + "Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n", "POST / 1.1 host=a cl=-1 chunked | 400"},
	{"chunk trailing space", post + "Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", "POST / 1.1 host=a cl=-1 chunked | 400"},
	{"chunk trailer Content-Length", post + "Transfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 5\r\n\r\nhello", "POST / 1.1 host=a cl=-1 chunked | 400"},
	{"chunked then next request", post + "Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\nGET /2 HTTP/1.1\r\n", `POST / 1.1 host=a cl=-1 chunked | body="x" rest="GET /2 HTTP/1.1\r\n"`},
	{"request line multiple spaces", "GET  /  HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"request line bare LF", "GET /path HTTP/1.1\nHost: a\r\n\r\n", "400"},
	{"HTTP/0.9", "GET /\r\n\r\n", "400"},
	{"absolute-form conflicting Host", "GET http://internal/ HTTP/1.1\r\nHost: public\r\n\r\n", "400"},
	{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", "400"},
	{"Host obs-fold", "GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n", "400"},
	{"GET without body", "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\n", `GET / 1.1 host=a cl=-1 | rest="GET /2 HTTP/1.1\r\n"`},
}

func TestSmuggling(t *testing.T) {
	for _, tt := range smugglingTests {
		t.Run(tt.name, func(t *testing.T) {
			if got := smuggle(tt.in); got != tt.want {
				t.Errorf("%q\n got %s\nwant %s", tt.in, got, tt.want)
			}
		})
	}
}
