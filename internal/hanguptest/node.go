package hanguptest

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// upstreamJS is testdata/upstream.js, embedded so that tests in any package
// can start it whatever their working directory.
//
//go:embed testdata/upstream.js
var upstreamJS []byte

// NodeOptions configures StartNode. The zero value is node's defaults.
type NodeOptions struct {
	// KeepAliveTimeout sets server.keepAliveTimeout, rounded to
	// milliseconds; 0 keeps node's default (5s). Node 20 advertises it as
	// "Keep-Alive: timeout=" whole seconds (rounded down, so 0 below 1s)
	// but closes an idle connection only about 1s after it.
	KeepAliveTimeout time.Duration
	// ExactKeepAlive makes the script close an idle connection exactly
	// KeepAliveTimeout after its last response, as node did before 20.x
	// added a 1s grace period and as most servers do.
	ExactKeepAlive bool
}

// NodeUpstream is a running testdata/upstream.js: a real Node http server on
// 127.0.0.1, reporting its view of each request as NodeEvents.
type NodeUpstream struct {
	URL  string // "http://127.0.0.1:port"
	Addr string // "127.0.0.1:port"

	cmd    *exec.Cmd
	stdin  io.Closer
	stderr *lockedBuffer
	events chan NodeEvent // unbuffered; fed by pump, closed when node's stdout ends
	stop   chan struct{}  // closed in cleanup: readStdout and pump stop sending
	read   chan struct{}  // closed when readStdout has seen stdout end
	wg     sync.WaitGroup // readStdout and pump
}

// NodeEvent is one JSON line printed by upstream.js; see the comment at the
// top of the script for the events and their fields.
type NodeEvent struct {
	Event  string  `json:"event"` // "listening", "connection", "request", "finished", "aborted", …
	ID     int     `json:"id"`    // request number, or connection number for "connection"
	Conn   int     `json:"conn"`  // connection number, for "request"
	Method string  `json:"method"`
	Path   string  `json:"path"` // without the query
	RID    string  `json:"rid"`  // the request's X-Req-Id header, for "request"
	T      float64 `json:"t"`    // ms, performance.now() on the node side
	// Unix is T as ms since the Unix epoch, comparable with Go times
	// through Time.
	Unix             float64 `json:"unix"`
	Writes           int     `json:"writes"`           // response body writes
	WritesAfterAbort int     `json:"writesAfterAbort"` // refused writes to a dead response; must be 0
	Bytes            int64   `json:"bytes"`            // request body bytes read
	Status           int     `json:"status"`           // for "finished"
	Port             int     `json:"port"`             // for "listening"
	Detail           string  `json:"detail"`           // for "client_error": the error code
}

// Time returns when the event happened, by the node process's clock.
func (e NodeEvent) Time() time.Time {
	ms := math.Floor(e.Unix)
	return time.UnixMilli(int64(ms)).Add(time.Duration((e.Unix - ms) * float64(time.Millisecond)))
}

// StartNode runs testdata/upstream.js with the machine's node, listening on
// 127.0.0.1 with an ephemeral port, and waits until it listens. If node is
// missing the test fails (it is not skipped): CI installs node. In t.Cleanup
// it closes node's stdin, on which the script exits, and waits for it,
// killing the process only if it has not exited within 5s.
func StartNode(t testing.TB, opts NodeOptions) *NodeUpstream {
	t.Helper()
	nodePath, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("hanguptest: node is required for Node upstream tests but was not found in PATH: %v", err)
	}
	script := filepath.Join(t.TempDir(), "upstream.js")
	if err := os.WriteFile(script, upstreamJS, 0o644); err != nil {
		t.Fatalf("hanguptest: write node script: %v", err)
	}
	args := []string{script}
	if opts.KeepAliveTimeout > 0 {
		args = append(args, "--keep-alive-timeout="+strconv.FormatInt(opts.KeepAliveTimeout.Milliseconds(), 10))
	}
	if opts.ExactKeepAlive {
		args = append(args, "--exact-keep-alive")
	}
	n := &NodeUpstream{
		cmd:    exec.Command(nodePath, args...),
		stderr: new(lockedBuffer),
		events: make(chan NodeEvent),
		stop:   make(chan struct{}),
		read:   make(chan struct{}),
	}
	n.cmd.Stderr = n.stderr
	stdin, err := n.cmd.StdinPipe()
	if err != nil {
		t.Fatalf("hanguptest: node stdin: %v", err)
	}
	stdout, err := n.cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("hanguptest: node stdout: %v", err)
	}
	n.stdin = stdin
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("hanguptest: start node: %v", err)
	}
	lines := make(chan NodeEvent)
	n.wg.Go(func() { n.readStdout(stdout, lines) })
	n.wg.Go(func() { n.pump(lines) })
	t.Cleanup(func() { n.close(t) })

	ev := n.WaitEvent(t, func(e NodeEvent) bool { return e.Event == "listening" }, Timeout)
	n.Addr = "127.0.0.1:" + strconv.Itoa(ev.Port)
	n.URL = "http://" + n.Addr
	return n
}

// Events returns the channel of events the script prints, in order, after
// "listening". The queue behind it is unbounded, so node never blocks on a
// test that reads late. It is closed when node's stdout ends (node exited).
func (n *NodeUpstream) Events() <-chan NodeEvent { return n.events }

// WaitEvent receives events from Events, discarding those for which pred is
// false, until one matches, and returns it. It fails the test if none
// matches within d or node exits first, showing node's stderr.
func (n *NodeUpstream) WaitEvent(t testing.TB, pred func(NodeEvent) bool, d time.Duration) NodeEvent {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-n.events:
			if !ok {
				t.Fatalf("hanguptest: node exited while waiting for an event; stderr:\n%s", n.stderr)
			}
			if pred(ev) {
				return ev
			}
		case <-timer.C:
			t.Fatalf("hanguptest: no matching node event within %v; stderr:\n%s", d, n.stderr)
		}
	}
}

// readStdout parses node's stdout into events and sends them to lines until
// stdout ends. After stop it keeps reading, discarding, so that node never
// blocks writing to its stdout while it shuts down.
func (n *NodeUpstream) readStdout(stdout io.Reader, lines chan<- NodeEvent) {
	defer close(n.read)
	defer close(lines)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var ev NodeEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			fmt.Fprintf(n.stderr, "hanguptest: bad event line %q: %v\n", sc.Text(), err)
			continue
		}
		select {
		case lines <- ev:
		case <-n.stop:
		}
	}
}

// pump forwards events from lines to n.events through an unbounded queue,
// and closes n.events once lines is closed and the queue is drained, or
// returns at stop.
func (n *NodeUpstream) pump(lines <-chan NodeEvent) {
	var queue []NodeEvent
	for lines != nil || len(queue) > 0 {
		var out chan<- NodeEvent
		var next NodeEvent
		if len(queue) > 0 {
			out, next = n.events, queue[0]
		}
		select {
		case ev, ok := <-lines:
			if !ok {
				lines = nil
				continue
			}
			queue = append(queue, ev)
		case out <- next:
			queue = queue[1:]
		case <-n.stop:
			return
		}
	}
	close(n.events)
}

func (n *NodeUpstream) close(t testing.TB) {
	close(n.stop)
	_ = n.stdin.Close()
	select {
	case <-n.read:
	case <-time.After(5 * time.Second):
		t.Errorf("hanguptest: node (pid %d) did not exit within 5s of its stdin closing; killing it", n.cmd.Process.Pid)
		_ = n.cmd.Process.Kill()
		<-n.read
	}
	if err := n.cmd.Wait(); err != nil {
		t.Errorf("hanguptest: node: %v; stderr:\n%s", err, n.stderr)
	}
	n.wg.Wait()
}

// lockedBuffer is an io.Writer safe for concurrent use, for node's stderr.
type lockedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
