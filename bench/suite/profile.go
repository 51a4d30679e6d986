package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/switchboard-proxy/switchboard/bench/internal/benchkit"
)

// profileInit is added to cmd/switchboard's main package at build time
// (go build -overlay), never to the source tree: switchboard has no
// profiling endpoint, and this is the cheapest way to profile the real
// binary. It records a CPU profile from start-up for
// $SUITE_CPUPROFILE_FOR into $SUITE_CPUPROFILE (written under a temporary
// name and renamed once complete). An init side effect is tolerable only
// because the file exists in this benchmark build alone.
const profileInit = `package main

import (
	"os"
	"runtime/pprof"
	"time"
)

func init() {
	path := os.Getenv("SUITE_CPUPROFILE")
	d, err := time.ParseDuration(os.Getenv("SUITE_CPUPROFILE_FOR"))
	if path == "" || err != nil {
		return
	}
	f, err := os.Create(path + ".part")
	if err != nil {
		return
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return
	}
	go func() {
		time.Sleep(d)
		pprof.StopCPUProfile()
		if f.Close() == nil {
			os.Rename(path+".part", path)
		}
	}()
}
`

// profileResult is the CPU profile of switchboard under saturation load.
type profileResult struct {
	file string // where the profile was saved
	top  string // go tool pprof -top
	wrk  wrkResult
	err  string
}

// profileSwitchboard builds switchboard with profileInit, runs it on the
// proxy CPU under the small-body saturation load for s.profile, and saves
// the profile beside the result file, named after it
// (suite-DATE-switchboard.cpu.pprof); with no result file it stays in
// the temporary directory.
func profileSwitchboard(ctx context.Context, e *env, s *settings) *profileResult {
	r := &profileResult{}
	fail := func(err error) *profileResult {
		r.err = err.Error()
		logf("profile: %v", err)
		return r
	}
	src := filepath.Join(e.dir, "suite_cpuprofile.go")
	if err := os.WriteFile(src, []byte(profileInit), 0o600); err != nil {
		return fail(err)
	}
	overlay, err := json.Marshal(map[string]map[string]string{"Replace": {
		filepath.Join(e.root, "cmd", "switchboard", "zz_suite_cpuprofile.go"): src}})
	if err != nil {
		return fail(err)
	}
	ovPath := filepath.Join(e.dir, "overlay.json")
	if err := os.WriteFile(ovPath, overlay, 0o600); err != nil {
		return fail(err)
	}
	logf("profile: building switchboard with a CPU profile hook (go build -overlay)")
	bin, err := benchkit.GoBuild(ctx, e.root, e.dir, "switchboard-profiled", "./cmd/switchboard", "-overlay", ovPath)
	if err != nil {
		return fail(err)
	}

	prof := filepath.Join(e.dir, "switchboard.cpu.pprof")
	t := prepareSwitchboard(ctx, e)
	t.name, t.bin = "switchboard-profiled", bin
	t.env = append(t.env, "SUITE_CPUPROFILE="+prof, fmt.Sprintf("SUITE_CPUPROFILE_FOR=%v", s.profile+time.Second))
	p, addr, err := t.launch(ctx, e, 0)
	if err != nil {
		return fail(err)
	}
	defer p.Stop()
	if r.wrk, err = runWrk(ctx, e.loadCPU, "http://"+addr+pathSmall, s.satConns, s.profile); err != nil {
		return fail(err)
	}
	if err := waitFile(ctx, prof, 5*time.Second); err != nil {
		return fail(err)
	}
	r.file = prof
	if s.out != "-" {
		b, err := os.ReadFile(prof)
		if err != nil {
			return fail(err)
		}
		r.file = strings.TrimSuffix(s.out, ".md") + "-switchboard.cpu.pprof"
		if err := os.MkdirAll(filepath.Dir(r.file), 0o755); err != nil {
			return fail(err)
		}
		if err := os.WriteFile(r.file, b, 0o644); err != nil {
			return fail(err)
		}
	}
	for _, v := range []struct{ title, flag string }{{"flat", "-flat"}, {"cumulative", "-cum"}} {
		top, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", v.flag, "-nodecount=25", bin, prof).Output()
		if err != nil {
			r.top += fmt.Sprintf("`go tool pprof -top %s` failed: %v\n\n", v.flag, err)
			continue
		}
		r.top += fmt.Sprintf("Top 25 by %s CPU (`go tool pprof -top %s`):\n\n```\n%s\n```\n\n", v.title, v.flag, pprofBody(string(top)))
	}
	r.top = strings.TrimSpace(r.top)
	logf("profile: %.0f req/s while profiling; saved %s", r.wrk.rps, r.file)
	return r
}

// pprofBody drops pprof's header lines that name the temporary binary
// and its build ID.
func pprofBody(s string) string {
	var keep []string
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if !strings.HasPrefix(line, "File:") && !strings.HasPrefix(line, "Build ID:") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// waitFile waits up to d for path to exist.
func waitFile(ctx context.Context, path string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear within %v", filepath.Base(path), d)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
