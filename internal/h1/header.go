package h1

import (
	"net/http"
	"strings"
)

// Strings turns the byte slices of a parsed head into strings with one
// copy of the head: each string is a piece of that copy. The zero value is
// not usable; make one with NewStrings.
type Strings struct {
	buf []byte
	s   string
}

// NewStrings copies head, the bytes a Request's or Response's slices
// alias.
func NewStrings(head []byte) Strings { return Strings{buf: head, s: string(head)} }

// Of returns b, a slice of the head, as a string, without a copy. A slice
// from elsewhere is copied.
func (s Strings) Of(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	i := cap(s.buf) - cap(b) // b is buf[i:j]: a slice keeps its array's end
	if i < 0 || i+len(b) > len(s.s) || &s.buf[i] != &b[0] {
		return string(b)
	}
	return s.s[i : i+len(b)]
}

// Header returns the fields as an http.Header with canonical keys, as
// net/http would read them. The values share one backing array, and a
// key is copied only when it is not already canonical.
func (s Strings) Header(fields []Field) http.Header {
	h, _ := s.HeaderInto(make(http.Header, len(fields)), nil, fields)
	return h
}

// HeaderInto is Header filling h, which must be empty, and taking the
// values' backing array from values when it is long enough. It returns h
// and the backing array, for reuse once nothing refers to h any more.
func (s Strings) HeaderInto(h http.Header, values []string, fields []Field) (http.Header, []string) {
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
