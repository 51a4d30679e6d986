package h1

import (
	"bytes"
	"net/http"
	"reflect"
	"testing"
	"unsafe"
)

func TestStringsHeader(t *testing.T) {
	head := []byte("GET /p HTTP/1.1\r\nHost: a\r\nx-one: 1\r\nAccept: b\r\nX-One: 2\r\n\r\n")
	var r Request
	if _, err := ParseRequest(head, &r, 0); err != nil {
		t.Fatal(err)
	}
	s := NewStrings(head, nil)
	if got := s.Of(r.Target); got != "/p" {
		t.Errorf("Of(target) = %q", got)
	}
	if got := s.Of([]byte("elsewhere")); got != "elsewhere" {
		t.Errorf("Of(a slice not of head) = %q", got)
	}
	want := http.Header{"Host": {"a"}, "X-One": {"1", "2"}, "Accept": {"b"}}
	if got := s.Header(r.Fields); !reflect.DeepEqual(got, want) {
		t.Errorf("Header = %v, want %v", got, want)
	}
}

func TestTrailerNames(t *testing.T) {
	if got := TrailerNames(nil); got != nil {
		t.Errorf("TrailerNames(nil) = %v", got)
	}
	want := http.Header{"X-Sum": nil, "X-Other": nil}
	if got := TrailerNames([]string{"x-sum, ", "X-Other"}); !reflect.DeepEqual(got, want) {
		t.Errorf("TrailerNames = %v, want %v", got, want)
	}
}

// headStrings parses head as a request and returns its target, its Host
// and its header as Strings with rec make them.
func headStrings(t testing.TB, head []byte, rec *Recent) (target, host string, h http.Header, ok bool) {
	var r Request
	if _, err := ParseRequest(head, &r, 0); err != nil {
		return "", "", nil, false
	}
	s := NewStrings(head, rec)
	target = s.Of(r.Target)
	h = s.Header(r.Fields)
	host = s.Of(r.Host) // again, after the fields: out of order
	return target, host, h, true
}

func TestStringsRecent(t *testing.T) {
	var rec Recent
	a := []byte("GET /a HTTP/1.1\r\nHost: h\r\nUser-Agent: ua\r\nAccept: */*\r\n\r\n")
	headStrings(t, a, &rec)
	again := bytes.Clone(a)
	target, host, h, _ := headStrings(t, again, &rec)
	if unsafe.StringData(h["User-Agent"][0]) != unsafe.StringData(rec.last[4]) {
		t.Error("the same head's value was copied again")
	}
	if target != "/a" || host != "h" || h.Get("Accept") != "*/*" {
		t.Errorf("target %q host %q header %v", target, host, h)
	}
	var r Request
	ParseRequest(again, &r, 0)
	if n := testing.AllocsPerRun(100, func() {
		s := NewStrings(again, &rec)
		s.Of(r.Target)
		for _, f := range r.Fields {
			s.Of(f.Name)
			s.Of(f.Value)
		}
	}); n != 0 {
		t.Errorf("%v allocations for a head the same as the last", n)
	}

	// A head that differs from its third piece on: one copy, and every
	// string still its own bytes.
	b := []byte("GET /a HTTP/1.1\r\nHost: other\r\nUser-Agent: ua\r\nAccept: */*\r\n\r\n")
	target, host, h, _ = headStrings(t, b, &rec)
	want := http.Header{"Host": {"other"}, "User-Agent": {"ua"}, "Accept": {"*/*"}}
	if target != "/a" || host != "other" || !reflect.DeepEqual(h, want) {
		t.Errorf("target %q host %q header %v", target, host, h)
	}
	b[len("GET /a HTTP/1.1\r\nHost: ")] = 'X' // the strings are copies
	if h.Get("Host") != "other" || host != "other" {
		t.Error("a string aliases the head's buffer")
	}
}

// FuzzStringsRecent: whatever two heads come one after the other, the
// strings made with a Recent are those made by copying.
func FuzzStringsRecent(f *testing.F) {
	f.Add([]byte("GET /a HTTP/1.1\r\nHost: h\r\nA: 1\r\n\r\n"), []byte("GET /a HTTP/1.1\r\nHost: h\r\nA: 2\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: h\r\n\r\n"), []byte("GET /b HTTP/1.1\r\nHost: h\r\nX: \r\nA: 1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		var rec Recent
		for _, head := range [][]byte{a, b, a} {
			t1, h1, hdr1, ok := headStrings(t, head, &rec)
			t2, h2, hdr2, _ := headStrings(t, head, nil)
			if ok && (t1 != t2 || h1 != h2 || !reflect.DeepEqual(hdr1, hdr2)) {
				t.Fatalf("with Recent %q %q %v, copied %q %q %v", t1, h1, hdr1, t2, h2, hdr2)
			}
		}
	})
}
