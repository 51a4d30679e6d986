package h1

import (
	"net/http"
	"reflect"
	"testing"
)

func TestStringsHeader(t *testing.T) {
	head := []byte("GET /p HTTP/1.1\r\nHost: a\r\nx-one: 1\r\nAccept: b\r\nX-One: 2\r\n\r\n")
	var r Request
	if _, err := ParseRequest(head, &r, 0); err != nil {
		t.Fatal(err)
	}
	s := NewStrings(head)
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
