package h1

import (
	"net/http"
	"strings"
)

// Strings turns the byte slices of a parsed head into strings. Each
// string is a piece of one copy of the head, or, with a Recent, the same
// string as the last head's where the bytes are the same. The zero value
// is not usable; make one with NewStrings.
type Strings struct {
	buf  []byte
	s    string // a copy of buf[from:]; with a Recent, made at the first piece that differs
	from int
	rec  *Recent
}

// Recent keeps the strings of the last head a Strings made, in the order
// they were asked for, so that the next head's strings that are the same
// bytes, asked for in the same order, are the same strings: a caller that
// sends the same fields request after request, as callers do on one
// connection, costs no copy, and a head that differs is copied from its
// first difference on, in one allocation. Strings never change, so reuse
// is safe whoever still holds them. The zero value is ready to use; a
// Recent serves one head at a time.
type Recent struct {
	last, cur []string
}

// NewStrings makes the strings of head, the bytes a Request's or
// Response's slices alias. Without a Recent (nil), head is copied at once.
func NewStrings(head []byte, rec *Recent) Strings {
	if rec == nil {
		return Strings{buf: head, s: string(head)}
	}
	rec.last, rec.cur = rec.cur, rec.last[:0]
	return Strings{buf: head, rec: rec, from: len(head)}
}

// Of returns b, a slice of the head, as a string. A slice from elsewhere
// is copied.
func (s *Strings) Of(b []byte) string {
	str := ""
	if len(b) > 0 {
		str = s.of(b)
	}
	if s.rec != nil {
		s.rec.cur = append(s.rec.cur, str)
	}
	return str
}

func (s *Strings) of(b []byte) string {
	i := cap(s.buf) - cap(b) // b is buf[i:j]: a slice keeps its array's end
	if i < 0 || i+len(b) > len(s.buf) || &s.buf[i] != &b[0] {
		return string(b)
	}
	if rec := s.rec; rec != nil {
		if n := len(rec.cur); n < len(rec.last) && rec.last[n] == string(b) {
			return rec.last[n]
		}
		if i < s.from {
			if s.s != "" {
				return string(b) // before the copy: rare, a piece asked for out of order
			}
			s.s, s.from = string(s.buf[i:]), i
		}
	}
	return s.s[i-s.from : i-s.from+len(b)]
}

// Header returns the fields as an http.Header with canonical keys, as
// net/http would read them. The values share one backing array, and a
// key is copied only when it is not already canonical.
func (s *Strings) Header(fields []Field) http.Header {
	h, _ := s.HeaderInto(make(http.Header, len(fields)), nil, fields)
	return h
}

// HeaderInto is Header filling h, which must be empty, and taking the
// values' backing array from values when it is long enough. It returns h
// and the backing array, for reuse once nothing refers to h any more.
func (s *Strings) HeaderInto(h http.Header, values []string, fields []Field) (http.Header, []string) {
	if cap(values) < len(fields) {
		values = make([]string, len(fields))
	}
	values = values[:len(fields)]
	for i, f := range fields {
		k := http.CanonicalHeaderKey(s.Of(f.Name))
		values[i] = s.Of(f.Value)
		if vv, ok := h[k]; ok {
			h[k] = append(vv, values[i])
		} else {
			h[k] = values[i : i+1 : i+1]
		}
	}
	return h, values
}

// TrailerNames returns the trailer fields the values of a Trailer field
// announce, canonical and without values yet, as net/http fills a
// message's Trailer before its body is read; nil if they name none.
func TrailerNames(values []string) http.Header {
	var tr http.Header
	for _, v := range values {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				if tr == nil {
					tr = http.Header{}
				}
				tr[http.CanonicalHeaderKey(name)] = nil
			}
		}
	}
	return tr
}
