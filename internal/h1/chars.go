package h1

// Byte classes, one bit each in class. The tables are the RFC grammars, not
// net/http's: where net/http is looser (a space in a field name, '#' in a
// request-target) the difference is listed in the package doc.
const (
	cToken   = 1 << iota // tchar (RFC 9110 §5.6.2)
	cValue               // field-vchar, SP or HTAB (RFC 9110 §5.5): no CTL but HTAB, no DEL
	cTarget              // request-target byte: VCHAR but '#', or obs-text
	cRegName             // reg-name byte: unreserved / sub-delims (RFC 3986 §3.2.2), no '%'
	cHex                 // HEXDIG
	cDigit               // DIGIT
)

// class holds the classes of each byte value.
var class = makeClass()

func makeClass() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		alpha := 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z'
		digit := '0' <= b && b <= '9'
		if alpha || digit || indexOf("!#$%&'*+-.^_`|~", b) {
			t[c] |= cToken
		}
		if b == '\t' || b >= ' ' && b != 0x7f {
			t[c] |= cValue
		}
		if b > ' ' && b != 0x7f && b != '#' {
			t[c] |= cTarget
		}
		if alpha || digit || indexOf("-._~!$&'()*+,;=", b) {
			t[c] |= cRegName
		}
		if digit || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F' {
			t[c] |= cHex
		}
		if digit {
			t[c] |= cDigit
		}
	}
	return t
}

func indexOf(s string, b byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return true
		}
	}
	return false
}

// isToken reports whether b is a non-empty RFC 9110 token.
func isToken(b []byte) bool {
	for _, c := range b {
		if class[c]&cToken == 0 {
			return false
		}
	}
	return len(b) > 0
}

// lower returns c in lower case if it is an ASCII upper-case letter.
func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// equalFold reports whether b equals s, ignoring ASCII case. s is a
// constant in this package, so only b can hold non-ASCII bytes, and those
// never fold.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

// equalFoldBytes is equalFold for two slices.
func equalFoldBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func isOWS(c byte) bool { return c == ' ' || c == '\t' }

// trimOWS returns b without leading and trailing SP and HTAB.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && isOWS(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isOWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// nextElement splits the first element off a comma-separated list
// (RFC 9110 §5.6.1) and returns it OWS-trimmed with the rest of the list.
// Empty elements are returned as empty slices; callers skip them.
func nextElement(list []byte) (elem, rest []byte) {
	for i, c := range list {
		if c == ',' {
			return trimOWS(list[:i]), list[i+1:]
		}
	}
	return trimOWS(list), nil
}

// parseDecimal parses 1*DIGIT as a non-negative int64 and reports whether
// it was well formed and did not overflow.
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if class[c]&cDigit == 0 {
			return 0, false
		}
		d := int64(c - '0')
		if n > (1<<63-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}
