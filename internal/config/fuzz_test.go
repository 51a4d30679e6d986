package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that Parse never panics and that every failure is an
// *Error whose line lies inside the input.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/bad/*.yaml")
	for _, name := range append(seeds, examplePath) {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(resolvedYAML))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err == nil {
			if c == nil || len(c.Listeners) == 0 || len(c.Pools) == 0 || len(c.Routes) == 0 {
				t.Fatalf("Parse succeeded with an incomplete config: %+v", c)
			}
			return
		}
		var ce *Error
		if !errors.As(err, &ce) {
			t.Fatalf("Parse error %T is not *Error: %v", err, err)
		}
		checkErrorLine(t, data, ce)
	})
}

// countLines counts lines the way YAML does: "\r\n", "\r" and "\n" each end
// a line, so an old-Mac file with bare CRs still has positions inside it.
func countLines(data []byte) int {
	crlf := bytes.Count(data, []byte("\r\n"))
	return bytes.Count(data, []byte("\n")) + bytes.Count(data, []byte("\r")) - crlf + 1
}
