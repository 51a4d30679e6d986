package config

import (
	"fmt"
	"strings"
)

// Error is the one error type for a bad configuration. Parse, Load and
// FromFlags return it (as *Error) for every problem: YAML syntax, unknown
// fields, bad values and failed cross-field rules.
type Error struct {
	File   string // config file name; "" for flags or an unnamed source
	Line   int    // 1-based; 0 if unknown
	Column int    // 1-based; 0 if unknown
	Field  string // dotted path like "routes[0].timeouts.connect"; "" for the whole file
	Msg    string // short and lowercase, without position or field
}

// Error formats e as "file:line:col: field: msg", leaving out empty parts.
func (e *Error) Error() string {
	var b strings.Builder
	if loc := location(e.File, e.Line, e.Column); loc != "" {
		b.WriteString(loc)
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// location formats a position as "file:line:col", "file:line", "file",
// "line:col" or "", depending on what is known.
func location(file string, line, col int) string {
	parts := make([]string, 0, 3)
	if file != "" {
		parts = append(parts, file)
	}
	if line > 0 {
		parts = append(parts, fmt.Sprint(line))
		if col > 0 {
			parts = append(parts, fmt.Sprint(col))
		}
	}
	return strings.Join(parts, ":")
}
