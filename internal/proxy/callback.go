package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/switchboard-proxy/switchboard/hangup"
	"github.com/switchboard-proxy/switchboard/internal/attempt"
	"github.com/switchboard-proxy/switchboard/internal/queue"
)

// Callback limits. Callbacks are best effort: kept only in memory, so a
// restart, a full backlog or a callback server that keeps failing loses
// them; the status URL stays the record of truth.
const (
	// callbackBacklog bounds the notifications waiting for a sender. It
	// is large on purpose: the worker hands them over without waiting,
	// and a burst of deliveries ending together should not lose any
	// while a callback server is merely slow. A full backlog drops the
	// newest, logged.
	callbackBacklog = 1024
	// callbackSenders is how many notifications are sent at once.
	callbackSenders = 4
	// callbackTimeout bounds each POST.
	callbackTimeout = 5 * time.Second
)

// callbackPolicy retries a callback that could not be sent or got a
// transient status, twice, after 1s then 2s (ceilings, full jitter).
var callbackPolicy = &attempt.Policy{
	MaxAttempts:   3,
	RetryOnStatus: []int{http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout},
	BackoffBase:   time.Second,
	BackoffMax:    4 * time.Second,
	RetryAfterMax: 10 * time.Second,
}

// notification is the JSON body POSTed to a route's callback URL when a
// delivery ends.
type notification struct {
	ID       string `json:"id"`
	Route    string `json:"route"`
	State    string `json:"state"` // "delivered" or "dead"
	Attempts int    `json:"attempts"`
	// Status is the upstream's status, for a delivered one.
	Status int `json:"status,omitempty"`
	// Reason says why a dead one died.
	Reason    string `json:"reason,omitempty"`
	StatusURL string `json:"status_url"`
}

// callback is one notification and where it goes.
type callback struct {
	url  string
	note notification
}

// notifier POSTs notifications to callback URLs off the worker's path:
// the worker enqueues without blocking, and callbackSenders goroutines,
// run by the Server between Start and Close, send them.
type notifier struct {
	log    *slog.Logger
	client *http.Client
	policy *attempt.Policy
	queue  chan callback // see callbackBacklog
}

func newNotifier(log *slog.Logger) *notifier {
	return &notifier{
		log: log,
		// No keep-alive: callbacks are rare, and so no idle connection
		// outlives Close.
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		policy: callbackPolicy,
		queue:  make(chan callback, callbackBacklog),
	}
}

// notify queues a notification of e, which ended a delivery, for url. It
// never blocks: with the backlog full the notification is dropped.
func (n *notifier) notify(url string, e queue.Event) {
	note := notification{ID: e.ID, Route: e.Route, State: string(e.State), Attempts: e.Attempts,
		StatusURL: deliveriesPrefix + e.ID}
	switch e.State {
	case queue.Delivered:
		note.Status = e.Status
	case queue.Dead:
		note.Reason = e.Reason
	}
	select {
	case n.queue <- callback{url: url, note: note}:
	default:
		n.log.Warn("queue callback dropped: too many waiting", "delivery", e.ID, "route", e.Route, "url", url)
	}
}

// run sends notifications until ctx ends; those still waiting then are
// lost.
func (n *notifier) run(ctx context.Context) {
	for {
		select {
		case c := <-n.queue:
			n.send(ctx, c)
		case <-ctx.Done():
			return
		}
	}
}

// send POSTs c, retrying by n.policy, and logs a failure.
func (n *notifier) send(ctx context.Context, c callback) {
	body, err := json.Marshal(c.note)
	if err != nil {
		n.log.Error("queue callback: encode", "delivery", c.note.ID, "error", err.Error())
		return
	}
	loop := n.policy.Start(time.Time{})
	for {
		res := n.post(ctx, c, body)
		if res.Failure == nil && res.Status >= 200 && res.Status < 300 {
			return
		}
		v := loop.After(res)
		if !v.Retry || attempt.Wait(ctx, v.Delay) != nil {
			n.log.Warn("queue callback failed", "delivery", c.note.ID, "route", c.note.Route, "url", c.url,
				"attempts", loop.Attempts(), "error", callbackError(res))
			return
		}
	}
}

// post makes one attempt to send body to c.url.
func (n *notifier) post(ctx context.Context, c callback, body []byte) attempt.Result {
	actx, cancel := context.WithTimeout(ctx, callbackTimeout)
	defer cancel()
	r := attempt.Result{Request: hangup.Attempt{Method: http.MethodPost, HasIdempotencyKey: true, BodyReplayable: true}}
	req, err := http.NewRequestWithContext(actx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		r.Failure = &attempt.Failure{Side: hangup.Proxy, Err: err}
		return r
	}
	req.Header.Set("Content-Type", "application/json")
	// The same key on every attempt and every instance that might send
	// it: the receiver can drop duplicates.
	req.Header.Set("Idempotency-Key", c.note.ID+"."+c.note.State)
	res, err := n.client.Do(req)
	if err != nil {
		r.Failure = &attempt.Failure{Side: hangup.Upstream, Kind: hangup.Classify(err), Err: err}
		return r
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 4<<10))
	res.Body.Close()
	r.Status, r.RetryAfter = res.StatusCode, res.Header.Get("Retry-After")
	return r
}

// callbackError says how the last attempt failed, for the log.
func callbackError(r attempt.Result) string {
	if r.Failure != nil && r.Failure.Err != nil {
		return r.Failure.Err.Error()
	}
	return fmt.Sprintf("status %d", r.Status)
}
