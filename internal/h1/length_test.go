package h1

import (
	"bufio"
	"io"
	"strings"
	"testing"
)

func TestLengthReader(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("hello, next"))
	l := &LengthReader{R: br, Left: 5}
	b, err := io.ReadAll(l)
	if string(b) != "hello" || err != nil {
		t.Errorf("ReadAll = %q, %v", b, err)
	}
	if rest, _ := io.ReadAll(br); string(rest) != ", next" {
		t.Errorf("read past the body: rest %q", rest)
	}
	short := &LengthReader{R: bufio.NewReader(strings.NewReader("hel")), Left: 5}
	if _, err := io.ReadAll(short); err != io.ErrUnexpectedEOF {
		t.Errorf("short body: %v, want io.ErrUnexpectedEOF", err)
	}
}
