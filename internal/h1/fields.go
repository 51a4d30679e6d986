package h1

import (
	"bytes"
	"encoding/binary"
)

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

// framing collects the fields that decide how a message is delimited and
// whether its connection persists, in one pass over the parsed fields.
type framing struct {
	host           []byte
	hosts          int
	cl             []byte
	cls            int
	clDiffers      bool // two Content-Length values are not byte-identical
	te             []byte
	tes            int
	close          bool // Connection has "close"
	keepAlive      bool // Connection has "keep-alive"
	upgrade        bool // Connection has "upgrade"
	upgrades       int  // Upgrade fields
	expect100      bool
	keepAliveField []byte
	badTrailer     bool // Trailer names a framing field
}

// inspect fills fr from fields. Field names are matched by length first, so
// most fields cost one switch.
func (fr *framing) inspect(fields []Field) {
	*fr = framing{}
	for i := range fields {
		name, v := fields[i].Name, fields[i].Value
		switch len(name) {
		case 4:
			if equalFold(name, "host") {
				fr.hosts++
				if fr.hosts == 1 {
					fr.host = v
				}
			}
		case 6:
			if equalFold(name, "expect") && equalFold(v, "100-continue") {
				fr.expect100 = true
			}
		case 7:
			if equalFold(name, "upgrade") {
				fr.upgrades++
			} else if equalFold(name, "trailer") && namesFraming(v) {
				fr.badTrailer = true
			}
		case 10:
			if equalFold(name, "connection") {
				fr.connection(v)
			} else if equalFold(name, "keep-alive") && fr.keepAliveField == nil {
				fr.keepAliveField = v
			}
		case 14:
			if equalFold(name, "content-length") {
				fr.cls++
				if fr.cls == 1 {
					fr.cl = v
				} else if !bytes.Equal(v, fr.cl) {
					fr.clDiffers = true
				}
			}
		case 17:
			if equalFold(name, "transfer-encoding") {
				fr.tes++
				fr.te = v
			}
		}
	}
}

// connection records the options of one Connection field.
func (fr *framing) connection(v []byte) {
	for len(v) > 0 {
		var opt []byte
		opt, v = nextElement(v)
		switch {
		case equalFold(opt, "close"):
			fr.close = true
		case equalFold(opt, "keep-alive"):
			fr.keepAlive = true
		case equalFold(opt, "upgrade"):
			fr.upgrade = true
		}
	}
}

// namesFraming reports whether a Trailer field value declares a field that
// must not be sent as a trailer and that net/http refuses there.
func namesFraming(v []byte) bool {
	for len(v) > 0 {
		var e []byte
		e, v = nextElement(v)
		if equalFold(e, "content-length") || equalFold(e, "transfer-encoding") || equalFold(e, "trailer") {
			return true
		}
	}
	return false
}

// contentLength checks the Content-Length fields in fr. It returns -1 if
// there are none. sameOK accepts repeated byte-identical values (responses
// only, as net/http does).
func (fr *framing) contentLength(sameOK bool) (int64, error) {
	if fr.cls == 0 {
		return -1, nil
	}
	if fr.cls > 1 && (!sameOK || fr.clDiffers) {
		return 0, errManyCL
	}
	n, ok := parseDecimal(fr.cl)
	if !ok {
		return 0, errCL
	}
	return n, nil
}

// chunked checks the Transfer-Encoding fields in fr and reports whether the
// body is chunked. Only a single field whose whole value is "chunked" is
// accepted: RFC 9112 §6.1 lets a recipient refuse codings it does not
// implement, and no coding list can then be valid.
func (fr *framing) chunked(minor int) (bool, error) {
	switch {
	case fr.tes == 0:
		return false, nil
	case minor == 0:
		// RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means the framing
		// is faulty; net/http ignores the field instead.
		return false, errTEInHTTP10
	case fr.tes > 1:
		return false, errManyTE
	case fr.cls > 0:
		// RFC 9112 §6.1 lets a server reject this; a proxy that
		// accepted it would forward a message that other parsers may
		// frame by Content-Length.
		return false, errCLAndTE
	case equalFold(fr.te, "chunked"):
		return true, nil
	case isToken(fr.te):
		return false, errTEUnsupported
	}
	return false, errTE
}
