package proxy

import (
	"net/url"
	"testing"
)

// parseOriginForm must give what url.ParseRequestURI gives whenever it
// takes a target at all.
func FuzzParseOriginForm(f *testing.F) {
	for _, s := range []string{
		"/", "/a/b", "/a?", "/a??", "/a?b=c&d", "/a%20b", "/a b", "//x/y", "/a#b", "/a?b#c",
		"/é", "/a?é", "/a;b=c", "/~user/$&+,:;=@", "/a!b", "/a*b", "/a(b)", "/a'b", "*", "http://h/p", "",
		"/a?\x7f", "/a\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		var got url.URL
		if !parseOriginForm(target, &got) {
			return
		}
		want, err := url.ParseRequestURI(target)
		if err != nil {
			t.Fatalf("%q: we took it, url.ParseRequestURI says %v", target, err)
		}
		if got != *want {
			t.Fatalf("%q: got %#v, url.ParseRequestURI gives %#v", target, got, *want)
		}
	})
}

func TestParseOriginFormTakesTheCommonCase(t *testing.T) {
	for _, target := range []string{"/", "/api/v1/items?id=7&x=y", "/a?"} {
		var u url.URL
		if !parseOriginForm(target, &u) {
			t.Errorf("%q: not taken", target)
		}
	}
	for _, target := range []string{"/a%20b", "*", "http://h/p", "/a#b", ""} {
		var u url.URL
		if parseOriginForm(target, &u) {
			t.Errorf("%q: taken; it must go to url.ParseRequestURI", target)
		}
	}
}
