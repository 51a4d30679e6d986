package upstream

import (
	"net"
	"net/http"
	"testing"
	"time"
)

func TestKeepAliveTimeout(t *testing.T) {
	for _, tc := range []struct {
		in string
		d  time.Duration
		ok bool
	}{
		{"timeout=5", 5 * time.Second, true},
		{"timeout=5, max=1000", 5 * time.Second, true},
		{"max=100, Timeout = 2", 2 * time.Second, true},
		{`timeout="3"`, 3 * time.Second, true},
		{"timeout=0", 0, true},
		{"max=5", 0, false},
		{"timeout=-1", 0, false},
		{"timeout=soon", 0, false},
		{"", 0, false},
	} {
		d, ok := keepAliveTimeout(tc.in)
		if d != tc.d || ok != tc.ok {
			t.Errorf("keepAliveTimeout(%q) = %v, %v; want %v, %v", tc.in, d, ok, tc.d, tc.ok)
		}
	}
}

func TestRetireAfter(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"", 0}, // no hint: the pool's idle_conn_timeout alone
		{"timeout=1", 750 * time.Millisecond},
		{"timeout=5", 4500 * time.Millisecond},
		{"timeout=60", 54 * time.Second},
		{"timeout=0", time.Nanosecond}, // do not reuse at all
	} {
		e := &Endpoint{}
		h := http.Header{}
		if tc.header != "" {
			h.Set("Keep-Alive", tc.header)
		}
		e.ObserveKeepAlive(h)
		if got := e.retireAfter(); got != tc.want {
			t.Errorf("Keep-Alive %q: retire after %v, want %v", tc.header, got, tc.want)
		}
	}
}

// An idle connection is closed before the advertised timeout, unless a
// request takes it first; a stale Idle (the transport handed the connection
// on before the hook ran) does nothing.
func TestIdleRetires(t *testing.T) {
	e := &Endpoint{}
	e.ObserveKeepAlive(http.Header{"Keep-Alive": {"timeout=0"}})
	pipe := func() *Conn {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		return newConn(a)
	}

	idle := pipe()
	e.Idle(idle, idle.Busy())
	select {
	case <-idle.Closed():
	case <-time.After(5 * time.Second):
		t.Fatal("idle connection not retired")
	}

	taken := pipe()
	use := taken.Busy()
	taken.Busy() // the next request took it before Idle ran
	e.Idle(taken, use)
	e.ObserveKeepAlive(http.Header{"Keep-Alive": {"timeout=1"}})
	reused := pipe()
	e.Idle(reused, reused.Busy())
	reused.Busy() // taken again within the 750ms
	time.Sleep(time.Second)
	for name, c := range map[string]*Conn{"stale Idle": taken, "reused": reused} {
		select {
		case <-c.Closed():
			t.Errorf("%s: a busy connection was retired", name)
		default:
		}
	}
}
