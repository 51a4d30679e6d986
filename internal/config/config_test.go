package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
)

const examplePath = "../../switchboard.example.yaml"

func decodeForTest(src string, v any) error {
	return yaml.UnmarshalWithOptions([]byte(src), v, yaml.Strict())
}

func TestExampleValidates(t *testing.T) {
	c, err := Load(examplePath)
	if err != nil {
		t.Fatalf("Load(%s): %v", examplePath, err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"listener", c.Listeners[0].Address, "127.0.0.1:8080"},
		{"admin", c.Admin.Address, "127.0.0.1:9901"},
		{"pool endpoint", c.Pool("app").Endpoints[0].Host, "127.0.0.1:3000"},
		{"events idle body", c.Route("events").Timeouts.IdleBody.D(), 10 * time.Minute},
		{"events prefix", c.Route("events").Match.PathPrefix, "/events"},
		{"catch-all prefix", c.Route("default").Match.PathPrefix, "/"},
		{"route count", len(c.Routes), 2},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v; want %v", ck.name, ck.got, ck.want)
		}
	}
}

// TestExampleShowsDefaults checks that the values written in the example are
// the defaults, so the example documents them truthfully.
func TestExampleShowsDefaults(t *testing.T) {
	c, err := Load(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	var wantPool Pool
	wantPool.applyDefaults()
	var wantRoute Route
	wantRoute.applyDefaults(0)
	l, p, r := c.Listeners[0], c.Pools[0], c.Routes[1]
	wantQueue := want.Queue
	wantQueue.Dir = filepath.Join("../..", defaultQueueDir) // resolved against the example's directory
	checks := []struct {
		name      string
		got, want any
	}{
		{"admin", c.Admin, want.Admin},
		{"access log", c.AccessLog, want.AccessLog},
		{"drain", c.DrainTimeout, want.DrainTimeout},
		{"drain delay", c.DrainDelay, want.DrainDelay},
		{"h2c", *l.H2C, true},
		{"read header", l.ReadHeaderTimeout.D(), defaultReadHeaderTimeout},
		{"idle", l.IdleTimeout.D(), defaultIdleTimeout},
		{"header bytes", l.MaxHeaderBytes, Size(defaultMaxHeaderBytes)},
		{"protocol", p.Protocol, ProtoHTTP1},
		{"max idle", p.MaxIdlePerEndpoint, defaultMaxIdle},
		{"idle conn", p.IdleConnTimeout.D(), defaultIdleConnTimeout},
		{"timeouts", r.Timeouts, Timeouts{Duration(defaultConnect), Duration(defaultResponseHeader), Duration(defaultIdleBody), 0}},
		{"body", r.MaxRequestBody, Size(defaultMaxRequestBody)},
		{"balance", p.Balance, wantPool.Balance},
		{"max conns", p.MaxConnsPerEndpoint, wantPool.MaxConnsPerEndpoint},
		{"max queue", p.MaxQueue, wantPool.MaxQueue},
		{"queue timeout", p.QueueTimeout, wantPool.QueueTimeout},
		{"health", p.Health, wantPool.Health},
		{"retries", r.Retries, wantRoute.Retries},
		{"events retries", c.Routes[0].Retries, wantRoute.Retries},
		{"hedge", r.Hedge, wantRoute.Hedge},
		{"mode", r.Mode, ModeSync},
		{"route queue", r.Queue, wantRoute.Queue},
		{"events route queue", c.Routes[0].Queue, wantRoute.Queue},
		{"queue", c.Queue, wantQueue},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s = %v; want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestDefault(t *testing.T) {
	c := Default()
	if c.Admin.Address != "127.0.0.1:9901" || c.AccessLog.Path != "stdout" || c.DrainTimeout.D() != 30*time.Second {
		t.Errorf("Default() = %+v", c)
	}
	if len(c.Listeners)+len(c.Pools)+len(c.Routes) != 0 {
		t.Errorf("Default() has listeners, pools or routes: %+v", c)
	}
}

const resolvedYAML = `
listeners:
  - address: 127.0.0.1:0
  - address: 127.0.0.1:0
    tls:
      cert_file: tls/server.crt
      key_file: tls/server.key
access_log:
  path: access.log
trusted_proxies: [10.1.2.3/8, 192.168.0.1, "::1"]
pools:
  - name: tls-app
    protocol: h2
    endpoints:
      - url: https://App.Internal
    tls:
      ca_file: tls/ca.pem
routes:
  - pool: tls-app
    match:
      host: "*.Example.com"
    timeouts:
      total: 2s
      connect: 1s
`

// TestParseResolves checks defaults and resolved fields on a config that
// uses most features.
func TestParseResolves(t *testing.T) {
	c, err := Parse("testdata/resolved.yaml", []byte(resolvedYAML))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Routes[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"plaintext h2c", *c.Listeners[0].H2C, true},
		{"tls h2c", *c.Listeners[1].H2C, false},
		{"cert resolved", c.Listeners[1].TLS.CertFile, "testdata/tls/server.crt"},
		{"ca resolved", c.Pools[0].TLS.CAFile, "testdata/tls/ca.pem"},
		{"access log resolved", c.AccessLog.Path, "testdata/access.log"},
		{"trusted cidr masked", c.TrustedNets[0], netip.MustParsePrefix("10.0.0.0/8")},
		{"trusted v4", c.TrustedNets[1], netip.MustParsePrefix("192.168.0.1/32")},
		{"trusted v6", c.TrustedNets[2], netip.MustParsePrefix("::1/128")},
		{"endpoint scheme", c.Pools[0].Endpoints[0].Scheme, "https"},
		{"endpoint host", c.Pools[0].Endpoints[0].Host, "app.internal:443"},
		{"endpoint weight", c.Pools[0].Endpoints[0].Weight, 1},
		{"route name", r.Name, "route0"},
		{"host lower-cased", r.Match.Host, "*.example.com"},
		{"explicit connect", r.Timeouts.Connect.D(), time.Second},
		{"default capped at total", r.Timeouts.ResponseHeader.D(), 2 * time.Second},
		{"prefix default", r.Match.PathPrefix, "/"},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v; want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestWhere(t *testing.T) {
	c, err := Parse("testdata/resolved.yaml", []byte(resolvedYAML))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, field, want string
	}{
		{"scalar value", "listeners[1].address", "testdata/resolved.yaml:4:14"},
		{"list item", "listeners[1]", "testdata/resolved.yaml:4:5"},
		{"nested", "routes[0].timeouts.connect", "testdata/resolved.yaml:24:16"},
		{"defaulted field falls back to parent", "routes[0].timeouts.idle_body", "testdata/resolved.yaml:22:5"},
		{"unknown field falls back to file", "nonsense", "testdata/resolved.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.Where(tt.field); got != tt.want {
				t.Errorf("Where(%q) = %q; want %q", tt.field, got, tt.want)
			}
		})
	}
}

func TestLookups(t *testing.T) {
	c, err := Load(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	if c.Route("events") != &c.Routes[0] || c.Pool("app") != &c.Pools[0] {
		t.Error("Route/Pool do not return pointers into the config")
	}
	if c.Route("nope") != nil || c.Pool("nope") != nil {
		t.Error("lookup of a missing name is not nil")
	}
}

func TestFromFlags(t *testing.T) {
	c, err := FromFlags("127.0.0.1:0", "http://127.0.0.1:3000")
	if err != nil {
		t.Fatal(err)
	}
	r := c.Route("default")
	if r == nil || r.Pool != "default" || r.Match != (Match{PathPrefix: "/"}) {
		t.Errorf("route = %+v", r)
	}
	if p := c.Pool("default"); p == nil || p.Endpoints[0].Host != "127.0.0.1:3000" {
		t.Errorf("pool = %+v", p)
	}
	if c.File != "" || c.Where("listeners[0].address") != "" {
		t.Errorf("flag config has a file position: %q %q", c.File, c.Where("listeners[0].address"))
	}
}

func TestFromFlagsErrors(t *testing.T) {
	tests := []struct {
		name, listen, upstream, want string
	}{
		{"empty listen", "", "http://127.0.0.1:3000", "--listen: address is required"},
		{"bad listen", "8080", "http://127.0.0.1:3000", `--listen: invalid address "8080": missing port in address`},
		{"empty upstream", "127.0.0.1:0", "", "--upstream: url is required"},
		{"bare upstream", "127.0.0.1:0", "127.0.0.1:3000", `--upstream: invalid url "127.0.0.1:3000": missing scheme (want http:// or https://)`},
		{"admin clash", "127.0.0.1:9901", "http://127.0.0.1:3000", "admin.address: address 127.0.0.1:9901 also used by --listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromFlags(tt.listen, tt.upstream)
			var ce *Error
			if !errors.As(err, &ce) || ce.Error() != tt.want || ce.File != "" || ce.Line != 0 {
				t.Errorf("FromFlags(%q, %q) = %#v; want %s", tt.listen, tt.upstream, err, tt.want)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		name string
		err  Error
		want string
	}{
		{"everything", Error{"a.yaml", 12, 7, "routes[0].pool", "bad"}, "a.yaml:12:7: routes[0].pool: bad"},
		{"no column", Error{"a.yaml", 12, 0, "x", "bad"}, "a.yaml:12: x: bad"},
		{"no line", Error{"a.yaml", 0, 0, "x", "bad"}, "a.yaml: x: bad"},
		{"no file", Error{"", 3, 4, "x", "bad"}, "3:4: x: bad"},
		{"no field", Error{"a.yaml", 3, 4, "", "bad"}, "a.yaml:3:4: bad"},
		{"message only", Error{Msg: "bad"}, "bad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q; want %q", got, tt.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	if _, err := Load("testdata/does-not-exist.yaml"); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}

// TestDocumentMarkers checks that "---" and "..." around the one document
// are accepted.
func TestDocumentMarkers(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		src  string
	}{
		{"leading marker", "---\n" + string(data)},
		{"trailing marker", string(data) + "---\n"},
		{"document end", string(data) + "...\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse("x.yaml", []byte(tt.src)); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestCRLFLines checks that errors in a file with Windows line endings and
// comments report the line an editor shows.
func TestCRLFLines(t *testing.T) {
	src := "# comment\r\n# another\r\nlisteners:\r\n  - address: nope\r\n"
	_, err := Parse("crlf.yaml", []byte(src))
	want := `crlf.yaml:4:14: listeners[0].address: invalid address "nope": missing port in address`
	if err == nil || err.Error() != want {
		t.Errorf("Parse = %v; want %s", err, want)
	}
}

const minimalYAML = `
listeners:
  - address: 127.0.0.1:0
pools:
  - name: app
    endpoints:
      - url: http://127.0.0.1:3000
  - name: probed
    endpoints:
      - url: http://127.0.0.1:3001
    health:
      active:
        path: /healthz
routes:
  - pool: app
  - pool: probed
`

// TestNewDefaults checks the balancing, health, retry and hedge defaults on
// a config that writes none of them.
func TestNewDefaults(t *testing.T) {
	c, err := Parse("minimal.yaml", []byte(minimalYAML))
	if err != nil {
		t.Fatal(err)
	}
	p, r := c.Pools[0], c.Routes[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"balance", p.Balance, BalanceRoundRobin},
		{"max conns", p.MaxConnsPerEndpoint, 0},
		{"max queue", p.MaxQueue, 100},
		{"queue timeout", p.QueueTimeout.D(), time.Second},
		{"passive", p.Health.Passive, PassiveHealth{5, Duration(10 * time.Second), Duration(5 * time.Minute), 50}},
		{"no active block, no probing", p.Health.Active, (*ActiveHealth)(nil)},
		{"active when written", *c.Pools[1].Health.Active, ActiveHealth{"/healthz", Duration(5 * time.Second), Duration(time.Second), 2, 3}},
		{"retries", r.Retries, Retries{
			MaxAttempts:   3,
			RetryOnStatus: []int{502, 503, 504},
			BackoffBase:   Duration(25 * time.Millisecond),
			BackoffMax:    Duration(time.Second),
			RetryAfterMax: Duration(5 * time.Second),
			BufferBody:    1 << 20,
			Budget:        Budget{Ratio: 0.2, MinPerSecond: 10},
		}},
		{"hedge off", r.Hedge, Hedge{}},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s = %+v; want %+v", ck.name, ck.got, ck.want)
		}
	}
	if &c.Routes[0].Retries.RetryOnStatus[0] == &c.Routes[1].Retries.RetryOnStatus[0] {
		t.Error("routes share the default retry_on_status backing array")
	}
}

// TestRetryOnStatusEmpty checks that an explicit empty list means "retry on
// no status" while a missing or null one takes the default: go-yaml decodes
// [] to an empty non-nil slice and null to nil, and applyDefaults relies on
// that difference.
func TestRetryOnStatusEmpty(t *testing.T) {
	tests := []struct {
		name, value string
		want        []int
	}{
		{"left out", "", []int{502, 503, 504}},
		{"null", "\n      retry_on_status:", []int{502, 503, 504}},
		{"tilde", "\n      retry_on_status: ~", []int{502, 503, 504}},
		{"flow empty", "\n      retry_on_status: []", []int{}},
		{"listed", "\n      retry_on_status: [429, 503]", []int{429, 503}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := minimalYAML + "    retries:\n      max_attempts: 2" + tt.value + "\n"
			c, err := Parse("retry.yaml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			got := c.Routes[1].Retries.RetryOnStatus
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("retry_on_status = %#v; want %#v", got, tt.want)
			}
		})
	}
}

// TestRetryLimits checks values at and just inside the limits, and the
// ratio values golden files do not cover.
func TestRetryLimits(t *testing.T) {
	tests := []struct {
		name, retries, want string // want "" = valid
	}{
		{"one attempt", "max_attempts: 1", ""},
		{"ten attempts", "max_attempts: 10", ""},
		{"status bounds", "retry_on_status: [400, 599]", ""},
		{"status 600", "retry_on_status: [600]", "routes[1].retries.retry_on_status[0]: status 600 is not between 400 and 599"},
		{"ratio one", "budget: {ratio: 1}", ""},
		{"ratio small", "budget: {ratio: 0.01}", ""},
		{"ratio negative", "budget: {ratio: -0.2}", "routes[1].retries.budget.ratio: must be a fraction greater than 0 and at most 1 (0.2 means 20%), got -0.2"},
		{"ratio nan", "budget: {ratio: .nan}", "routes[1].retries.budget.ratio: must be a fraction greater than 0 and at most 1 (0.2 means 20%), got NaN"},
		{"ratio inf", "budget: {ratio: .inf}", "routes[1].retries.budget.ratio: must be a fraction greater than 0 and at most 1 (0.2 means 20%), got +Inf"},
		{"backoff equal", "backoff_base: 1s, backoff_max: 1s", ""},
		{"per-try without total", "per_try_timeout: 1h", ""},
		{"buffer over max body", "buffer_body: 1GiB", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := minimalYAML + "    retries: {" + tt.retries + "}\n"
			_, err := Parse("retry.yaml", []byte(src))
			if got := errorField(err); got != tt.want {
				t.Errorf("Parse = %q; want %q", got, tt.want)
			}
		})
	}
}

func TestHedgeWithRetries(t *testing.T) {
	src := minimalYAML + "    retries:\n      max_attempts: 2\n    hedge:\n      delay: 50ms\n"
	c, err := Parse("hedge.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Routes[1].Hedge.Delay.D(); got != 50*time.Millisecond {
		t.Errorf("hedge delay = %v; want 50ms", got)
	}
}

// errorField returns err's "field: message" part, or "" for nil.
func errorField(err error) string {
	if err == nil {
		return ""
	}
	var ce *Error
	if !errors.As(err, &ce) {
		return fmt.Sprint(err)
	}
	return ce.Field + ": " + ce.Msg
}

// TestQueueDefaults checks the queue defaults, the resolved data dir and
// which configs need the queue at all.
func TestQueueDefaults(t *testing.T) {
	c, err := Parse("conf/minimal.yaml", []byte(minimalYAML))
	if err != nil {
		t.Fatal(err)
	}
	if c.UsesQueue() {
		t.Error("UsesQueue() = true for a config with only sync routes")
	}
	wantQ := Queue{Dir: filepath.Join("conf", "switchboard-queue"), MaxBody: 1 << 20, Concurrency: 4, AckWait: Duration(30 * time.Second), Replicas: 1,
		Retention: Duration(24 * time.Hour), DeadRetention: Duration(7 * 24 * time.Hour)}
	if c.Queue != wantQ {
		t.Errorf("queue = %+v; want %+v", c.Queue, wantQ)
	}
	async, err := Parse("async.yaml", []byte(minimalYAML+"    mode: async\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := async.Routes[1]
	wantR := RouteQueue{MaxAttempts: 10, MaxAge: Duration(24 * time.Hour), BackoffBase: Duration(time.Second), BackoffMax: Duration(5 * time.Minute)}
	if !async.UsesQueue() || r.Mode != ModeAsync || r.Queue != wantR || async.Routes[0].Mode != ModeSync {
		t.Errorf("UsesQueue() = %v, route %q %+v; want true, async %+v", async.UsesQueue(), r.Mode, r.Queue, wantR)
	}
	fb, err := Parse("fallback.yaml", []byte(minimalYAML+"    mode: fallback\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r := fb.Routes[1]; !fb.UsesQueue() || r.Mode != ModeFallback || r.Queue != wantR {
		t.Errorf("UsesQueue() = %v, route %q %+v; want true, fallback %+v", fb.UsesQueue(), r.Mode, r.Queue, wantR)
	}
}
