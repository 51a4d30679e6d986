package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/switchboard-proxy/switchboard/client"
	"github.com/switchboard-proxy/switchboard/hangup"
)

// resetConn hangs up on a request with a TCP reset, before any response
// byte: what Node.js reports as "socket hang up" (ECONNRESET).
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	_ = conn.(*net.TCPConn).SetLinger(0)
	conn.Close()
}

// A GET whose first attempt is reset before any response byte is sent
// again, and the caller gets the second attempt's response.
func Example() {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			resetConn(w)
			return
		}
		fmt.Fprint(w, "hello")
	}))
	defer srv.Close()

	c := client.New(client.Options{
		OnAttempt: func(a client.AttemptInfo) {
			fmt.Printf("attempt %d: status %d %s/%s/%s retry=%v reason=%q\n",
				a.Attempt, a.Status, a.Side, a.Phase, a.Kind, a.Retry, a.Reason)
		},
	})
	defer c.CloseIdleConnections()

	res, err := c.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	fmt.Println(res.Status, string(body))
	// Output:
	// attempt 1: status 0 upstream/await_headers/reset retry=true reason="reset_before_response"
	// attempt 2: status 200 none/none/none retry=false reason=""
	// 200 OK hello
}

// A POST is not idempotent: sent twice, it may take effect twice. With
// AddIdempotencyKey, the Transport gives it an Idempotency-Key, the same on
// every attempt, so a server that applies each key once can be sent it
// again after a hang-up.
func ExampleOptions_addIdempotencyKey() {
	var (
		mu   sync.Mutex
		keys []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		first := len(keys) == 1
		mu.Unlock()
		if first {
			resetConn(w)
			return
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "created %s", body)
	}))
	defer srv.Close()

	c := client.New(client.Options{AddIdempotencyKey: true})
	defer c.CloseIdleConnections()

	res, err := c.Post(srv.URL, "text/plain", strings.NewReader("order 42"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	fmt.Println(res.Status, string(body))
	mu.Lock()
	defer mu.Unlock()
	fmt.Println("attempts:", len(keys), "same key:", keys[0] == keys[1], "key length:", len(keys[0]))
	// Output:
	// 201 Created created order 42
	// attempts: 2 same key: true key length: 36
}

// When no attempt brings a response, the error says who hung up, in which
// phase, how, how often the request was tried and why it was not tried
// again; errors.Is and errors.As see the cause through it.
func ExampleTransport_error() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resetConn(w)
	}))
	defer srv.Close()

	c := client.New(client.Options{})
	defer c.CloseIdleConnections()

	for _, method := range []string{http.MethodGet, http.MethodPost} {
		req, _ := http.NewRequest(method, srv.URL, nil)
		_, err := c.Do(req)
		var he *hangup.Error
		if !errors.As(err, &he) {
			fmt.Println("unexpected:", err)
			return
		}
		fmt.Printf("%s: %s hung up in %s with a %s; %d attempt(s); no retry because %s; ECONNRESET: %v\n",
			method, he.Side, he.Phase, he.Kind, he.Attempts, he.NoRetry, errors.Is(err, syscall.ECONNRESET))
	}
	// Output:
	// GET: upstream hung up in await_headers with a reset; 3 attempt(s); no retry because attempts_exhausted; ECONNRESET: true
	// POST: upstream hung up in await_headers with a reset; 1 attempt(s); no retry because not_idempotent; ECONNRESET: true
}

// A POST the server cannot take now (503) is written to the outbox file and
// delivered by the outbox's sender once the server recovers.
func ExampleOutbox() {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "applied %s", body)
	}))
	defer srv.Close()

	dir, err := os.MkdirTemp("", "outbox")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	done := make(chan client.Entry)
	ob, err := client.OpenOutbox(filepath.Join(dir, "outbox.db"), client.OutboxOptions{
		BackoffBase: 10 * time.Millisecond,
		Outcomes:    done,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ob.Close()

	req, _ := http.NewRequest("POST", srv.URL+"/invoices", strings.NewReader("invoice 7"))
	rc, err := ob.Send(context.Background(), req)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("queued:", rc.Queued)
	e := <-done
	fmt.Println(e.State, e.Status, string(e.Response), "after", len(e.Attempts), "attempts")
	// Output:
	// queued: true
	// delivered 200 applied invoice 7 after 2 attempts
}
