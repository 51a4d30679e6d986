package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// proc is a proxy process started for the run. Its stdout and stderr go
// to a log file in the run's temporary directory.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{} // closed once Wait returned
}

// startProc starts argv with its output in logPath.
func startProc(name, logPath string, argv ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child keeps its own descriptor
	p := &proc{name: name, log: logPath, exited: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	// If this program dies, so does the proxy it started.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go p.wait()
	fmt.Fprintf(os.Stderr, "retries: %s pid %d\n", name, p.cmd.Process.Pid)
	return p, nil
}

func (p *proc) wait() {
	p.cmd.Wait()
	close(p.exited)
}

// waitListening dials addr until it accepts, the process exits, or 10s
// pass. The probe connections carry no request.
func (p *proc) waitListening(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before listening on %s: %s", p.name, addr, p.logTail())
		case <-ctx.Done():
			return fmt.Errorf("%s not listening on %s: %w", p.name, addr, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// logTail is the last lines of the process's log, for error messages.
func (p *proc) logTail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], " | ")
}

// stop ends the process by PID: SIGTERM, then SIGKILL after 5s. It may
// be called more than once.
func (p *proc) stop() {
	if p == nil {
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

// freeAddr returns a loopback address with a port that was free a moment
// ago, for proxies that cannot report the port they bound.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// ensureInstalled finds bin, installing Debian package pkg with apt-get
// if it is missing. It returns the path of bin.
func ensureInstalled(ctx context.Context, bin, pkg string) (string, error) {
	if path, err := lookSbin(bin); err == nil {
		return path, nil
	}
	fmt.Fprintf(os.Stderr, "retries: %s not found; installing Debian package %s with apt-get\n", bin, pkg)
	var sudo []string
	if os.Geteuid() != 0 {
		sudo = []string{"sudo", "-n"}
	}
	apt := func(args ...string) error {
		argv := append(append(slices.Clone(sudo), "apt-get"), args...)
		fmt.Fprintf(os.Stderr, "retries: running %s\n", strings.Join(argv, " "))
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, lastLine(out))
		}
		return nil
	}
	if err := apt("install", "-y", "--no-install-recommends", pkg); err != nil {
		if err := apt("update"); err != nil {
			return "", err
		}
		if err := apt("install", "-y", "--no-install-recommends", pkg); err != nil {
			return "", err
		}
	}
	return lookSbin(bin)
}

// lookSbin is exec.LookPath that also tries /usr/sbin, which a non-root
// PATH often lacks.
func lookSbin(bin string) (string, error) {
	if path, err := exec.LookPath(bin); err == nil {
		return path, nil
	}
	path := "/usr/sbin/" + bin
	if fi, err := os.Stat(path); err == nil && fi.Mode()&0o111 != 0 {
		return path, nil
	}
	return "", errors.New(bin + " not found")
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
