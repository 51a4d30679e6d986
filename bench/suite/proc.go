package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a process started for the run, pinned to one CPU with taskset.
// taskset execs the command, so the PID is the command's own. Its stdout
// and stderr go to a log file in the run's temporary directory.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{} // closed once Wait returned
}

// startProc starts argv on cpu with extra environment env, its output in
// logPath.
func startProc(name, logPath string, cpu int, env []string, argv ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child keeps its own descriptor
	p := &proc{name: name, log: logPath, exited: make(chan struct{})}
	p.cmd = exec.Command("taskset", append([]string{"-c", strconv.Itoa(cpu)}, argv...)...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	// If this program dies, so does the process it started.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go p.wait()
	logf("%s pid %d on CPU %d", name, p.pid(), cpu)
	return p, nil
}

func (p *proc) wait() {
	p.cmd.Wait()
	close(p.exited)
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

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

// cpuTicks is the process's utime+stime in clock ticks, all threads.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The comm field may hold spaces and parentheses: count the fields
	// from after its last closing parenthesis; utime and stime are fields
	// 14 and 15 of the line, so 12 and 13 of the rest.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return ut + st, nil
}

// rssBytes is the process's resident set size (VmRSS).
func rssBytes(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// cpuBusy is the busy and total ticks of CPU n from /proc/stat (busy is
// everything but idle and iowait).
func cpuBusy(n int) (busy, total int64, err error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	want := "cpu" + strconv.Itoa(n)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[0] != want {
			continue
		}
		for i, s := range f[1:] {
			v, _ := strconv.ParseInt(s, 10, 64)
			total += v
			if i != 3 && i != 4 { // idle, iowait
				busy += v
			}
		}
		return busy, total, nil
	}
	return 0, 0, fmt.Errorf("/proc/stat: no %s", want)
}

// freeAddr returns a loopback address with a port that was free a moment
// ago, for processes that cannot report the port they bound.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// ensureInstalled finds bin, installing Debian package pkg with apt-get
// if it is missing, and returns the path of bin. apt-get update runs at
// most once per run, the first time an install needs it.
func (e *env) ensureInstalled(ctx context.Context, bin, pkg string) (string, error) {
	if path, err := lookSbin(bin); err == nil {
		return path, nil
	}
	logf("%s not found; installing Debian package %s with apt-get", bin, pkg)
	var sudo []string
	if os.Geteuid() != 0 {
		sudo = []string{"sudo", "-n"}
	}
	apt := func(args ...string) error {
		argv := append(append(slices.Clone(sudo), "apt-get"), args...)
		logf("running %s", strings.Join(argv, " "))
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, lastLine(out))
		}
		return nil
	}
	install := func() error { return apt("install", "-y", "--no-install-recommends", pkg) }
	if err := install(); err != nil {
		if e.aptUpdated {
			return "", err
		}
		e.aptUpdated = true
		if err := apt("update"); err != nil {
			return "", err
		}
		if err := install(); err != nil {
			return "", err
		}
	}
	e.installed = append(e.installed, pkg)
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

// versionLine is the first line bin prints for flag, on either stream.
func versionLine(bin, flag string) string {
	out, err := exec.Command(bin, flag).CombinedOutput()
	if err != nil && len(out) == 0 {
		return "unknown"
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}
