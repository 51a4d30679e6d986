package h1

import "encoding/binary"

// Field is one header or trailer field. Name and Value alias the parsed
// buffer. Value has leading and trailing OWS trimmed; Name is as sent (not
// canonicalised).
type Field struct{ Name, Value []byte }

// MaxFields is the most field lines a head or trailer section may have;
// one more is refused with status 431.
const MaxFields = 200

// DefaultMaxHeaderBytes is the head size limit used when ParseRequest or
// ParseResponse is given a limit ≤ 0. It is net/http's default.
const DefaultMaxHeaderBytes = 1 << 20

// errShort is parseFields' and the start-line parsers' internal "the buffer
// ended first"; the exported functions turn it into ErrIncomplete or 431.
var errShort = newError(0, "short buffer")

// parseFields parses field lines from b[i:] through the empty line that ends
// the section, appending them to fields. It returns the index just past the
// empty line. Each line is field-name ":" OWS field-value OWS CRLF, with a
// token name and no CTL but HTAB in the value (RFC 9112 §5, RFC 9110 §5.5);
// obs-fold and bare CR or LF are errors.
func parseFields(b []byte, i int, fields []Field) ([]Field, int, error) {
	for {
		if i >= len(b) {
			return fields, 0, errShort
		}
		switch b[i] {
		case '\r':
			if i+1 >= len(b) {
				return fields, 0, errShort
			}
			if b[i+1] != '\n' {
				return fields, 0, errBareCR
			}
			return fields, i + 2, nil
		case '\n':
			return fields, 0, errBareLF
		case ' ', '\t':
			return fields, 0, errObsFold
		}
		colon, start, end, next, err := parseField(b, i)
		if err != nil {
			return fields, 0, err
		}
		if len(fields) == MaxFields {
			return fields, 0, errTooManyFields
		}
		fields = append(fields, Field{Name: b[i:colon], Value: b[start:end]})
		i = next
	}
}

// parseField parses the field line starting at b[i]. The name is
// b[i:colon], the value b[start:end]; the next line starts at b[next]. (The
// indexes, unlike a Field, come back in registers.)
func parseField(b []byte, i int) (colon, start, end, next int, err error) {
	j := i
	for j < len(b) && class[b[j]]&cToken != 0 {
		j++
	}
	if j == len(b) {
		return 0, 0, 0, 0, errShort
	}
	if b[j] != ':' {
		if isOWS(b[j]) {
			// RFC 9112 §5.1: a server MUST reject this; net/http
			// accepts it (go.dev/issue/34540) and keeps the space.
			return 0, 0, 0, 0, errSpaceBeforeColon
		}
		return 0, 0, 0, 0, errFieldName
	}
	if j == i {
		return 0, 0, 0, 0, errFieldName
	}
	colon = j
	j++
	for j < len(b) && isOWS(b[j]) {
		j++
	}
	start = j
	j = scanValue(b, j)
	if j >= len(b) {
		return 0, 0, 0, 0, errShort
	}
	if b[j] != '\r' {
		if b[j] == '\n' {
			return 0, 0, 0, 0, errBareLF
		}
		return 0, 0, 0, 0, errFieldValue
	}
	if j+1 >= len(b) {
		return 0, 0, 0, 0, errShort
	}
	if b[j+1] != '\n' {
		return 0, 0, 0, 0, errBareCR
	}
	end = j
	for end > start && isOWS(b[end-1]) {
		end--
	}
	return colon, start, end, j + 2, nil
}

// scanValue returns the index of the first byte at or after b[i] that may
// not appear in a field value, or len(b). It skips eight bytes at a time
// while none of them is a CTL or DEL: field values are most of a head.
func scanValue(b []byte, i int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		del := x ^ 0x7f*ones
		// The high bit of a byte is set in the result if that byte (or,
		// past such a byte, a later one) is below 0x20 in x or zero in
		// del (Hacker's Delight, "hasless"); bytes ≥ 0x80 never match.
		if (x-0x20*ones)&^x&highs|(del-ones)&^del&highs != 0 {
			break
		}
	}
	for i < len(b) && class[b[i]]&cValue != 0 {
		i++
	}
	return i
}

// scanTarget is scanValue for request-target bytes: it stops at a CTL, SP,
// DEL or '#'.
func scanTarget(b []byte, i int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		del, hash := x^0x7f*ones, x^'#'*ones
		if (x-0x21*ones)&^x&highs|(del-ones)&^del&highs|(hash-ones)&^hash&highs != 0 {
			break
		}
	}
	for i < len(b) && class[b[i]]&cTarget != 0 {
		i++
	}
	return i
}

// get returns the value of the first field in fields named name, ignoring
// ASCII case, or nil.
func get(fields []Field, name string) []byte {
	for i := range fields {
		if equalFold(fields[i].Name, name) {
			return fields[i].Value
		}
	}
	return nil
}
