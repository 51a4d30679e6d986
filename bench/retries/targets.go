package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/switchboard-proxy/switchboard/bench/internal/benchkit"
)

// target is one way for the callers to reach the two endpoints: directly,
// or through a proxy configured for retries.
type target struct {
	name    string
	version string   // of the proxy, for the report
	config  string   // the proxy's configuration, temp paths shown as $TMP
	addrs   []string // where callers connect
	skipped string   // why it was not measured, if it was not
	proc    *benchkit.Proc
	results []classResult
}

// classResult is one class run against a target: what the callers saw
// and what the upstream's ledger says about the same requests.
type classResult struct {
	class    class
	tally    *tally
	arrivals int // requests of the class that reached the upstream, replays included
	resets   int // arrivals the upstream reset
	dups     int // requests that arrived more than once
}

// env is what every target's setup needs.
type env struct {
	dir         string   // the run's temporary directory
	ups         []string // the two endpoints
	switchboard string   // the switchboard binary
	commit      string   // the commit it was built from
	install     *benchkit.Installer
}

// setup starts a target; a target that cannot be started comes back with
// skipped set.
type setup func(ctx context.Context, e *env) *target

var setups = map[string]setup{
	"direct":          setupDirect,
	"nginx":           setupNginx,
	"haproxy":         func(ctx context.Context, e *env) *target { return setupHAProxy(ctx, e, true) },
	"haproxy-noguard": func(ctx context.Context, e *env) *target { return setupHAProxy(ctx, e, false) },
	"switchboard":     setupSwitchboard,
}

// defaultTargets is the order targets are measured in.
const defaultTargets = "direct,nginx,haproxy,haproxy-noguard,switchboard"

func setupDirect(_ context.Context, e *env) *target {
	return &target{name: "direct", version: "–", addrs: e.ups}
}

// nginxConf keeps upstream keep-alive (keepalive + HTTP/1.1 + empty
// Connection, as the upstream module's docs describe) and passes a
// request to the next server on error or timeout, at most 3 tries in
// all. non_idempotent is deliberately absent. max_fails=0 turns off
// passive health: both endpoints fail alike, so marking one down only
// adds "no live upstreams" 502s and measures the ejection, not the retry.
const nginxConf = `daemon off;
master_process off;
worker_processes 1;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx-body;
    proxy_temp_path $TMP/nginx-proxy;
    fastcgi_temp_path $TMP/nginx-fastcgi;
    uwsgi_temp_path $TMP/nginx-uwsgi;
    scgi_temp_path $TMP/nginx-scgi;
    upstream endpoints {
        server $UP0 max_fails=0;
        server $UP1 max_fails=0;
        keepalive 32;
    }
    server {
        listen $LISTEN;
        location / {
            proxy_pass http://endpoints;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 3;
            proxy_connect_timeout 1s;
            proxy_read_timeout 5s;
            proxy_send_timeout 5s;
        }
    }
}
`

func setupNginx(ctx context.Context, e *env) *target {
	t := &target{name: "nginx"}
	bin, err := e.install.Ensure(ctx, "nginx", "nginx")
	if err != nil {
		t.skipped = err.Error()
		return t
	}
	t.version = strings.TrimPrefix(benchkit.VersionLine(bin, "-v"), "nginx version: ")
	conf, listen, err := writeConf(e.dir, "nginx.conf", nginxConf, e.ups)
	if err != nil {
		t.skipped = err.Error()
		return t
	}
	t.config = conf
	t.start(ctx, listen, filepath.Join(e.dir, "nginx.log"),
		bin, "-p", e.dir, "-c", filepath.Join(e.dir, "nginx.conf"), "-e", filepath.Join(e.dir, "nginx-error.log"))
	return t
}

// haproxyConf asks for 3 attempts in all (retries 2: HAProxy counts the
// retries after the first attempt), each retry on the other server
// (redispatch 1), and layer-7 retries when the server closes without a
// response or times out, besides connection failures. $GUARD is where
// the POST guard goes.
const haproxyConf = `global
    maxconn 1000
    pidfile $TMP/haproxy.pid
defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 5s
    timeout http-keep-alive 10s
    retries 2
    option redispatch 1
    retry-on conn-failure empty-response response-timeout
    http-reuse safe
frontend callers
    bind $LISTEN
    default_backend endpoints
backend endpoints
    balance roundrobin
$GUARD    server e0 $UP0
    server e1 $UP1
`

// haproxyGuard is what HAProxy's documentation of "http-request
// disable-l7-retry" suggests for POST, narrowed to POSTs without an
// Idempotency-Key: retry-on has no method check of its own.
const haproxyGuard = "    http-request disable-l7-retry if METH_POST !{ req.hdr(idempotency-key) -m found }\n"

func setupHAProxy(ctx context.Context, e *env, guard bool) *target {
	t := &target{name: "haproxy"}
	g := haproxyGuard
	if !guard {
		t.name, g = "haproxy-noguard", ""
	}
	bin, err := e.install.Ensure(ctx, "haproxy", "haproxy")
	if err != nil {
		t.skipped = err.Error()
		return t
	}
	t.version, _, _ = strings.Cut(benchkit.VersionLine(bin, "-v"), " - ") // drop the web address
	conf, listen, err := writeConf(e.dir, t.name+".cfg", strings.Replace(haproxyConf, "$GUARD", g, 1), e.ups)
	if err != nil {
		t.skipped = err.Error()
		return t
	}
	t.config = conf
	// -db: stay in the foreground, no master process.
	t.start(ctx, listen, filepath.Join(e.dir, t.name+".log"), bin, "-db", "-f", filepath.Join(e.dir, t.name+".cfg"))
	return t
}

// switchboardConf is a pool of both endpoints and one route with 3
// attempts in all; everything else is at its default.
const switchboardConf = `listeners:
  - address: $LISTEN
admin:
  address: "off"
access_log:
  path: "off"
drain_timeout: 2s
pools:
  - name: endpoints
    endpoints:
      - url: http://$UP0
      - url: http://$UP1
routes:
  - name: all
    match:
      path_prefix: /
    pool: endpoints
    retries:
      max_attempts: 3
`

func setupSwitchboard(ctx context.Context, e *env) *target {
	t := &target{name: "switchboard", version: e.commit}
	conf, listen, err := writeConf(e.dir, "switchboard.yaml", switchboardConf, e.ups)
	if err != nil {
		t.skipped = err.Error()
		return t
	}
	t.config = conf
	t.start(ctx, listen, filepath.Join(e.dir, "switchboard.log"),
		e.switchboard, "serve", "--config", filepath.Join(e.dir, "switchboard.yaml"))
	return t
}

// start runs the proxy and waits until it listens on listen; on failure
// the target is marked skipped.
func (t *target) start(ctx context.Context, listen, logPath string, argv ...string) {
	p, err := benchkit.Start(t.name, logPath, nil, argv...)
	if err != nil {
		t.skipped = err.Error()
		return
	}
	logf("%s pid %d", t.name, p.PID())
	t.proc = p
	if err := p.WaitListening(ctx, listen); err != nil {
		p.Stop()
		t.skipped = err.Error()
		return
	}
	t.addrs = []string{listen}
}

// writeConf fills in template (listen address, endpoints, temp dir),
// writes it to dir/name and returns it as shown in the report (temp dir
// as $TMP) and the listen address.
func writeConf(dir, name, template string, ups []string) (shown, listen string, err error) {
	listen, err = benchkit.FreeAddr()
	if err != nil {
		return "", "", err
	}
	shown = strings.NewReplacer("$LISTEN", listen, "$UP0", ups[0], "$UP1", ups[1]).Replace(template)
	real := strings.ReplaceAll(shown, "$TMP", dir)
	return shown, listen, os.WriteFile(filepath.Join(dir, name), []byte(real), 0o600)
}
