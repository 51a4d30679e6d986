package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/queue"
)

// queueAPI serves the delivery queue's operator endpoints (docs/queue.md).
// q is nil when no route is async: every endpoint then answers 404.
type queueAPI struct {
	q   *queue.Queue
	now func() time.Time
}

func (a *queueAPI) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /queue/deliveries", a.need(a.list))
	mux.HandleFunc("GET /queue/deliveries/{id}", a.need(a.show))
	mux.HandleFunc("POST /queue/deliveries/{id}/replay", a.need(a.replay))
	mux.HandleFunc("DELETE /queue/deliveries/{id}", a.need(a.drop))
	mux.HandleFunc("POST /queue/replay", a.need(a.replayAll))
	mux.HandleFunc("POST /queue/purge", a.need(a.purge))
}

// need answers 404 when there is no queue.
func (a *queueAPI) need(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.q == nil {
			jsonError(w, http.StatusNotFound, "queue not enabled: no route has mode async")
			return
		}
		h(w, r)
	}
}

// ListResponse is the body of GET /queue/deliveries.
type ListResponse struct {
	Deliveries []*queue.Record `json:"deliveries"`
}

func (a *queueAPI) list(w http.ResponseWriter, r *http.Request) {
	state, ok := stateParam(w, r, true)
	if !ok {
		return
	}
	recs, err := a.q.List(r.Context(), r.URL.Query().Get("route"), state)
	if err != nil {
		queueError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ListResponse{Deliveries: nonNil(recs)})
}

func (a *queueAPI) show(w http.ResponseWriter, r *http.Request) {
	rec, err := a.q.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		queueError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// replay makes one dead letter pending again and answers its record.
func (a *queueAPI) replay(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := a.q.Replay(r.Context(), id); err != nil {
		queueError(w, err)
		return
	}
	a.show(w, r)
}

// ReplayResponse is the body of POST /queue/replay.
type ReplayResponse struct {
	Replayed []string      `json:"replayed"`
	Failed   []ReplayError `json:"failed,omitempty"`
}

// ReplayError is a dead letter POST /queue/replay could not replay.
type ReplayError struct {
	ID    string `json:"id"`
	Error string `json:"error"`
}

// replayAll replays every dead letter, or those of ?route=. One that
// stopped being dead meanwhile (another operator replayed or dropped it)
// is skipped silently; any other failure is listed and makes the answer
// 500, after the rest were tried.
func (a *queueAPI) replayAll(w http.ResponseWriter, r *http.Request) {
	recs, err := a.q.List(r.Context(), r.URL.Query().Get("route"), queue.Dead)
	if err != nil {
		queueError(w, err)
		return
	}
	res := ReplayResponse{Replayed: []string{}}
	for _, rec := range recs {
		err := a.q.Replay(r.Context(), rec.ID)
		switch {
		case err == nil:
			res.Replayed = append(res.Replayed, rec.ID)
		case errors.Is(err, queue.ErrNotFound), errors.As(err, new(*queue.StateError)):
		default:
			res.Failed = append(res.Failed, ReplayError{ID: rec.ID, Error: err.Error()})
		}
	}
	status := http.StatusOK
	if len(res.Failed) > 0 {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, res)
}

// DropResponse is the body of DELETE /queue/deliveries/{id}.
type DropResponse struct {
	ID string `json:"id"`
	// Was is the state the delivery was in: pending (now cancelled) or
	// dead (now removed).
	Was queue.State `json:"was"`
	// Result is "cancelled" or "removed".
	Result string `json:"result"`
}

func (a *queueAPI) drop(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	was, err := a.q.Drop(r.Context(), id)
	if err != nil {
		queueError(w, err)
		return
	}
	res := DropResponse{ID: id, Was: was, Result: "removed"}
	if was == queue.Pending {
		res.Result = "cancelled"
	}
	writeJSON(w, http.StatusOK, res)
}

// PurgeResponse is the body of POST /queue/purge.
type PurgeResponse struct {
	Purged int `json:"purged"`
}

// purge removes the records in ?state= (delivered, dead or cancelled)
// that last changed more than ?before= (a Go duration, e.g. 24h) ago;
// without before, all of them.
func (a *queueAPI) purge(w http.ResponseWriter, r *http.Request) {
	state, ok := stateParam(w, r, false)
	if !ok {
		return
	}
	if state == queue.Pending {
		jsonError(w, http.StatusBadRequest, "pending deliveries cannot be purged: drop them one by one")
		return
	}
	var before time.Time
	if s := r.URL.Query().Get("before"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			jsonError(w, http.StatusBadRequest, fmt.Sprintf("before=%q: want a duration such as 24h or 90m", s))
			return
		}
		before = a.now().Add(-d)
	}
	n, err := a.q.Purge(r.Context(), state, before)
	if err != nil {
		queueError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, PurgeResponse{Purged: n})
}

// stateParam reads ?state=; an empty one is allowed only when optional.
// On a bad value it answers 400 and reports false.
func stateParam(w http.ResponseWriter, r *http.Request, optional bool) (queue.State, bool) {
	s := r.URL.Query().Get("state")
	if s == "" && optional {
		return "", true
	}
	st, ok := queue.ParseState(s)
	if !ok {
		jsonError(w, http.StatusBadRequest, fmt.Sprintf("state=%q: want pending, delivered, dead or cancelled", s))
		return "", false
	}
	return st, true
}

// queueError answers err from the queue: 404 for an unknown id, 409 for a
// delivery in the wrong state, 400 for a state Purge refuses, 500 else.
func queueError(w http.ResponseWriter, err error) {
	var se *queue.StateError
	switch {
	case errors.Is(err, queue.ErrNotFound):
		jsonError(w, http.StatusNotFound, "no such delivery")
	case errors.As(err, &se):
		jsonError(w, http.StatusConflict, err.Error())
	case errors.Is(err, queue.ErrBadPurge):
		jsonError(w, http.StatusBadRequest, err.Error())
	default:
		jsonError(w, http.StatusInternalServerError, err.Error())
	}
}

// ErrorResponse is the body of every error answer of the queue API.
type ErrorResponse struct {
	Error string `json:"error"`
}

func jsonError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, ErrorResponse{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func nonNil(recs []*queue.Record) []*queue.Record {
	if recs == nil {
		return []*queue.Record{}
	}
	return recs
}
