package h1

import "errors"

// ErrIncomplete is returned by ParseRequest and ParseResponse when the
// buffer ends before the head does and no error was found in the part
// already there: the caller reads more and parses again.
var ErrIncomplete = errors.New("h1: incomplete message head")

// Error is a malformed or refused message. Status is what a server answers
// a request that fails this way (400, 431, 501 for a transfer coding other
// than chunked, 505 for a version other than HTTP/1.0 and HTTP/1.1);
// for a response or a response body it is what the upstream's message
// would have earned, and a proxy answers 502 instead. Reason is short,
// fixed text, safe to send to the peer: it never quotes the input.
//
// The parsers return shared values: compare them with errors.As and do not
// modify them.
type Error struct {
	Status int
	Reason string
}

func (e *Error) Error() string { return "h1: " + e.Reason }

func newError(status int, reason string) *Error { return &Error{Status: status, Reason: reason} }

// The errors are values, built once, so a rejected message costs no
// allocation either.
var (
	// Lines and fields.
	errBareLF           = newError(400, "bare LF line terminator")
	errBareCR           = newError(400, "bare CR")
	errObsFold          = newError(400, "obsolete line folding")
	errFieldName        = newError(400, "invalid field name")
	errSpaceBeforeColon = newError(400, "whitespace between field name and colon")
	errFieldValue       = newError(400, "invalid field value")
	errTooLarge         = newError(431, "message head too large")
	errTooManyFields    = newError(431, "too many header fields")

	// Start lines.
	errRequestLine = newError(400, "malformed request line")
	errMethod      = newError(400, "invalid method")
	errTarget      = newError(400, "invalid request target")
	errVersion     = newError(400, "malformed HTTP version")
	errVersionNot1 = newError(505, "HTTP version not supported")
	errStatusLine  = newError(400, "malformed status line")

	// Framing and routing fields.
	errNoHost          = newError(400, "missing Host")
	errManyHost        = newError(400, "more than one Host field")
	errHost            = newError(400, "invalid Host")
	errHostMismatch    = newError(400, "Host differs from the request target's authority")
	errCLAndTE         = newError(400, "both Content-Length and Transfer-Encoding")
	errManyCL          = newError(400, "more than one Content-Length")
	errCL              = newError(400, "invalid Content-Length")
	errManyTE          = newError(400, "more than one Transfer-Encoding field")
	errTE              = newError(400, "invalid Transfer-Encoding")
	errTEUnsupported   = newError(501, "unsupported Transfer-Encoding")
	errTEInHTTP10      = newError(400, "Transfer-Encoding in an HTTP/1.0 message")
	errTrailerDeclared = newError(400, "Trailer names a framing field")

	// Chunked bodies.
	errChunkSize     = newError(400, "invalid chunk size")
	errChunkExt      = newError(400, "invalid chunk extension")
	errChunkEnd      = newError(400, "missing CRLF after chunk data")
	errChunkLine     = newError(400, "chunk line too long")
	errChunkOverhead = newError(400, "too much chunk overhead")
	errTrailerSize   = newError(431, "trailer section too large")
	errTrailerField  = newError(400, "forbidden field in trailer section")
)
