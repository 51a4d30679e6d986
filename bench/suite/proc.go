package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/switchboard-proxy/switchboard/bench/internal/benchkit"
)

// startPinned starts argv on cpu with taskset and extra environment env,
// its output in logPath. taskset execs the command, so the PID is the
// command's own.
func startPinned(name, logPath string, cpu int, env []string, argv ...string) (*benchkit.Proc, error) {
	p, err := benchkit.Start(name, logPath, env, append([]string{"taskset", "-c", strconv.Itoa(cpu)}, argv...)...)
	if err != nil {
		return nil, err
	}
	logf("%s pid %d on CPU %d", name, p.PID(), cpu)
	return p, nil
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
