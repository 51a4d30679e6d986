package benchkit

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Proc is a process started for a run. It dies with the program that
// started it (Pdeathsig) and is stopped by PID with Stop.
type Proc struct {
	name   string
	log    string // the output file, "" if the caller routed the output itself
	cmd    *exec.Cmd
	exited chan struct{} // closed once Wait returned
}

// Start starts argv with extra environment env (added to this process's),
// its stdout and stderr in a new file logPath.
func Start(name, logPath string, env []string, argv ...string) (*Proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child keeps its own descriptor
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	p, err := StartCmd(name, cmd)
	if p != nil {
		p.log = logPath
	}
	return p, err
}

// StartCmd starts cmd, which the caller has set up (output, environment)
// but not started, and tracks it under name.
func StartCmd(name string, cmd *exec.Cmd) (*Proc, error) {
	// If this program dies, so does the process it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{name: name, cmd: cmd, exited: make(chan struct{})}
	go p.wait()
	return p, nil
}

func (p *Proc) wait() {
	p.cmd.Wait()
	close(p.exited)
}

// PID is the process's ID.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Exited is closed once the process has exited and been reaped.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// WaitListening dials addr until it accepts, the process exits, or 10s
// pass. The probe connections carry no request.
func (p *Proc) WaitListening(ctx context.Context, addr string) error {
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
			return fmt.Errorf("%s exited before listening on %s: %s", p.name, addr, p.LogTail())
		case <-ctx.Done():
			return fmt.Errorf("%s not listening on %s: %w", p.name, addr, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// LogTail is the last lines of the process's log file, for error messages.
func (p *Proc) LogTail() string {
	if p.log == "" {
		return "no log file"
	}
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], " | ")
}

// Stop ends the process by PID: SIGTERM, then SIGKILL after 5s. It may be
// called more than once, and on a nil *Proc.
func (p *Proc) Stop() {
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

// FreeAddr returns a loopback address with a port that was free a moment
// ago, for processes that cannot report the port they bound.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
