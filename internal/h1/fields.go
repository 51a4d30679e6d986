package h1

import "bytes"

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
		f, next, err := parseField(b, i)
		if err != nil {
			return fields, 0, err
		}
		if len(fields) == MaxFields {
			return fields, 0, errTooManyFields
		}
		fields = append(fields, f)
		i = next
	}
}

// parseField parses the field line starting at b[i] and returns the index
// of the next line.
func parseField(b []byte, i int) (Field, int, error) {
	j := i
	for j < len(b) && class[b[j]]&cToken != 0 {
		j++
	}
	if j == len(b) {
		return Field{}, 0, errShort
	}
	if b[j] != ':' {
		if isOWS(b[j]) {
			// RFC 9112 §5.1: a server MUST reject this; net/http
			// accepts it (go.dev/issue/34540) and keeps the space.
			return Field{}, 0, errSpaceBeforeColon
		}
		return Field{}, 0, errFieldName
	}
	if j == i {
		return Field{}, 0, errFieldName
	}
	name := b[i:j]
	j++
	for j < len(b) && isOWS(b[j]) {
		j++
	}
	start := j
	j = scanValue(b, j)
	if j >= len(b) {
		return Field{}, 0, errShort
	}
	if b[j] != '\r' {
		if b[j] == '\n' {
			return Field{}, 0, errBareLF
		}
		return Field{}, 0, errFieldValue
	}
	if j+1 >= len(b) {
		return Field{}, 0, errShort
	}
	if b[j+1] != '\n' {
		return Field{}, 0, errBareCR
	}
	end := j
	for end > start && isOWS(b[end-1]) {
		end--
	}
	return Field{Name: name, Value: b[start:end]}, j + 2, nil
}

// scanValue returns the index of the first byte at or after b[i] that may
// not appear in a field value, or len(b).
func scanValue(b []byte, i int) int {
	for i < len(b) && class[b[i]]&cValue != 0 {
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
