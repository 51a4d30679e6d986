package h1

import (
	"bufio"
	"io"
)

// LengthReader reads a body of a declared length (Content-Length) from a
// buffered reader. It returns io.EOF with the last byte, and
// io.ErrUnexpectedEOF if the connection ends first.
type LengthReader struct {
	R    *bufio.Reader
	Left int64 // bytes still to read
}

func (l *LengthReader) Read(p []byte) (int, error) {
	if l.Left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.Left {
		p = p[:l.Left]
	}
	n, err := l.R.Read(p)
	l.Left -= int64(n)
	switch {
	case l.Left == 0:
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF // shorter than declared
	}
	return n, err
}
