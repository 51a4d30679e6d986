package benchkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ErrBudget is the cause of a run stopped by its time budget.
var ErrBudget = errors.New("budget spent")

// RunContext is a run's context: cancelled by SIGINT or SIGTERM and, if
// budget > 0, with cause ErrBudget once budget has passed from now. The
// caller calls stop when the run ends, which also restores the default
// signal behaviour.
func RunContext(budget time.Duration) (ctx context.Context, stop context.CancelFunc) {
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if budget <= 0 {
		return ctx, stopSignals
	}
	ctx, cancel := context.WithDeadlineCause(ctx, time.Now().Add(budget), ErrBudget)
	return ctx, func() { cancel(); stopSignals() }
}

// ModuleRoot is the directory of the go.mod the program runs in; prog
// names the program in the error when there is none.
func ModuleRoot(prog string) (string, error) {
	b, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(b))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("run %s inside the switchboard module", prog)
	}
	return filepath.Dir(gomod), nil
}

// GitCommit is the short commit of the checkout at root, with a note if
// it has uncommitted changes, or "unknown".
func GitCommit(root string) string {
	b, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(b))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain").Output(); err == nil && len(st) > 0 {
		c += " with uncommitted changes"
	}
	return c
}

// GoBuild compiles package pkg of the module at root into dir/name, with
// extra build flags, and returns the binary's path. The go command's
// output goes to stderr.
func GoBuild(ctx context.Context, root, dir, name, pkg string, extra ...string) (string, error) {
	bin := filepath.Join(dir, name)
	args := append(append([]string{"build"}, extra...), "-o", bin, pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build %s: %w", name, err)
	}
	return bin, nil
}

// WriteResult writes a report to path, creating its directory.
func WriteResult(path, md string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(md), 0o644)
}
