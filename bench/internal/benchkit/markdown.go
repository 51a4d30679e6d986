package benchkit

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Counts renders a tally for a Markdown table cell, largest first and
// escaped: "502 × 180, EOF × 3"; none if m is empty.
func Counts(m map[string]int, none string) string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			return m[b] - m[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s × %d", Escape(k), m[k])
	}
	if len(parts) == 0 {
		return none
	}
	return strings.Join(parts, ", ")
}

// Escape makes s safe in a Markdown table cell.
func Escape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
