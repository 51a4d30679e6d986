package h1

import "bytes"

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
