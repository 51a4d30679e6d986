package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/switchboard-proxy/switchboard/bench/internal/benchkit"
)

// proxyProc is a switchboard binary started for the run.
type proxyProc struct {
	*benchkit.Proc
	addr      string // the bound caller listener
	accessLog string // path of the access log file
}

// startProxy writes a config for upstream into dir, starts bin with it and
// waits for the "switchboard started" line that names the bound listener.
func startProxy(bin, dir, upstream string) (*proxyProc, error) {
	p := &proxyProc{accessLog: filepath.Join(dir, "access.log")}
	cfg := fmt.Sprintf(`listeners:
  - address: 127.0.0.1:0
admin:
  address: "off"
access_log:
  path: %s
drain_timeout: 2s
pools:
  - name: bench
    endpoints:
      - url: http://%s
routes:
  - name: all
    match:
      path_prefix: /
    pool: bench
`, p.accessLog, upstream)
	cfgPath := filepath.Join(dir, "switchboard.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if p.Proc, err = benchkit.StartCmd("switchboard", cmd); err != nil {
		return nil, err
	}

	addrc := make(chan string, 1)
	go scanStarted(stderr, addrc)
	select {
	case p.addr = <-addrc:
		return p, nil
	case <-p.Exited():
		return nil, errors.New("switchboard exited before it started (see its log above)")
	case <-time.After(10 * time.Second):
		p.Stop()
		return nil, errors.New("switchboard did not report \"switchboard started\" within 10s")
	}
}

// scanStarted copies the proxy's operational log to our stderr, except
// per-request noise, and sends the listener address once it is announced.
func scanStarted(r io.Reader, addrc chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var rec struct {
			Msg       string   `json:"msg"`
			Listeners []string `json:"listeners"`
		}
		if json.Unmarshal(line, &rec) == nil && rec.Msg == "switchboard started" && len(rec.Listeners) > 0 {
			addrc <- rec.Listeners[0]
		}
		if !strings.Contains(string(line), `"level":"DEBUG"`) {
			fmt.Fprintf(os.Stderr, "switchboard: %s\n", line)
		}
	}
}
