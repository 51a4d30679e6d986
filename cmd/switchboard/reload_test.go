package main

import (
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestReloadKeepsEveryAccessRecord: rule R8 holds across reloads — a storm
// of SIGHUPs under load loses no access-log record.
func TestReloadKeepsEveryAccessRecord(t *testing.T) {
	up := newUpstream(t)
	dir := t.TempDir()
	cfg := serveConfig{upstream: up.URL, accessLog: filepath.Join(dir, "access.log")}
	cfgPath := filepath.Join(dir, "switchboard.yaml")
	writeFile(t, cfgPath, cfg.yaml())
	p := startSwitchboard(t, "serve", "--config", cfgPath)
	addr, _ := p.started(t)

	const callers = 8
	var termSent atomic.Bool
	prog := newProgress()
	load := startLoad(t, modeH1, "http://"+addr, callers, &termSent, prog)
	prog.waitFor(t, 10*callers)
	for range 100 {
		reloadWith(t, p, cfgPath, cfg, "configuration reloaded")
	}
	termSent.Store(true)
	p.signal(t, syscall.SIGTERM)
	if code := p.waitExit(t, drainTimeout); code != 0 {
		t.Errorf("exit code %d after drain, want 0", code)
	}
	ok, _ := load.wait(t)
	checkAccessLog(t, cfg.accessLog, modeH1, ok, nil)
}

// TestReloadDrainTimeout: a drain_timeout changed by SIGHUP applies to the
// next shutdown, so a request longer than it is cut off at the new deadline.
func TestReloadDrainTimeout(t *testing.T) {
	up := newUpstream(t)
	dir := t.TempDir()
	cfg := serveConfig{upstream: up.URL, accessLog: filepath.Join(dir, "access.log")}
	cfgPath := filepath.Join(dir, "switchboard.yaml")
	writeFile(t, cfgPath, cfg.yaml())
	p := startSwitchboard(t, "serve", "--config", cfgPath)
	addr, _ := p.started(t)

	short := strings.Replace(cfg.yaml(), "drain_timeout: "+drainTimeout.String(), "drain_timeout: 200ms", 1)
	writeFile(t, cfgPath, short)
	p.signal(t, syscall.SIGHUP)
	p.waitLog(t, "configuration reloaded")

	slow := startSlow(t, modeH1, "http://"+addr+"/slow", up)
	sigAt := time.Now()
	p.signal(t, syscall.SIGTERM)
	p.waitLog(t, "drain ended at the deadline")
	if code := p.waitExit(t, drainTimeout); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if d := time.Since(sigAt); d >= slowFor {
		t.Errorf("SIGTERM to exit took %v with drain_timeout reloaded to 200ms", d)
	}
	if err := slow.result(t); err == nil {
		t.Errorf("the %v request finished although drain_timeout was reloaded to 200ms", slowFor)
	}
}
