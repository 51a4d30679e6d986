package config

import (
	"net/netip"
	"time"
)

// Defaults for fields whose zero value means "use the default"; the
// resolved Config carries the effective values, so these stay unexported.
const (
	defaultAdminAddress      = "127.0.0.1:9901"
	defaultAccessLog         = "stdout"
	defaultDrainTimeout      = 30 * time.Second
	defaultReadHeaderTimeout = 10 * time.Second
	defaultIdleTimeout       = 60 * time.Second
	defaultMaxHeaderBytes    = 64 << 10
	defaultMaxIdle           = 64
	// defaultIdleConnTimeout stays below Node.js's 5s keepAliveTimeout so the
	// proxy retires an idle upstream connection before the upstream does;
	// otherwise a request can race the upstream's close and see a reset.
	defaultIdleConnTimeout = 4 * time.Second
	defaultConnect         = 5 * time.Second
	defaultResponseHeader  = 60 * time.Second
	defaultIdleBody        = 60 * time.Second
	defaultMaxRequestBody  = 10 << 20

	defaultMaxQueue     = 100
	defaultQueueTimeout = time.Second

	defaultConsecutiveFailures = 5
	defaultBaseEjection        = 10 * time.Second
	defaultMaxEjection         = 5 * time.Minute
	defaultMaxEjectedPercent   = 50

	defaultProbeInterval      = 5 * time.Second
	defaultProbeTimeout       = time.Second
	defaultHealthyThreshold   = 2
	defaultUnhealthyThreshold = 3

	defaultMaxAttempts        = 3
	defaultBackoffBase        = 25 * time.Millisecond
	defaultBackoffMax         = time.Second
	defaultRetryAfterMax      = 5 * time.Second
	defaultBufferBody         = 1 << 20
	defaultBudgetRatio        = 0.2
	defaultBudgetMinPerSecond = 10

	defaultQueueDir           = "switchboard-queue"
	defaultQueueMaxBody       = 1 << 20
	defaultQueueConcurrency   = 4
	defaultQueueAckWait       = 30 * time.Second
	defaultQueueReplicas      = 1
	defaultQueueRetention     = 24 * time.Hour
	defaultQueueDeadRetention = 7 * 24 * time.Hour
	defaultQueueMaxAttempts   = 10
	defaultQueueMaxAge        = 24 * time.Hour
	defaultQueueBackoffBase   = time.Second
	defaultQueueBackoffMax    = 5 * time.Minute
)

// defaultRetryOnStatus returns a fresh copy of the default
// Retries.RetryOnStatus, so no two routes share a backing array.
func defaultRetryOnStatus() []int { return []int{502, 503, 504} }

// Limits on Retries.
const (
	maxAttemptsLimit = 10
	minRetryStatus   = 400
	maxRetryStatus   = 599
)

// Limits on the queue settings.
const (
	maxQueueAttempts    = 1000
	maxQueueBody        = 32 << 20
	maxQueueConcurrency = 1024
	maxQueueReplicas    = 5 // JetStream's limit
)

// Limits on Listener.MaxHeaderBytes.
const (
	minHeaderBytes = 1 << 10
	maxHeaderBytes = 16 << 20
)

// AdminOff as Admin.Address disables the admin listener.
const AdminOff = "off"

// Config is a whole switchboard configuration. After Parse or FromFlags every
// defaulted field holds its effective value and the resolved fields are set.
type Config struct {
	Listeners      []Listener `yaml:"listeners"`       // at least one
	Admin          Admin      `yaml:"admin"`           //
	AccessLog      AccessLog  `yaml:"access_log"`      //
	TrustedProxies []string   `yaml:"trusted_proxies"` // CIDRs or bare IPs whose X-Forwarded-* headers are trusted
	DrainTimeout   Duration   `yaml:"drain_timeout"`   // graceful shutdown limit; default 30s
	// DrainDelay is how long switchboard keeps accepting after it starts
	// answering /readyz with 503 on SIGTERM, so a load balancer can stop
	// sending it callers before its sockets close; default 0 (close at
	// once). It comes before drain_timeout, not out of it.
	DrainDelay Duration `yaml:"drain_delay"`
	Pools      []Pool   `yaml:"pools"`  // at least one
	Routes     []Route  `yaml:"routes"` // at least one; first match in order wins
	// Queue configures the delivery queue of async and fallback routes
	// (rule R9). It is opened only when some route has one of those modes.
	Queue Queue `yaml:"queue"`

	// File is the name the config came from ("" for flags); used in errors.
	File string `yaml:"-"`
	// TrustedNets is TrustedProxies parsed; a bare IP becomes a /32 or /128.
	TrustedNets []netip.Prefix `yaml:"-"`

	pos positions // field path → source position, for Where
}

// Listener is one address the proxy serves callers on.
type Listener struct {
	Address string `yaml:"address"` // required host:port; host is an IP literal, "localhost" or empty; port 0 = ephemeral
	// TLS, when set, serves HTTPS with ALPN h2 and http/1.1; it needs
	// cert_file and key_file and must not set pool-only fields.
	TLS *TLS `yaml:"tls"`
	// H2C accepts HTTP/2 with prior knowledge on a plaintext listener.
	// Default true without TLS, false with TLS; true with TLS is an error.
	H2C               *bool    `yaml:"h2c"`
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"` // default 10s; guards against slowloris callers
	IdleTimeout       Duration `yaml:"idle_timeout"`        // default 60s; closes idle keep-alive callers
	MaxHeaderBytes    Size     `yaml:"max_header_bytes"`    // default 64KiB; 1KiB..16MiB
}

// TLS holds certificate settings for a listener (server side) or a pool
// (client side). File paths relative to the config file are resolved against
// its directory, and the resolved path is stored back.
type TLS struct {
	CertFile           string `yaml:"cert_file"`            // listener: required; pool: optional client cert, with key_file
	KeyFile            string `yaml:"key_file"`             // listener: required; pool: optional, with cert_file
	CAFile             string `yaml:"ca_file"`              // pool only: CA bundle for verifying upstreams; default system roots
	ServerName         string `yaml:"server_name"`          // pool only: SNI and verification name override
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"` // pool only: do not verify upstream certificates
}

// Admin configures the admin API listener.
type Admin struct {
	// Address is host:port; default "127.0.0.1:9901"; "off" disables the
	// admin listener.
	Address string `yaml:"address"`
	// Token is the bearer token the admin API requires. It is mandatory when
	// Address is not loopback, because the API can drain and reconfigure.
	Token string `yaml:"token"`
}

// AccessLog configures the per-request access log.
type AccessLog struct {
	// Path is "stdout" (default), "stderr", "off", or a file opened for
	// append whose directory must exist. A relative file path is resolved
	// against the config file's directory.
	Path string `yaml:"path"`
}

// Pool is a named set of upstream endpoints that routes send requests to.
type Pool struct {
	Name string `yaml:"name"` // required, unique, [a-z0-9_-]+
	// Protocol is how the proxy talks to endpoints: "http1" (default);
	// "h2c" (HTTP/2 prior knowledge, endpoints must be http://); "h2"
	// (HTTP/2 over TLS, endpoints must be https://); "auto" (https endpoints
	// negotiate via ALPN, http endpoints use HTTP/1.1).
	Protocol           string     `yaml:"protocol"`
	Endpoints          []Endpoint `yaml:"endpoints"`             // at least one
	TLS                *TLS       `yaml:"tls"`                   // client TLS for https endpoints; nil = system roots, no client cert
	MaxIdlePerEndpoint int        `yaml:"max_idle_per_endpoint"` // idle connections kept per endpoint; default 64
	IdleConnTimeout    Duration   `yaml:"idle_conn_timeout"`     // default 4s, below Node.js's 5s keep-alive so the proxy closes first
	// Balance picks an endpoint per attempt: "round_robin" (default, smooth
	// weighted) or "least_outstanding" (power of two choices on requests in
	// flight, weighted).
	Balance string `yaml:"balance"`
	// MaxConnsPerEndpoint caps the requests in flight (and so the HTTP/1.1
	// connections) to each endpoint; 0 (default) means no limit.
	MaxConnsPerEndpoint int `yaml:"max_conns_per_endpoint"`
	// MaxQueue bounds how many requests may wait for a free endpoint slot
	// when every endpoint is at MaxConnsPerEndpoint; default 100. A request
	// that finds the queue full gets 503 at once.
	MaxQueue int `yaml:"max_queue"`
	// QueueTimeout is how long a request waits in that queue; default 1s.
	QueueTimeout Duration `yaml:"queue_timeout"`
	Health       Health   `yaml:"health"`
}

// Balance policies.
const (
	BalanceRoundRobin       = "round_robin"
	BalanceLeastOutstanding = "least_outstanding"
)

// Health configures how a pool decides an endpoint is not worth trying.
type Health struct {
	Passive PassiveHealth `yaml:"passive"`
	// Active, when set, probes every endpoint with an HTTP GET.
	Active *ActiveHealth `yaml:"active"`
}

// PassiveHealth ejects an endpoint that fails real requests several times
// in a row: connect failures, resets or closes before a response, and 5xx
// answers count; any other answer resets the count.
type PassiveHealth struct {
	ConsecutiveFailures int      `yaml:"consecutive_failures"` // default 5; failures in a row that eject
	BaseEjection        Duration `yaml:"base_ejection"`        // default 10s; doubles with each ejection in a row
	MaxEjection         Duration `yaml:"max_ejection"`         // default 5m; cap on the growing ejection time
	MaxEjectedPercent   int      `yaml:"max_ejected_percent"`  // default 50; share of the pool that may be ejected at once, 1..100
}

// ActiveHealth probes each endpoint on its own schedule.
type ActiveHealth struct {
	Path               string   `yaml:"path"`                // required; GET this path, healthy on 2xx or 3xx
	Interval           Duration `yaml:"interval"`            // default 5s
	Timeout            Duration `yaml:"timeout"`             // default 1s; must be less than interval
	HealthyThreshold   int      `yaml:"healthy_threshold"`   // default 2 successes in a row to mark healthy
	UnhealthyThreshold int      `yaml:"unhealthy_threshold"` // default 3 failures in a row to mark unhealthy
}

// Pool protocols.
const (
	ProtoHTTP1 = "http1"
	ProtoH2C   = "h2c"
	ProtoH2    = "h2"
	ProtoAuto  = "auto"
)

// Endpoint is one upstream server in a pool.
type Endpoint struct {
	// URL is required: scheme http or https, a host, an optional port, and
	// no userinfo, path (other than "/"), query or fragment.
	URL    string `yaml:"url"`
	Weight int    `yaml:"weight"` // relative share of requests; 0..1000, 0 = default 1

	Scheme string `yaml:"-"` // resolved: "http" or "https"
	Host   string `yaml:"-"` // resolved: host:port, port filled in from the scheme if absent
}

// Route sends matching requests to a pool.
type Route struct {
	Name              string   `yaml:"name"`                // optional, unique; default "route<N>" with N the index
	Match             Match    `yaml:"match"`               //
	Pool              string   `yaml:"pool"`                // required; names a pool
	Timeouts          Timeouts `yaml:"timeouts"`            //
	IgnoreClientAbort bool     `yaml:"ignore_client_abort"` // finish the upstream exchange even if the caller hangs up
	MaxRequestBody    Size     `yaml:"max_request_body"`    // default 10MiB
	Retries           Retries  `yaml:"retries"`             //
	Hedge             Hedge    `yaml:"hedge"`               //
	// Mode is "sync" (default: relay the upstream's answer), "async"
	// (store the request durably, answer 202 with a status URL, deliver
	// in the background) or "fallback" (try now as sync; when the
	// upstream cannot be reached or fails before answering, store the
	// request and answer 202 as async).
	Mode  string     `yaml:"mode"`
	Queue RouteQueue `yaml:"queue"` // delivery settings of an async or fallback route
}

// Route modes.
const (
	ModeSync     = "sync"
	ModeAsync    = "async"
	ModeFallback = "fallback"
)

// Queue configures the delivery queue (rule R9): a NATS JetStream store,
// embedded in the process by default.
type Queue struct {
	// Dir is where the embedded NATS server keeps its data; default
	// "switchboard-queue" beside the config file. A relative path is
	// resolved against the config file's directory. Ignored when URL is
	// set.
	Dir string `yaml:"dir"`
	// URL names an external NATS server or cluster ("nats://h1:4222,
	// nats://h2:4222") to use instead of the embedded one; default ""
	// (embedded).
	URL string `yaml:"url"`
	// Replicas is how many copies of each stored request the NATS
	// servers keep; default 1, the only choice for the embedded server.
	// With URL naming a cluster of three or more servers, use 3 so a
	// request survives the loss of a server. 1..5 (JetStream's limit).
	Replicas    int      `yaml:"replicas"`
	MaxBody     Size     `yaml:"max_body"`    // default 1MiB; larger async request bodies get 413; at most 32MiB
	Concurrency int      `yaml:"concurrency"` // default 4; deliveries made at once by this instance, 1..1024
	AckWait     Duration `yaml:"ack_wait"`    // default 30s; a delivery held this long without progress goes to another worker; at least 1s
	// Retention is how long delivered and cancelled records are kept
	// after their last change before a periodic purge removes them;
	// default 24h, at least 1s.
	Retention Duration `yaml:"retention"`
	// DeadRetention is the same for dead letters (record and stored
	// request, so they can no longer be replayed); default 168h (7 days),
	// at least 1s.
	DeadRetention Duration `yaml:"dead_retention"`
}

// RouteQueue configures the delivery of an async route's requests.
type RouteQueue struct {
	MaxAttempts int      `yaml:"max_attempts"` // default 10, counting the first; 1..1000
	MaxAge      Duration `yaml:"max_age"`      // default 24h; undelivered this long after arrival: dead-lettered
	BackoffBase Duration `yaml:"backoff_base"` // default 1s; first backoff ceiling, doubling per retry (full jitter)
	BackoffMax  Duration `yaml:"backoff_max"`  // default 5m; cap on the backoff ceiling
	// CallbackURL, when set, is POSTed a JSON notification when a
	// delivery ends (delivered or dead); an http or https URL, a path and
	// query allowed. Default "" (none).
	CallbackURL string `yaml:"callback_url"`
}

// Retries says when a failed attempt is tried again. Only safe requests are
// replayed: an idempotent method, an Idempotency-Key header, or a request
// that provably never reached the upstream.
type Retries struct {
	MaxAttempts int `yaml:"max_attempts"` // default 3, counting the first; 1 turns retries off; at most 10
	// PerTryTimeout bounds one attempt from connect to response headers;
	// default 0 = none beyond the phase timeouts. An attempt that runs out
	// is retried like a reset.
	PerTryTimeout Duration `yaml:"per_try_timeout"`
	// RetryOnStatus lists response statuses that are retried for safe
	// requests; default [502, 503, 504]. Each is 400..599.
	RetryOnStatus []int    `yaml:"retry_on_status"`
	BackoffBase   Duration `yaml:"backoff_base"`    // default 25ms; first backoff ceiling, doubling per retry (full jitter)
	BackoffMax    Duration `yaml:"backoff_max"`     // default 1s; cap on the backoff ceiling
	RetryAfterMax Duration `yaml:"retry_after_max"` // default 5s; a 503/429 Retry-After up to this is honoured, a longer one is relayed
	// BufferBody is how much of a request body is kept for replay; default
	// 1MiB. A longer body streams through and its request is not retried.
	BufferBody Size   `yaml:"buffer_body"`
	Budget     Budget `yaml:"budget"`
}

// Budget bounds retries so an outage cannot become a retry storm: over a
// sliding 10-second window, retries may add at most Ratio of the requests
// seen, plus MinPerSecond per second.
type Budget struct {
	Ratio        float64 `yaml:"ratio"`          // default 0.2; 0 < ratio <= 1
	MinPerSecond int     `yaml:"min_per_second"` // default 10
}

// Hedge sends a second attempt of an idempotent request when the first has
// not answered within Delay, keeps the first answer and aborts the other.
type Hedge struct {
	Delay Duration `yaml:"delay"` // default 0 = off
}

// Match selects requests for a route.
type Match struct {
	// Host is "" (any host), an exact host name or IP, or "*.example.com"
	// (any subdomain, not the apex). It is stored lower-cased; the request's
	// port is ignored when matching.
	Host       string `yaml:"host"`
	PathPrefix string `yaml:"path_prefix"` // default "/"; starts with "/"
}

// Timeouts bound each phase of an upstream exchange. When Total is set, a
// defaulted phase timeout is capped at Total, and an explicit phase timeout
// larger than Total is an error.
type Timeouts struct {
	Connect        Duration `yaml:"connect"`         // default 5s: TCP and TLS handshake with the upstream
	ResponseHeader Duration `yaml:"response_header"` // default 60s: request fully sent to first response header
	IdleBody       Duration `yaml:"idle_body"`       // default 60s: max gap between response body reads
	Total          Duration `yaml:"total"`           // default 0 = no limit on the whole exchange
}

// Default returns a configuration with no listeners, pools or routes and
// every other field at its default. It does not validate.
func Default() *Config {
	c := &Config{}
	c.applyDefaults()
	return c
}

// Route returns the route with the given name, or nil.
func (c *Config) Route(name string) *Route {
	for i := range c.Routes {
		if c.Routes[i].Name == name {
			return &c.Routes[i]
		}
	}
	return nil
}

// UsesQueue reports whether some route needs the delivery queue.
func (c *Config) UsesQueue() bool {
	for i := range c.Routes {
		if c.Routes[i].Mode != ModeSync {
			return true
		}
	}
	return false
}

// Pool returns the pool with the given name, or nil.
func (c *Config) Pool(name string) *Pool {
	for i := range c.Pools {
		if c.Pools[i].Name == name {
			return &c.Pools[i]
		}
	}
	return nil
}

// Where returns "file:line:col" for a dotted field path such as
// "listeners[1].address", so errors found after loading (a port clash at bind
// time) can point at the config. For a field not written in the file it
// falls back to the nearest written ancestor, then to just the file name, and
// returns "" when nothing is known.
func (c *Config) Where(field string) string {
	p := c.pos.lookup(field)
	return location(c.File, p.Line, p.Column)
}
