package config

import "testing"

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		name, url, scheme, host string
	}{
		{"http with port", "http://127.0.0.1:3000", "http", "127.0.0.1:3000"},
		{"http default port", "http://app.internal", "http", "app.internal:80"},
		{"https default port", "https://app.internal", "https", "app.internal:443"},
		{"trailing slash", "http://127.0.0.1:3000/", "http", "127.0.0.1:3000"},
		{"ipv6", "http://[::1]:3000", "http", "[::1]:3000"},
		{"upper case", "HTTP://App.Internal:8080", "http", "app.internal:8080"},
		{"underscore label", "http://my_svc:80", "http", "my_svc:80"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scheme, host, err := parseEndpoint(tt.url)
			if err != nil || scheme != tt.scheme || host != tt.host {
				t.Errorf("parseEndpoint(%q) = %q, %q, %v; want %q, %q", tt.url, scheme, host, err, tt.scheme, tt.host)
			}
		})
	}
}

func TestParseEndpointErrors(t *testing.T) {
	tests := []struct {
		name, url, want string
	}{
		{"empty", "", `url is required`},
		{"missing scheme", "127.0.0.1:3000", `invalid url "127.0.0.1:3000": missing scheme (want http:// or https://)`},
		{"bare host", "localhost", `invalid url "localhost": missing scheme (want http:// or https://)`},
		{"ftp", "ftp://files:21", `invalid url "ftp://files:21": unsupported scheme "ftp" (want http or https)`},
		{"empty host", "http://", `invalid url "http://": missing host`},
		{"port only", "http://:80", `invalid url "http://:80": missing host`},
		{"port zero", "http://a:0", `invalid url "http://a:0": port 0 out of range 1..65535`},
		{"port too big", "http://a:65536", `invalid url "http://a:65536": port 65536 out of range 1..65535`},
		{"port not numeric", "http://a:http", `invalid url "http://a:http": invalid port ":http" after host`},
		{"path", "http://a/api", `invalid url "http://a/api": must not have a path`},
		{"query", "http://a?x=1", `invalid url "http://a?x=1": must not have a query`},
		{"empty query", "http://a?", `invalid url "http://a?": must not have a query`},
		{"fragment", "http://a#top", `invalid url "http://a#top": must not have a fragment`},
		{"empty fragment", "http://a#", `invalid url "http://a#": must not have a fragment`},
		{"userinfo", "http://u:p@a", `invalid url "http://u:p@a": must not contain userinfo`},
		{"space in host", "http://my host", `invalid url "http://my host": contains a space or control character`},
		{"bad host chars", "http://a$b:80", `invalid url "http://a$b:80": invalid host "a$b"`},
		{"leading hyphen", "http://-a:80", `invalid url "http://-a:80": invalid host "-a"`},
		{"opaque", "http:a", `invalid url "http:a": missing scheme (want http:// or https://)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parseEndpoint(tt.url)
			if err == nil || err.Error() != tt.want {
				t.Errorf("parseEndpoint(%q) error = %v; want %s", tt.url, err, tt.want)
			}
		})
	}
}

func TestParseHostPattern(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"any", "", ""},
		{"exact", "example.com", "example.com"},
		{"lower-cased", "API.Example.COM", "api.example.com"},
		{"wildcard", "*.example.com", "*.example.com"},
		{"single label", "localhost", "localhost"},
		{"ipv4", "10.0.0.1", "10.0.0.1"},
		{"ipv6 bracketed", "[::1]", "::1"},
		{"ipv6 bare", "2001:DB8::1", "2001:db8::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseHostPattern(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("parseHostPattern(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseHostPatternErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"space", "exa mple.com", `invalid host "exa mple.com": contains a space or control character`},
		{"scheme", "http://example.com", `invalid host "http://example.com": must not include a scheme`},
		{"path", "example.com/api", `invalid host "example.com/api": must not include a path`},
		{"inner wildcard", "api.*.example.com", `invalid host "api.*.example.com": "*" is only allowed as a leading "*." label`},
		{"partial wildcard", "*example.com", `invalid host "*example.com": "*" is only allowed as a leading "*." label`},
		{"bare star", "*", `invalid host "*": "*" is only allowed as a leading "*." label`},
		{"double wildcard", "*.*.example.com", `invalid host "*.*.example.com": "*" is only allowed as a leading "*." label`},
		{"port", "example.com:8080", `invalid host "example.com:8080": must not include a port (the request port is ignored)`},
		{"empty label", "example..com", `invalid host "example..com": not a valid host name`},
		{"wildcard only", "*.", `invalid host "*.": not a valid host name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseHostPattern(tt.in)
			if err == nil || err.Error() != tt.want {
				t.Errorf("parseHostPattern(%q) error = %v; want %s", tt.in, err, tt.want)
			}
		})
	}
}

func TestParseAddress(t *testing.T) {
	tests := []struct {
		name, in string
		want     hostPort
	}{
		{"ipv4", "127.0.0.1:8080", hostPort{"127.0.0.1", 8080}},
		{"ipv6", "[::1]:8443", hostPort{"::1", 8443}},
		{"all interfaces", ":8080", hostPort{"", 8080}},
		{"localhost", "localhost:9901", hostPort{"localhost", 9901}},
		{"ephemeral", "127.0.0.1:0", hostPort{"127.0.0.1", 0}},
		{"mapped ipv4", "[::ffff:127.0.0.1]:80", hostPort{"127.0.0.1", 80}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAddress(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("parseAddress(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseAddressErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "address is required"},
		{"no port", "127.0.0.1", `invalid address "127.0.0.1": missing port in address`},
		{"named port", "127.0.0.1:http", `invalid address "127.0.0.1:http": port must be a number from 0 to 65535`},
		{"port too big", ":65536", `invalid address ":65536": port must be a number from 0 to 65535`},
		{"negative port", ":-1", `invalid address ":-1": port must be a number from 0 to 65535`},
		{"host name", "example.com:80", `invalid address "example.com:80": host must be an IP address, "localhost" or empty`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseAddress(tt.in)
			if err == nil || err.Error() != tt.want {
				t.Errorf("parseAddress(%q) error = %v; want %s", tt.in, err, tt.want)
			}
		})
	}
}

func TestOverlaps(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want bool
	}{
		{"same address", "127.0.0.1:8080", "127.0.0.1:8080", true},
		{"wildcard and ip", ":8080", "127.0.0.1:8080", true},
		{"unspecified and ip", "0.0.0.0:8080", "10.0.0.1:8080", true},
		{"ipv6 unspecified and ip", "[::]:8080", "127.0.0.1:8080", true},
		{"different ports", "127.0.0.1:8080", "127.0.0.1:8081", false},
		{"different hosts", "127.0.0.1:8080", "127.0.0.2:8080", false},
		{"ephemeral never clashes", "127.0.0.1:0", "127.0.0.1:0", false},
		{"mapped equals plain", "[::ffff:127.0.0.1]:80", "127.0.0.1:80", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := parseAddress(tt.a)
			b, _ := parseAddress(tt.b)
			if got := a.overlaps(b); got != tt.want {
				t.Errorf("overlaps(%s, %s) = %v; want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

// TestCheckCallbackURL: a callback URL is an endpoint URL that may have a
// path and a query.
func TestCheckCallbackURL(t *testing.T) {
	tests := []struct {
		name, url, want string
	}{
		{"path and query", "https://hooks.example.com/switchboard/done?team=a", ""},
		{"bare", "http://127.0.0.1:9000", ""},
		{"ftp", "ftp://hooks/done", `invalid url "ftp://hooks/done": unsupported scheme "ftp" (want http or https)`},
		{"userinfo", "http://u:p@hooks/done", `invalid url "http://u:p@hooks/done": must not contain userinfo`},
		{"fragment", "http://hooks/done#x", `invalid url "http://hooks/done#x": must not have a fragment`},
		{"no host", "http:///done", `invalid url "http:///done": missing host`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if err := checkCallbackURL(tt.url); err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("checkCallbackURL(%q) = %q; want %q", tt.url, got, tt.want)
			}
		})
	}
}
