package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// Duration is a time.Duration that decodes from YAML strings such as "5s" or
// "1m30s". The zero value (written "0", "" or left out) means "use the
// field's default". Negative durations are rejected when decoding.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML decodes a duration from a scalar node. It takes the node
// rather than bytes so a bad value is reported at its own line and column.
func (d *Duration) UnmarshalYAML(node ast.Node) error {
	s, err := scalarText(node)
	if err != nil {
		return err
	}
	v, err := parseDuration(s)
	if err != nil {
		return &valueError{msg: err.Error(), tok: node.GetToken()}
	}
	*d = Duration(v)
	return nil
}

// parseDuration parses s as a non-negative duration; "" and "0" are zero.
func parseDuration(s string) (time.Duration, error) {
	if s == "" || s == "0" {
		return 0, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: %w", s, err)
	}
	if v < 0 {
		return 0, fmt.Errorf("invalid duration %q: must not be negative", s)
	}
	return v, nil
}

// Size is a byte count. It decodes from a YAML integer or from a string of
// digits with an optional unit: B, KB, MB, GB (powers of 1000) or KiB, MiB,
// GiB (powers of 1024). The zero value means "use the field's default".
// Negative sizes are rejected when decoding.
type Size int64

// UnmarshalYAML decodes a size from a scalar node, reporting errors at the node.
func (s *Size) UnmarshalYAML(node ast.Node) error {
	text, err := scalarText(node)
	if err != nil {
		return err
	}
	v, err := parseSize(text)
	if err != nil {
		return &valueError{msg: err.Error(), tok: node.GetToken()}
	}
	*s = Size(v)
	return nil
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	// Longer suffixes first so "KiB" is not mistaken for "B".
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
	{"B", 1},
}

var errSizeSyntax = errors.New(`want digits with an optional unit B, KB, MB, GB, KiB, MiB or GiB`)

// parseSize parses s as a non-negative byte count; "" is zero.
func parseSize(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range sizeUnits {
		if n, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	if strings.HasPrefix(num, "-") {
		return 0, fmt.Errorf("invalid size %q: must not be negative", s)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || strings.HasPrefix(num, "+") {
		return 0, fmt.Errorf("invalid size %q: %w", s, errSizeSyntax)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return n * mult, nil
}

// scalarText returns the text of a scalar node; null is "". Anything else
// (a mapping, a list) is a type error at the node.
func scalarText(node ast.Node) (string, error) {
	switch n := node.(type) {
	case *ast.NullNode:
		return "", nil
	case *ast.StringNode:
		return n.Value, nil
	case *ast.IntegerNode, *ast.FloatNode:
		return n.GetToken().Value, nil
	}
	return "", &valueError{msg: "expected a scalar, got " + node.Type().YAMLName(), tok: node.GetToken()}
}

// valueError is a decode error raised by our own unmarshalers; it carries the
// token so Parse can report where the bad value is.
type valueError struct {
	msg string
	tok *token.Token
}

func (e *valueError) Error() string          { return e.msg }
func (e *valueError) GetMessage() string     { return e.msg }
func (e *valueError) GetToken() *token.Token { return e.tok }
