package config

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want time.Duration
	}{
		{"empty is unset", "", 0},
		{"zero is unset", "0", 0},
		{"seconds", "5s", 5 * time.Second},
		{"compound", "1m30s", 90 * time.Second},
		{"milliseconds", "250ms", 250 * time.Millisecond},
		{"explicit zero unit", "0s", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDuration(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("parseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseDurationErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"bad unit", "5x", `invalid duration "5x": time: unknown unit "x" in duration "5x"`},
		{"missing unit", "5", `invalid duration "5": time: missing unit in duration "5"`},
		{"negative", "-1s", `invalid duration "-1s": must not be negative`},
		{"words", "soon", `invalid duration "soon": time: invalid duration "soon"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseDuration(tt.in)
			if err == nil || err.Error() != tt.want {
				t.Errorf("parseDuration(%q) error = %v; want %s", tt.in, err, tt.want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int64
	}{
		{"empty is unset", "", 0},
		{"plain bytes", "512", 512},
		{"bytes unit", "512B", 512},
		{"kibibytes", "64KiB", 64 << 10},
		{"mebibytes", "10MiB", 10 << 20},
		{"gibibytes", "1GiB", 1 << 30},
		{"kilobytes are decimal", "1KB", 1000},
		{"megabytes are decimal", "1MB", 1000000},
		{"gigabytes are decimal", "2GB", 2000000000},
		{"space before unit", "4 KiB", 4 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSize(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("parseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseSizeErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"negative", "-1", `invalid size "-1": must not be negative`},
		{"negative with unit", "-1KiB", `invalid size "-1KiB": must not be negative`},
		{"unknown unit", "10XB", `invalid size "10XB": ` + errSizeSyntax.Error()},
		{"lowercase unit", "10kib", `invalid size "10kib": ` + errSizeSyntax.Error()},
		{"unit only", "KiB", `invalid size "KiB": ` + errSizeSyntax.Error()},
		{"fraction", "1.5MiB", `invalid size "1.5MiB": ` + errSizeSyntax.Error()},
		{"plus sign", "+5", `invalid size "+5": ` + errSizeSyntax.Error()},
		{"overflow", "9999999999GiB", `invalid size "9999999999GiB": too large`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseSize(tt.in)
			if err == nil || err.Error() != tt.want {
				t.Errorf("parseSize(%q) error = %v; want %s", tt.in, err, tt.want)
			}
		})
	}
}

// TestUnitsFromYAML checks the YAML node forms: integers, quoted strings and null.
func TestUnitsFromYAML(t *testing.T) {
	tests := []struct {
		name     string
		yaml     string
		wantDur  time.Duration
		wantSize Size
	}{
		{"strings", "drain_timeout: 2s\nbody: 1MiB", 2 * time.Second, 1 << 20},
		{"quoted", "drain_timeout: \"2s\"\nbody: '1KB'", 2 * time.Second, 1000},
		{"integers", "drain_timeout: 0\nbody: 2048", 0, 2048},
		{"nulls", "drain_timeout:\nbody: ~", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got struct {
				Drain Duration `yaml:"drain_timeout"`
				Body  Size     `yaml:"body"`
			}
			if err := decodeForTest(tt.yaml, &got); err != nil || got.Drain.D() != tt.wantDur || got.Body != tt.wantSize {
				t.Errorf("decode(%q) = %+v, %v; want %v, %d", tt.yaml, got, err, tt.wantDur, tt.wantSize)
			}
		})
	}
}
