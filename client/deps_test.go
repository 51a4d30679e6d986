package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the client light: a program importing it must not
// pull in the proxy's YAML, metrics or queue dependencies.
func TestDependencies(t *testing.T) {
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	out, err := exec.Command(gocmd, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/nats-io/", "github.com/goccy/go-yaml", "github.com/prometheus/", "internal/upstream", "internal/config", "internal/proxy"} {
			if strings.Contains(dep, banned) {
				t.Errorf("client depends on %s", dep)
			}
		}
	}
}
