package benchkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Installer installs missing Debian packages with apt-get (through
// "sudo -n" unless root). It runs apt-get update at most once, the first
// time an install needs it. The zero value logs nothing; it is not safe
// for concurrent use.
type Installer struct {
	// Logf, if set, is told what is installed and which commands run.
	Logf func(format string, args ...any)
	// Installed lists the packages this Installer installed, in order.
	Installed []string
	updated   bool
}

func (in *Installer) logf(format string, args ...any) {
	if in.Logf != nil {
		in.Logf(format, args...)
	}
}

// Ensure finds bin, installing package pkg if it is missing, and returns
// the path of bin.
func (in *Installer) Ensure(ctx context.Context, bin, pkg string) (string, error) {
	if path, err := LookSbin(bin); err == nil {
		return path, nil
	}
	in.logf("%s not found; installing Debian package %s with apt-get", bin, pkg)
	install := func() error { return in.apt(ctx, "install", "-y", "--no-install-recommends", pkg) }
	if err := install(); err != nil {
		if in.updated {
			return "", err
		}
		in.updated = true
		if err := in.apt(ctx, "update"); err != nil {
			return "", err
		}
		if err := install(); err != nil {
			return "", err
		}
	}
	in.Installed = append(in.Installed, pkg)
	return LookSbin(bin)
}

func (in *Installer) apt(ctx context.Context, args ...string) error {
	var argv []string
	if os.Geteuid() != 0 {
		argv = []string{"sudo", "-n"}
	}
	argv = append(append(argv, "apt-get"), args...)
	in.logf("running %s", strings.Join(argv, " "))
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, lastLine(out))
	}
	return nil
}

// LookSbin is exec.LookPath that also tries /usr/sbin, which a non-root
// PATH often lacks.
func LookSbin(bin string) (string, error) {
	if path, err := exec.LookPath(bin); err == nil {
		return path, nil
	}
	path := "/usr/sbin/" + bin
	if fi, err := os.Stat(path); err == nil && fi.Mode()&0o111 != 0 {
		return path, nil
	}
	return "", errors.New(bin + " not found")
}

// VersionLine is the first line bin prints for flag ("-v"), on either
// stream, or "unknown".
func VersionLine(bin, flag string) string {
	out, err := exec.Command(bin, flag).CombinedOutput()
	if err != nil && len(out) == 0 {
		return "unknown"
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
