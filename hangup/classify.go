package hangup

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
)

// Classify reports what kind of hang-up err describes. It returns KindNone
// for nil and KindUnknown for an error it cannot place.
//
// It looks through wrapped errors with errors.Is and errors.As first. Some
// errors of net/http and its bundled HTTP/2 implementation are unexported and
// can only be recognised by their text; those matches live here and nowhere
// else, each covered by a case in classify_test.go so an upstream change of
// wording fails a test instead of silently misclassifying.
func Classify(err error) Kind {
	if err == nil {
		return KindNone
	}
	if k := classifyTyped(err); k != KindUnknown {
		return k
	}
	return classifyText(err.Error())
}

func classifyTyped(err error) Kind {
	var te *TimeoutError
	switch {
	case errors.As(err, &te):
		return Timeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused
	case errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE):
		// EPIPE: a write after the peer reset or shut down the
		// connection; the peer is gone as abruptly as with a reset.
		return Reset
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, syscall.ETIMEDOUT):
		return Timeout
	case isNetTimeout(err):
		return Timeout
	case errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed):
		return FIN
	case errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH):
		return Refused
	}
	return KindUnknown
}

func isNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// textKinds maps fragments of unexported net/http errors to kinds. Order
// matters: the first match wins.
var textKinds = []struct {
	frag string
	kind Kind
}{
	{"connection reset by peer", Reset},
	{"broken pipe", Reset},
	{"stream error:", Reset},               // http2StreamError: RST_STREAM sent or received
	{"received from peer", Reset},          // same, cause text
	{"http2: stream closed", Reset},        // stream reset before the body ended
	{"server closed idle connection", FIN}, // errServerClosedIdle: the keep-alive race
	{"transport connection broken", FIN},
	{"http2: client connection lost", FIN},
	{"http2: client conn is closed", FIN},
	{"client disconnected", FIN}, // http2errClientDisconnected, server side
	{"GOAWAY", FIN},
	{"connection refused", Refused},
	{"i/o timeout", Timeout},
	{"use of closed network connection", FIN},
}

func classifyText(s string) Kind {
	for _, tk := range textKinds {
		if strings.Contains(s, tk.frag) {
			return tk.kind
		}
	}
	return KindUnknown
}

// IsTLSError reports whether err comes from a TLS handshake or certificate
// check rather than from the network.
func IsTLSError(err error) bool {
	var (
		ce *tls.CertificateVerificationError
		re tls.RecordHeaderError
		ae tls.AlertError
	)
	return errors.As(err, &ce) || errors.As(err, &re) || errors.As(err, &ae) ||
		strings.Contains(errString(err), "tls: ")
}

// IsCertificateError reports whether err is a failed certificate check.
func IsCertificateError(err error) bool {
	var ce *tls.CertificateVerificationError
	return errors.As(err, &ce) || strings.Contains(errString(err), "x509: ")
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// IsDNSError reports whether err is a failed name lookup.
func IsDNSError(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de)
}
