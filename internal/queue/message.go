package queue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/hop"
)

// Message is one request stored for later delivery.
type Message struct {
	// ID names the delivery; Put assigns it.
	ID string `json:"id"`
	// Route is the name of the route the request came in on.
	Route string `json:"route"`
	// Method and Target are the request's method and the URL (or path)
	// it is to be delivered to.
	Method string `json:"method"`
	Target string `json:"target"`
	// Header is the request's header without hop-by-hop fields; Put
	// removes those and sets Idempotency-Key.
	Header http.Header `json:"header,omitempty"`
	// Body is the whole request body, at most Options.MaxBody bytes.
	Body []byte `json:"-"`
	// Arrived is when the request reached switchboard; zero means when
	// Put was called.
	Arrived time.Time `json:"arrived"`
	// Deadline, when not zero, is when delivery is given up; the worker's
	// MaxAge can end it earlier.
	Deadline time.Time `json:"deadline,omitzero"`
	// NotBefore, when not zero, is the earliest time of the first
	// delivery attempt: a request whose upstream just failed is not sent
	// to it again at once.
	NotBefore time.Time `json:"not_before,omitzero"`
	// Attempts counts the delivery attempts made before this one; Put
	// ignores it.
	Attempts int `json:"attempts,omitempty"`
	// IdempotencyKey is the caller's Idempotency-Key or, when it sent
	// none, one Put generates. Every attempt carries it.
	IdempotencyKey string `json:"idempotency_key"`

	// Generation counts the replays of this delivery; the queue sets it
	// (see the package doc).
	Generation int `json:"generation,omitempty"`
}

// TooLargeError is returned by Put for a request whose body (or whole
// stored message) exceeds the limit. Nothing was stored; the proxy answers
// 413 Content Too Large.
type TooLargeError struct {
	Size, Limit int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("queue: message of %d bytes over the limit of %d", e.Size, e.Limit)
}

// endToEnd returns a copy of h without the hop-by-hop headers and without
// the headers its Connection header names.
func endToEnd(h http.Header) http.Header {
	conn := h["Connection"]
	out := make(http.Header, len(h))
	for k, vv := range h {
		k = http.CanonicalHeaderKey(k)
		if !hop.Drop(k, conn) {
			out[k] = append([]string(nil), vv...)
		}
	}
	return out
}

// encode lays m out as stored: its metadata as one line of JSON (which
// never holds a raw newline), then the body.
func (m *Message) encode() ([]byte, error) {
	meta, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode message %s: %w", m.ID, err)
	}
	buf := make([]byte, 0, len(meta)+1+len(m.Body))
	buf = append(buf, meta...)
	buf = append(buf, '\n')
	return append(buf, m.Body...), nil
}

var errMalformed = errors.New("queue: malformed stored message")

func decodeMessage(data []byte) (Message, error) {
	var m Message
	meta, body, ok := bytes.Cut(data, []byte{'\n'})
	if !ok {
		return m, errMalformed
	}
	if err := json.Unmarshal(meta, &m); err != nil {
		return m, fmt.Errorf("%w: %w", errMalformed, err)
	}
	if m.ID == "" {
		return m, errMalformed
	}
	m.Body = body
	return m, nil
}
