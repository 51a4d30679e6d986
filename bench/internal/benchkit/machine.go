package benchkit

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// Toolchain is the Go version and platform: "go1.26.0 linux/amd64".
func Toolchain() string {
	return fmt.Sprintf("%s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// Machine describes the machine: "2 CPUs (model), Linux 6.1.0, Debian …".
func Machine() string {
	return fmt.Sprintf("%d CPUs (%s), Linux %s, %s", NumCPU(), CPUModel(), Kernel(), OSName())
}

// NumCPU is the machine's online CPUs; runtime.NumCPU would count only
// the CPUs this process may use, fewer when it is pinned.
func NumCPU() int {
	if b, err := exec.Command("nproc", "--all").Output(); err == nil {
		var n int
		if _, err := fmt.Sscan(string(b), &n); err == nil {
			return n
		}
	}
	return runtime.NumCPU()
}

// Kernel is the kernel release (uname -r), or "?".
func Kernel() string {
	if b, err := exec.Command("uname", "-r").Output(); err == nil {
		return strings.TrimSpace(string(b))
	}
	return "?"
}

// CPUModel is the first "model name" in /proc/cpuinfo.
func CPUModel() string { return fileField("/proc/cpuinfo", "model name", ":") }

// OSName is PRETTY_NAME from /etc/os-release.
func OSName() string { return strings.Trim(fileField("/etc/os-release", "PRETTY_NAME", "="), `"`) }

// MemTotal is the machine's memory in GiB ("7.8 GiB"), or "?".
func MemTotal() string {
	v := strings.TrimSuffix(fileField("/proc/meminfo", "MemTotal", ":"), " kB")
	var kb float64
	if _, err := fmt.Sscan(v, &kb); err != nil {
		return "?"
	}
	return fmt.Sprintf("%.1f GiB", kb/(1<<20))
}

// fileField is the value after sep on the first line of path whose key is
// key, or "?".
func fileField(path, key, sep string) string {
	f, err := os.Open(path)
	if err != nil {
		return "?"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), sep)
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
