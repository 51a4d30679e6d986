package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// proxyProc is a switchboard binary started for the run.
type proxyProc struct {
	cmd       *exec.Cmd
	addr      string // the bound caller listener
	accessLog string // path of the access log file
	exited    chan struct{}
}

// buildProxy compiles cmd/switchboard into dir and returns the binary path.
func buildProxy(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "switchboard")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/switchboard-proxy/switchboard/cmd/switchboard")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build switchboard: %w", err)
	}
	return bin, nil
}

// startProxy writes a config for upstream into dir, starts bin with it and
// waits for the "switchboard started" line that names the bound listener.
func startProxy(bin, dir, upstream string) (*proxyProc, error) {
	p := &proxyProc{accessLog: filepath.Join(dir, "access.log"), exited: make(chan struct{})}
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
	p.cmd = exec.Command(bin, "serve", "--config", cfgPath)
	// If this program dies, so does the proxy it started.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start switchboard: %w", err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()

	addrc := make(chan string, 1)
	go scanStarted(stderr, addrc)
	select {
	case p.addr = <-addrc:
		return p, nil
	case <-p.exited:
		return nil, errors.New("switchboard exited before it started (see its log above)")
	case <-time.After(10 * time.Second):
		p.stop()
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

// stop ends the proxy by PID: SIGTERM, then SIGKILL after 5s.
func (p *proxyProc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}
