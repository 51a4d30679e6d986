package h1

import "testing"

func TestIsToken(t *testing.T) {
	for s, want := range map[string]bool{
		"GET": true, "X-Custom_1": true, "!#$%&'*+-.^_`|~": true,
		"": false, "a b": false, "a:b": false, "a\x00": false, "é": false, "a/b": false,
	} {
		if got := IsToken(s); got != want {
			t.Errorf("IsToken(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestHasToken(t *testing.T) {
	for _, tc := range []struct {
		values []string
		token  string
		want   bool
	}{
		{[]string{"close"}, "close", true},
		{[]string{"keep-alive, Close"}, "close", true},
		{[]string{"x", " upgrade "}, "upgrade", true},
		{[]string{"closed"}, "close", false},
		{nil, "close", false},
	} {
		if got := HasToken(tc.values, tc.token); got != tc.want {
			t.Errorf("HasToken(%q, %q) = %v, want %v", tc.values, tc.token, got, tc.want)
		}
	}
}
