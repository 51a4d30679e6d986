package h1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// outcome is what a parse came to, as one comparable string: "400" (or the
// status of the *Error), "incomplete", or a summary of what was parsed.
func outcome(err error, summary func() string) string {
	var e *Error
	switch {
	case err == nil:
		return summary()
	case errors.Is(err, ErrIncomplete):
		return "incomplete"
	case errors.As(err, &e):
		return fmt.Sprint(e.Status)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected EOF"
	}
	return "error " + err.Error()
}

// summary is "METHOD target 1.minor host=h cl=n" plus the flags that are
// set; host=- means no Host field.
func (r *Request) summary() string {
	var s strings.Builder
	fmt.Fprintf(&s, "%s %s 1.%d host=%s cl=%d", r.Method, r.Target, r.Minor, nilDash(r.Host), r.ContentLength)
	flag(&s, r.Chunked, "chunked")
	flag(&s, r.Close, "close")
	flag(&s, r.Upgrade, "upgrade")
	flag(&s, r.Expect100, "expect")
	return s.String()
}

// summary is "1.minor status reason cl=n" plus the flags that are set.
func (r *Response) summary() string {
	var s strings.Builder
	fmt.Fprintf(&s, "1.%d %d %q cl=%d", r.Minor, r.Status, r.Reason, r.ContentLength)
	flag(&s, r.Chunked, "chunked")
	flag(&s, r.Close, "close")
	if r.KeepAlive != nil {
		fmt.Fprintf(&s, " keep-alive=%s", r.KeepAlive)
	}
	return s.String()
}

func nilDash(b []byte) string {
	if b == nil {
		return "-"
	}
	return string(b)
}

func flag(s *strings.Builder, set bool, name string) {
	if set {
		s.WriteString(" " + name)
	}
}

// parseReq parses a whole head and reports its outcome; an accepted head
// must be exactly the input.
func parseReq(in string, max int) string {
	var r Request
	n, err := ParseRequest([]byte(in), &r, max)
	return outcome(err, func() string {
		if n != len(in) {
			return fmt.Sprintf("n=%d of %d: %s", n, len(in), r.summary())
		}
		return r.summary()
	})
}

func parseResp(in string, max int) string {
	var r Response
	n, err := ParseResponse([]byte(in), &r, max)
	return outcome(err, func() string {
		if n != len(in) {
			return fmt.Sprintf("n=%d of %d: %s", n, len(in), r.summary())
		}
		return r.summary()
	})
}

// decodeChunked decodes body with a ChunkedReader and reports "body=%q" and
// the trailers, or the error, and whatever follows the body as rest=%q.
func decodeChunked(body string, bufSize, maxTrailer int) string {
	br := bufio.NewReaderSize(strings.NewReader(body), bufSize)
	var c ChunkedReader
	c.Reset(br, maxTrailer)
	data, err := io.ReadAll(&c)
	return outcome(err, func() string {
		var s strings.Builder
		fmt.Fprintf(&s, "body=%q", data)
		for _, f := range c.Trailers() {
			fmt.Fprintf(&s, " %s=%q", f.Name, f.Value)
		}
		if rest, _ := io.ReadAll(br); len(rest) > 0 {
			fmt.Fprintf(&s, " rest=%q", rest)
		}
		return s.String()
	})
}

// fields returns n distinct field lines.
func fields(n int) string {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "X-%d: v\r\n", i)
	}
	return b.String()
}
