package proxy

import "testing"

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"/":                 "/",
		"/api/users":        "/api/users",
		"/api/../admin":     "/admin",
		"/public/./a/":      "/public/a/",
		"/a/b/../../../etc": "/etc",
		"//double//slash":   "/double/slash",
		"/..":               "/",
		"/a/..":             "/",
		"/dir/.hidden":      "/dir/.hidden",
		"/v1.2/x":           "/v1.2/x",
		"*":                 "*",
		"/a/b/..%2f":        "/a/b/..%2f", // decoded paths only; %2f is not a separator here
	} {
		if got := cleanPath(in); got != want {
			t.Errorf("cleanPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNormalHost(t *testing.T) {
	for in, want := range map[string]string{
		"Example.COM":      "example.com",
		"example.com:8080": "example.com",
		"example.com.":     "example.com",
		"[::1]:8080":       "::1",
		"[::1]":            "::1",
		"127.0.0.1:80":     "127.0.0.1",
	} {
		if got := normalHost(in); got != want {
			t.Errorf("normalHost(%q) = %q, want %q", in, got, want)
		}
	}
}
