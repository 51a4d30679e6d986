package client

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// body is a request's body as the attempts send it.
type body struct {
	next io.ReadCloser // the body for the next attempt; nil once used
	// get returns the body for a later attempt; nil when the body cannot
	// be sent again.
	get    func() (io.ReadCloser, error)
	length int64 // the ContentLength to send
	// unbuffered says the body was too long to keep and goes out once.
	unbuffered bool
}

// newBody prepares req's body for one or more attempts, keeping up to limit
// bytes of it (none if limit <= 0) when it cannot be had again through
// req.GetBody. The first attempt of a body that does not fit sends the kept
// bytes and then the rest of req.Body. newBody reads req.Body before any
// attempt; a failure to read it is the caller's and closes req.Body.
func newBody(req *http.Request, limit int64) (body, error) {
	rc, n := req.Body, req.ContentLength
	switch {
	case rc == nil || rc == http.NoBody:
		return body{next: rc, get: noBody, length: n}, nil
	case req.GetBody != nil:
		return body{next: rc, get: req.GetBody, length: n}, nil
	case limit <= 0 || n > limit:
		return body{next: rc, length: n, unbuffered: true}, nil
	}
	// Read one byte past the limit to learn whether the body fits.
	kept, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		rc.Close()
		return body{}, fmt.Errorf("read request body: %w", err)
	}
	if int64(len(kept)) > limit {
		rest := struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(kept), rc), rc}
		return body{next: rest, length: n, unbuffered: true}, nil
	}
	rc.Close()
	if n <= 0 {
		n = int64(len(kept)) // known now: send it with Content-Length
	}
	get := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(kept)), nil }
	if len(kept) == 0 {
		get = noBody
	}
	first, _ := get()
	return body{next: first, get: get, length: n}, nil
}

func noBody() (io.ReadCloser, error) { return http.NoBody, nil }

// replayable reports whether the body can be sent again.
func (b *body) replayable() bool { return b.get != nil }

// take returns the body for the next attempt. After the first attempt it
// asks get for a fresh one.
func (b *body) take() (io.ReadCloser, error) {
	if rc := b.next; rc != nil {
		b.next = nil
		return rc, nil
	}
	if b.get == nil {
		return nil, errNotReplayable
	}
	return b.get()
}

var errNotReplayable = errors.New("request body cannot be sent again")
