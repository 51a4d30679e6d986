package hanguptest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// Timeout bounds every blocking operation of the peers in this package that
// takes no explicit duration: reading a request or response, writing,
// dialing, and waiting for a peer to hang up in the canned handlers.
const Timeout = 10 * time.Second

// PeerClose says how a peer ended a connection, as seen by the local read
// that failed.
type PeerClose int

const (
	// PeerFIN is an orderly close: the read returned io.EOF, or
	// io.ErrUnexpectedEOF when the FIN cut a message short.
	PeerFIN PeerClose = iota + 1
	// PeerRST is a reset: the read returned ECONNRESET.
	PeerRST
)

// String returns "fin", "reset" or "PeerClose(n)", matching the kind names
// of the hang-up taxonomy.
func (p PeerClose) String() string {
	switch p {
	case PeerFIN:
		return "fin"
	case PeerRST:
		return "reset"
	}
	return fmt.Sprintf("PeerClose(%d)", int(p))
}

// classifyRead reports how the peer closed the connection, given the error
// of a failed read, or 0 if err does not say the peer closed it (a timeout,
// a local close).
func classifyRead(err error) PeerClose {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return PeerFIN
	case errors.Is(err, syscall.ECONNRESET):
		return PeerRST
	}
	return 0
}

// readUntilClosed reads r until it fails or d elapses, appending what it
// read to buf if keep is set. It returns the time the read failed and the
// classification, or an error if the read failed for any other reason than
// the peer closing (including the deadline).
func readUntilClosed(conn net.Conn, r *bufio.Reader, d time.Duration, keep bool) ([]byte, time.Time, PeerClose, error) {
	if err := conn.SetReadDeadline(time.Now().Add(d)); err != nil {
		return nil, time.Time{}, 0, fmt.Errorf("set read deadline: %w", err)
	}
	var got []byte
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if keep {
			got = append(got, buf[:n]...)
		}
		if err == nil {
			continue
		}
		at := time.Now()
		if pc := classifyRead(err); pc != 0 {
			return got, at, pc, nil
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return got, at, 0, fmt.Errorf("peer did not close within %v: %w", d, err)
		}
		return got, at, 0, fmt.Errorf("read until peer closes: %w", err)
	}
}

// closeFIN half-closes conn for writing, which sends a FIN, and then closes
// it. The close sends an RST instead if received bytes are still unread in
// the kernel, so callers read what the peer sent first.
func closeFIN(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_ = conn.Close()
}

// reset closes conn with SO_LINGER 0, which makes the kernel discard unsent
// data and send an RST instead of a FIN.
func reset(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
