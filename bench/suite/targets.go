package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/switchboard-proxy/switchboard/bench/internal/benchkit"
)

// env is what every target's setup and launch needs.
type env struct {
	dir         string // the run's temporary directory
	root        string // the module root
	commit      string // the commit switchboard is built from
	upstream    string // the nginx upstream's address
	stall       string // the in-process stalling upstream's address
	switchboard string // binaries built for the run
	stdproxy    string
	proxyCPU    int
	loadCPU     int
	idleConns   int // idle caller connections of the memory measurement
	install     *benchkit.Installer
}

// target is one way for the load to reach the upstream: directly, or
// through a proxy started afresh on e.proxyCPU for each round.
type target struct {
	name     string
	version  string
	why      string // how it is configured and why, for the report
	lang     string // code-fence language of the config
	file     string // config file name in the run's directory ("" for none)
	template string // config or command line; $LISTEN, $UP, $STALL, $TMP filled in per launch
	bin      string
	argv     func(e *env, conf string) []string // command line; conf is the config file's path
	env      []string                           // extra environment
	skipped  string                             // why it was not measured, if it was not
	rounds   []*roundResult
}

// isProxy reports whether the target puts a proxy process in the path.
func (t *target) isProxy() bool { return t.name != "direct" }

// newTargets prepares the named targets: installs what each needs and
// fills in versions. A target that cannot be prepared comes back with
// skipped set.
func newTargets(ctx context.Context, e *env, names []string) []*target {
	var ts []*target
	for _, name := range names {
		t := prepareOf(name)(ctx, e)
		t.name = name
		if t.skipped != "" {
			logf("skipping %s: %s", name, t.skipped)
		}
		ts = append(ts, t)
	}
	return ts
}

var prepares = map[string]func(ctx context.Context, e *env) *target{
	"direct":      prepareDirect,
	"nginx":       prepareNginx,
	"haproxy":     prepareHAProxy,
	"caddy":       prepareCaddy,
	"stdproxy":    prepareStdproxy,
	"switchboard": prepareSwitchboard,
}

// prepareOf returns how to prepare the named target, nil if none:
// switchboard@COMMIT is switchboard built from that commit.
func prepareOf(name string) func(ctx context.Context, e *env) *target {
	if rev, ok := strings.CutPrefix(name, "switchboard@"); ok && rev != "" {
		return func(ctx context.Context, e *env) *target { return prepareSwitchboardAt(ctx, e, rev) }
	}
	return prepares[name]
}

// defaultTargets is the order of the first round; later rounds rotate it.
const defaultTargets = "direct,nginx,haproxy,caddy,stdproxy,switchboard"

func prepareDirect(context.Context, *env) *target {
	return &target{version: "–", why: "No proxy: the load generator talks to the nginx upstream itself. " +
		"The baseline for latency and throughput; there is no proxy process to charge CPU or memory to."}
}

// upstreamConf is the fixed origin: one nginx process on the load CPU,
// a 13-byte body at / and a 1 MiB file at /1m, long keep-alive.
const upstreamConf = `daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 16384;
pid $TMP/upstream.pid;
error_log $TMP/upstream-error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    client_body_temp_path $TMP/upstream-body;
    proxy_temp_path $TMP/upstream-proxy;
    fastcgi_temp_path $TMP/upstream-fastcgi;
    uwsgi_temp_path $TMP/upstream-uwsgi;
    scgi_temp_path $TMP/upstream-scgi;
    server {
        listen $LISTEN;
        root $TMP/www;
        location = / {
            default_type text/plain;
            return 200 "hello, world\n";
        }
        location = /1m { }
    }
}
`

// nginxConf follows the upstream module's docs for keep-alive to the
// upstream: keepalive N in the upstream block, proxy_http_version 1.1 and
// an empty Connection header.
const nginxConf = `daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 16384;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    client_body_temp_path $TMP/nginx-body;
    proxy_temp_path $TMP/nginx-proxy;
    fastcgi_temp_path $TMP/nginx-fastcgi;
    uwsgi_temp_path $TMP/nginx-uwsgi;
    scgi_temp_path $TMP/nginx-scgi;
    upstream origin {
        server $UP;
        keepalive 64;
        keepalive_requests 1000000;
    }
    upstream stall {
        server $STALL;
    }
    server {
        listen $LISTEN;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /stall/ {
            proxy_pass http://stall;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`

func prepareNginx(ctx context.Context, e *env) *target {
	t := &target{lang: "nginx", file: "nginx.conf", template: nginxConf,
		why: "Debian `nginx`, one process (`master_process off`, so the measured PID is the " +
			"worker). Keep-alive to the upstream as the upstream module's docs describe: " +
			"`keepalive 64` in the `upstream` block, `proxy_http_version 1.1` and an empty " +
			"`Connection` header. `keepalive_requests` is raised from its default 1000 on both " +
			"sides, so no connection is closed mid-run; buffering (`proxy_buffering on`) is at its default."}
	bin, err := e.install.Ensure(ctx, "nginx", "nginx")
	if err != nil {
		t.skipped = err.Error()
		return t
	}
	t.bin = bin
	t.version = strings.TrimPrefix(benchkit.VersionLine(bin, "-v"), "nginx version: ")
	t.argv = func(e *env, conf string) []string { return []string{bin, "-p", e.dir, "-c", conf, "-e", "stderr"} }
	return t
}

// haproxyConf is one thread, HTTP mode with keep-alive on both sides
// (HAProxy's default) and the most reuse of idle server connections.
const haproxyConf = `global
    nbthread 1
    maxconn 8000
    pidfile $TMP/haproxy.pid
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 1s
    timeout client 60s
    timeout server 10s
    timeout http-keep-alive 60s
frontend callers
    bind $LISTEN
    use_backend stall if { path_beg /stall/ }
    default_backend origin
backend origin
    server origin $UP
backend stall
    server stall $STALL
`

func prepareHAProxy(ctx context.Context, e *env) *target {
	t := &target{lang: "haproxy", file: "haproxy.cfg", template: haproxyConf,
		why: "Debian `haproxy`, `nbthread 1`, foreground without a master (`-db`). " +
			"`option http-keep-alive` (the default) keeps both sides open; `http-reuse always` " +
			"lets any request use any idle server connection, which the configuration manual " +
			"advises when the server is known to keep idle connections open (this nginx keeps " +
			"them 75 s); the default `safe` sends every caller connection's first request over a " +
			"new server connection. `timeout http-keep-alive 60s` matches the others' idle timeouts. " +
			"`option abortonclose` is not set (it is off by default and is not keep-alive advice): " +
			"without it HAProxy keeps waiting for the server's response after the caller hung up, " +
			"which the hang-up trials show as held; with it, a one-round check propagated FIN and RST " +
			"in well under a millisecond."}
	bin, err := e.install.Ensure(ctx, "haproxy", "haproxy")
	if err != nil {
		t.skipped = err.Error()
		return t
	}
	t.bin = bin
	t.version, _, _ = strings.Cut(benchkit.VersionLine(bin, "-v"), " - ") // drop the web address
	t.argv = func(_ *env, conf string) []string { return []string{bin, "-db", "-f", conf} }
	return t
}

// caddyConf leaves reverse_proxy's transport at its defaults: HTTP/1.1
// with keep-alive (32 idle connections per host).
const caddyConf = `{
	admin off
	auto_https off
}
http://:$PORT {
	bind 127.0.0.1
	handle /stall/* {
		reverse_proxy $STALL
	}
	handle {
		reverse_proxy $UP
	}
}
`

func prepareCaddy(ctx context.Context, e *env) *target {
	t := &target{lang: "caddyfile", file: "Caddyfile", template: caddyConf,
		env: []string{"GOMAXPROCS=1", "XDG_DATA_HOME=" + e.dir, "XDG_CONFIG_HOME=" + e.dir},
		why: "Debian `caddy`, `GOMAXPROCS=1`, admin endpoint and automatic HTTPS off, no access " +
			"log (Caddy logs requests only with a `log` directive). `reverse_proxy` with its " +
			"default HTTP transport, which keeps upstream connections alive " +
			"(`keepalive 2m`, `keepalive_idle_conns_per_host 32`), as its docs advise."}
	bin, err := e.install.Ensure(ctx, "caddy", "caddy")
	if err != nil {
		t.skipped = err.Error()
		return t
	}
	t.bin = bin
	t.version = benchkit.VersionLine(bin, "version")
	t.argv = func(_ *env, conf string) []string {
		return []string{bin, "run", "--config", conf, "--adapter", "caddyfile"}
	}
	return t
}

func prepareStdproxy(_ context.Context, e *env) *target {
	t := &target{version: "bench/stdproxy, " + runtime.Version(), lang: "sh", bin: e.stdproxy,
		template: "GOMAXPROCS=1 stdproxy -listen $LISTEN -upstream $UP -stall-upstream $STALL -max-idle 128\n",
		env:      []string{"GOMAXPROCS=1"},
		why: "`bench/stdproxy`: `httputil.ReverseProxy` behind a plain `http.Server`, " +
			"`GOMAXPROCS=1`. Its Transport is `http.DefaultTransport` cloned with " +
			"`MaxIdleConns` and `MaxIdleConnsPerHost` 128 (the default 2 per host would close " +
			"and reopen upstream connections under 50 callers), `IdleConnTimeout` 60 s, no " +
			"HTTP/2 attempt, no compression. This is the plain Go proxy switchboard is measured against."}
	t.argv = func(e *env, _ string) []string {
		return []string{t.bin, "-listen", "$LISTEN", "-upstream", e.upstream, "-stall-upstream", e.stall, "-max-idle", "128", "-max-run", "15m"}
	}
	return t
}

// switchboardConf is two pools and two routes; everything else at its
// default (keep-alive to the upstream is always on, 64 idle connections
// per endpoint).
const switchboardConf = `listeners:
  - address: $LISTEN
admin:
  address: "off"
access_log:
  path: "off"
drain_timeout: 2s
pools:
  - name: origin
    endpoints:
      - url: http://$UP
  - name: stall
    endpoints:
      - url: http://$STALL
routes:
  - name: stall
    match:
      path_prefix: /stall/
    pool: stall
  - name: all
    match:
      path_prefix: /
    pool: origin
`

func prepareSwitchboard(_ context.Context, e *env) *target {
	t := &target{version: e.commit, lang: "yaml", file: "switchboard.yaml", template: switchboardConf,
		bin: e.switchboard, env: []string{"GOMAXPROCS=1"},
		why: "Built from `cmd/switchboard`, `GOMAXPROCS=1`, access log and admin listener off, " +
			"everything else at its defaults: upstream keep-alive is always on, " +
			"`max_idle_per_endpoint` 64, `idle_conn_timeout` 4 s, caller `idle_timeout` 60 s."}
	t.argv = func(_ *env, conf string) []string { return []string{t.bin, "serve", "--config", conf} }
	return t
}

// prepareSwitchboardAt is switchboard as of commit rev, built from a copy
// of that commit's tree (git archive), configured as prepareSwitchboard.
func prepareSwitchboardAt(ctx context.Context, e *env, rev string) *target {
	src := filepath.Join(e.dir, "src-"+rev)
	t := &target{}
	out, err := exec.CommandContext(ctx, "git", "-C", e.root, "rev-parse", "--short", rev+"^{commit}").Output()
	if err != nil {
		t.skipped = fmt.Sprintf("no commit %q", rev)
		return t
	}
	commit := strings.TrimSpace(string(out))
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.skipped = err.Error()
		return t
	}
	archive := exec.CommandContext(ctx, "sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", e.root, commit, src)
	if b, err := archive.CombinedOutput(); err != nil {
		t.skipped = fmt.Sprintf("git archive %s: %v: %s", commit, err, b)
		return t
	}
	bin, err := benchkit.GoBuild(ctx, src, e.dir, "switchboard-"+commit, "./cmd/switchboard")
	if err != nil {
		t.skipped = err.Error()
		return t
	}
	t = prepareSwitchboard(ctx, &env{switchboard: bin, commit: commit})
	return t
}

// fill replaces the placeholders of a config template.
func (e *env) fill(s, listen string) string {
	_, port, _ := strings.Cut(listen, ":")
	return strings.NewReplacer("$LISTEN", listen, "$PORT", port, "$UP", e.upstream,
		"$STALL", e.stall, "$TMP", e.dir).Replace(s)
}

// launch starts a fresh process of t on a fresh port and checks that it
// proxies both bodies. For direct it returns the upstream's address.
func (t *target) launch(ctx context.Context, e *env, round int) (*benchkit.Proc, string, error) {
	if !t.isProxy() {
		return nil, e.upstream, nil
	}
	listen, err := benchkit.FreeAddr()
	if err != nil {
		return nil, "", err
	}
	conf := ""
	if t.file != "" {
		conf = filepath.Join(e.dir, t.file)
		if err := os.WriteFile(conf, []byte(e.fill(t.template, listen)), 0o600); err != nil {
			return nil, "", err
		}
	}
	argv := t.argv(e, conf)
	for i := range argv {
		argv[i] = e.fill(argv[i], listen)
	}
	logPath := filepath.Join(e.dir, fmt.Sprintf("%s-%d.log", t.name, round))
	p, err := startPinned(t.name, logPath, e.proxyCPU, t.env, argv...)
	if err != nil {
		return nil, "", err
	}
	if err := p.WaitListening(ctx, listen); err != nil {
		p.Stop()
		return nil, "", err
	}
	if err := checkBodies(ctx, listen); err != nil {
		p.Stop()
		return nil, "", fmt.Errorf("%s: %w (log: %s)", t.name, err, p.LogTail())
	}
	return p, listen, nil
}

// checkBodies fetches both bodies through addr once.
func checkBodies(ctx context.Context, addr string) error {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for path, want := range map[string]int{pathSmall: len(smallBody), pathBig: bigSize} {
		req, err := http.NewRequestWithContext(ctx, "GET", "http://"+addr+path, nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err != nil {
			return fmt.Errorf("GET %s: %w", path, err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || n != int64(want) {
			return fmt.Errorf("GET %s: status %d, %d bytes (want 200, %d bytes), %v", path, resp.StatusCode, n, want, err)
		}
	}
	return nil
}

const (
	pathSmall = "/"
	pathBig   = "/1m"
	smallBody = "hello, world\n"
	bigSize   = 1 << 20
)

// startUpstream writes the upstream's files and starts it on e.loadCPU.
func startUpstream(ctx context.Context, e *env, bin string) (*benchkit.Proc, error) {
	www := filepath.Join(e.dir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		return nil, err
	}
	big := make([]byte, bigSize)
	for i := range big {
		big[i] = byte('a' + i%26)
	}
	if err := os.WriteFile(filepath.Join(www, "1m"), big, 0o644); err != nil {
		return nil, err
	}
	listen, err := benchkit.FreeAddr()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(e.dir, "upstream.conf")
	if err := os.WriteFile(conf, []byte(e.fill(upstreamConf, listen)), 0o600); err != nil {
		return nil, err
	}
	p, err := startPinned("upstream nginx", filepath.Join(e.dir, "upstream.log"), e.loadCPU, nil,
		bin, "-p", e.dir, "-c", conf, "-e", "stderr")
	if err != nil {
		return nil, err
	}
	if err := p.WaitListening(ctx, listen); err != nil {
		p.Stop()
		return nil, err
	}
	e.upstream = listen
	if err := checkBodies(ctx, listen); err != nil {
		p.Stop()
		return nil, fmt.Errorf("upstream: %w", err)
	}
	return p, nil
}
