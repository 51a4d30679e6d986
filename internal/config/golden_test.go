package config

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/bad/*.golden from current output")

// TestBadConfigGolden parses every testdata/bad/*.yaml and compares the
// error text with the .golden file beside it. Run with -update to rewrite.
func TestBadConfigGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad configs found: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			checkGolden(t, file)
		})
	}
}

func checkGolden(t *testing.T, file string) {
	t.Helper()
	_, err := Load(file)
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("Load(%s) = %v (%T), want *Error", file, err, err)
	}
	got := []byte(ce.Error() + "\n")
	golden := strings.TrimSuffix(file, ".yaml") + ".golden"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("missing golden (run with -update): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("error text mismatch\n got: %s\nwant: %s", got, want)
	}
	data, _ := os.ReadFile(file)
	checkErrorLine(t, data, ce)
}

// checkErrorLine fails unless e's line is 0 or within data.
func checkErrorLine(t *testing.T, data []byte, e *Error) {
	t.Helper()
	if lines := countLines(data); e.Line < 0 || e.Line > lines {
		t.Errorf("error line %d outside file of %d lines: %v", e.Line, lines, e)
	}
}
