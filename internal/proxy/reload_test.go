package proxy_test

import (
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/switchboard-proxy/switchboard/internal/config"
	"github.com/switchboard-proxy/switchboard/internal/proxy"
)

// reloadConfig is a configuration for the reload tests: listeners, an admin
// address and one pool every request goes to.
type reloadConfig struct {
	// listeners holds one listener each: its YAML fields, one per line,
	// unindented, the address first.
	listeners []string
	admin     string // admin.address; "" means "off"
	accessLog string // access_log.path; "" means stdout
	upstream  string
}

func (c reloadConfig) yaml() string {
	var b strings.Builder
	b.WriteString("listeners:\n")
	for _, l := range c.listeners {
		lines := strings.Split(l, "\n")
		fmt.Fprintf(&b, "  - %s\n", lines[0])
		for _, line := range lines[1:] {
			fmt.Fprintf(&b, "    %s\n", line)
		}
	}
	admin := c.admin
	if admin == "" {
		admin = "off"
	}
	fmt.Fprintf(&b, "admin:\n  address: %q\n", admin)
	if c.accessLog != "" {
		fmt.Fprintf(&b, "access_log:\n  path: %s\n", c.accessLog)
	}
	fmt.Fprintf(&b, "drain_timeout: 5s\npools:\n  - name: p\n    endpoints:\n      - url: %s\nroutes:\n  - pool: p\n", c.upstream)
	return b.String()
}

func (c reloadConfig) parse(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Parse("reload.yaml", []byte(c.yaml()))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, c.yaml())
	}
	return cfg
}

// startReload starts a server for c; its access log goes to the returned
// sink.
func startReload(t *testing.T, c reloadConfig) (*proxy.Server, *logSink) {
	t.Helper()
	logs := newLogSink()
	srv, err := proxy.New(c.parse(t), proxy.Options{Stdout: logs})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv, logs
}

// slowUpstream answers /slow with slowBody once release is called (or
// fails it when the request is cancelled), and every other path with "ok".
type slowUpstream struct {
	url     string
	arrived chan struct{} // receives once per /slow request that reached it
	release func()
}

const slowBody = "finished on the configuration it started with"

func newSlowUpstream(t *testing.T) *slowUpstream {
	released := make(chan struct{})
	u := &slowUpstream{arrived: make(chan struct{}, 1), release: sync.OnceFunc(func() { close(released) })}
	u.url = newH1Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" {
			io.WriteString(w, "ok")
			return
		}
		u.arrived <- struct{}{}
		select {
		case <-released:
			io.WriteString(w, slowBody)
		case <-r.Context().Done():
		}
	}))
	// Registered after newH1Server's cleanup, so it runs first and the
	// upstream can close.
	t.Cleanup(u.release)
	return u
}

// servedLeaf returns the DER of the certificate a TLS listener at addr
// presents.
func servedLeaf(t *testing.T, addr string) []byte {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Raw
}

func certDER(t *testing.T, certFile string) []byte {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("no PEM in %s", certFile)
	}
	return blk.Bytes
}

// holdPort returns a loopback address a test listener holds until the
// test ends, so binding it fails.
func holdPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// A reload that fails at any step changes nothing: the TLS certificate it
// would have re-read is not served, the access log stays where it was, and
// a later good reload does swap the certificate.
func TestReloadFailureChangesNothing(t *testing.T) {
	tests := []struct {
		name    string
		break_  func(t *testing.T, c *reloadConfig) // makes a step after the certificate fail
		wantErr string                              // regexp
	}{
		{"access log", func(t *testing.T, c *reloadConfig) {
			// Its directory exists, so the config is valid, but a
			// directory cannot be opened for writing.
			c.accessLog = t.TempDir()
		}, `^reload\.yaml:\d+:\d+: access_log\.path: `},
		{"new listener", func(t *testing.T, c *reloadConfig) {
			c.listeners = append(c.listeners, "address: "+holdPort(t))
		}, `^reload\.yaml:\d+:\d+: listeners\[1\]\.address: `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newSlowUpstream(t)
			certA, keyA := selfSigned(t)
			certB, keyB := selfSigned(t)
			tlsListener := func(cert, key string) string {
				return "address: 127.0.0.1:0\nh2c: false\ntls:\n  cert_file: " + cert + "\n  key_file: " + key
			}
			c := reloadConfig{listeners: []string{tlsListener(certA, keyA)}, upstream: up.url}
			srv, logs := startReload(t, c)
			addr := srv.Addrs()[0]
			if got := servedLeaf(t, addr); string(got) != string(certDER(t, certA)) {
				t.Fatal("the listener does not serve its configured certificate")
			}

			bad := c
			bad.listeners = []string{tlsListener(certB, keyB)}
			tt.break_(t, &bad)
			err := srv.Reload(bad.parse(t))
			if err == nil || !regexp.MustCompile(tt.wantErr).MatchString(err.Error()) {
				t.Fatalf("reload error = %v, want one matching %s", err, tt.wantErr)
			}
			if got := servedLeaf(t, addr); string(got) != string(certDER(t, certA)) {
				t.Error("after a rejected reload the listener serves the rejected config's certificate")
			}
			if got := srv.Addrs(); len(got) != 1 || got[0] != addr {
				t.Errorf("listeners after a rejected reload: %v, want [%s]", got, addr)
			}
			if got := srv.AdminAddr(); got != "" {
				t.Errorf("admin listener %q after a rejected reload, want none", got)
			}
			res := get(t, tlsClient(t, false), "https://"+addr+"/after-rejected")
			res.Body.Close()
			wantLog(t, logs.next(t, "/after-rejected"), map[string]any{"status": 200})

			good := c
			good.listeners = []string{tlsListener(certB, keyB)}
			if err := srv.Reload(good.parse(t)); err != nil {
				t.Fatal(err)
			}
			if got := servedLeaf(t, addr); string(got) != string(certDER(t, certB)) {
				t.Error("a good reload did not swap the certificate")
			}
		})
	}
}
