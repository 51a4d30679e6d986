package h1

import "testing"

// TestScanWords checks the eight-bytes-at-a-time scans against the byte
// classes for every byte value at every offset in a word and after it.
func TestScanWords(t *testing.T) {
	scans := []struct {
		name  string
		scan  func([]byte, int) int
		class uint8
	}{
		{"scanValue", scanValue, cValue},
		{"scanTarget", scanTarget, cTarget},
	}
	for _, s := range scans {
		for c := range 256 {
			for pos := range 20 {
				b := []byte("abcdefghijklmnopqrst")
				b[pos] = byte(c)
				want := len(b)
				if class[c]&s.class == 0 {
					want = pos
				}
				if got := s.scan(b, 0); got != want {
					t.Fatalf("%s with %#x at %d = %d, want %d", s.name, c, pos, got, want)
				}
			}
		}
	}
}
