package queue

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// State is where a delivery stands.
type State string

// The states of a delivery. Pending is the only one that changes by
// itself; the others end it, until Replay (dead) or Purge.
const (
	Pending   State = "pending"
	Delivered State = "delivered"
	Dead      State = "dead"
	Cancelled State = "cancelled"
)

// ParseState returns the State named s, and whether s names one.
func ParseState(s string) (State, bool) {
	st := State(s)
	return st, st.valid()
}

func (s State) valid() bool {
	switch s {
	case Pending, Delivered, Dead, Cancelled:
		return true
	}
	return false
}

// Record is the status of one delivery, as Get and List return it.
type Record struct {
	ID             string    `json:"id"`
	Route          string    `json:"route"`
	Method         string    `json:"method"`
	Target         string    `json:"target"`
	IdempotencyKey string    `json:"idempotency_key"`
	State          State     `json:"state"`
	Arrived        time.Time `json:"arrived"`
	Deadline       time.Time `json:"deadline,omitzero"`
	// Updated is when the record last changed.
	Updated time.Time `json:"updated"`
	// Attempts counts attempts of the current generation; Replay resets
	// it. Outcomes keeps every attempt of every generation.
	Attempts int              `json:"attempts"`
	Outcomes []AttemptOutcome `json:"outcomes,omitempty"`
	// NextAttempt, when not zero, is the earliest time of the next
	// attempt (the end of a backoff).
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// Reason says why the delivery is dead or was cancelled.
	Reason string `json:"reason,omitempty"`
	// Response is the upstream's answer once delivered.
	Response   *Response `json:"response,omitempty"`
	Generation int       `json:"generation,omitempty"`
	// Size is the stored body's length in bytes.
	Size int `json:"size"`
	// Seq is the stream sequence of the delivery's current message, 0
	// when unknown.
	Seq uint64 `json:"seq,omitempty"`
}

// AttemptOutcome is what one delivery attempt came to.
type AttemptOutcome struct {
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration"`
	// Status is the upstream's status, 0 when there was no response.
	Status int `json:"status,omitempty"`
	// Error describes a failure without a response.
	Error string `json:"error,omitempty"`
	// Verdict is the attempt loop's reason: why it is retried, or why
	// not ("attempts_exhausted", "deadline", ...); empty for a final
	// answer.
	Verdict string `json:"verdict,omitempty"`
}

// Response is an upstream's answer, kept for the status URL.
type Response struct {
	Status int         `json:"status"`
	Header http.Header `json:"header,omitempty"`
	// Body is the start of the response body, at most
	// WorkerConfig.MaxResponseBody bytes; Truncated says whether more
	// was cut off.
	Body      []byte `json:"body,omitempty"`
	Truncated bool   `json:"truncated,omitempty"`
}

func newRecord(m *Message, now time.Time) *Record {
	return &Record{
		ID:             m.ID,
		Route:          m.Route,
		Method:         m.Method,
		Target:         m.Target,
		IdempotencyKey: m.IdempotencyKey,
		State:          Pending,
		Arrived:        m.Arrived,
		Deadline:       m.Deadline,
		Updated:        now,
		Generation:     m.Generation,
		Size:           len(m.Body),
		NextAttempt:    m.NotBefore,
	}
}

func decodeRecord(data []byte) (*Record, error) {
	r := new(Record)
	if err := json.Unmarshal(data, r); err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	return r, nil
}

// StateError is returned when a delivery is not in a state that allows the
// operation (cancelling one that was delivered, replaying a pending one).
type StateError struct {
	ID    string
	State State
	Op    string
}

func (e *StateError) Error() string {
	return fmt.Sprintf("queue: cannot %s delivery %s: it is %s", e.Op, e.ID, e.State)
}
