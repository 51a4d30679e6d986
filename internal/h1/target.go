package h1

import "bytes"

// checkTarget checks a request-target whose bytes are already known to be
// VCHAR or obs-text, not '#' (RFC 9112 §3.2). It returns the authority of an
// authority-form or absolute-form target, which the Host field must match,
// or nil.
//
// The forms are tied to methods as RFC 9112 §3.2 ties them: CONNECT takes
// only authority-form (with a port), "*" only OPTIONS. Absolute-form is
// limited to the http and https schemes without userinfo. The path (not the
// query) must have well-formed percent-encoding, which is what net/url
// checks too. Anything else a full URI parser would refuse is left to the
// caller.
func checkTarget(method, t []byte) ([]byte, error) {
	switch {
	case string(method) == "CONNECT":
		if !validAuthority(t, true) {
			return nil, errTarget
		}
		return t, nil
	case len(t) > 0 && t[0] == '/':
		if !validPath(t) {
			return nil, errTarget
		}
		return nil, nil
	case string(t) == "*":
		if string(method) != "OPTIONS" {
			return nil, errTarget
		}
		return nil, nil
	}
	return checkAbsolute(t)
}

// checkAbsolute checks an absolute-form target: "http" or "https", "://",
// an authority without userinfo, then an optional absolute path and query.
func checkAbsolute(t []byte) ([]byte, error) {
	i := bytes.Index(t, []byte("://"))
	if i < 0 || !equalFold(t[:i], "http") && !equalFold(t[:i], "https") {
		return nil, errTarget
	}
	rest := t[i+3:]
	end := len(rest)
	for j, c := range rest {
		if c == '/' || c == '?' {
			end = j
			break
		}
	}
	auth := rest[:end]
	if !validAuthority(auth, false) || !validPath(rest[end:]) {
		return nil, errTarget
	}
	return auth, nil
}

// validPath reports whether every '%' before the query of p starts a
// percent-encoded octet.
func validPath(p []byte) bool {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '?':
			return true
		case '%':
			if i+2 >= len(p) || class[p[i+1]]&cHex == 0 || class[p[i+2]]&cHex == 0 {
				return false
			}
			i += 2
		}
	}
	return true
}

// validAuthority reports whether a is host [":" port] with host a non-empty
// reg-name (no percent-encoding) or a bracketed IPv6 address (no zone), and
// port at most 65535; needPort requires the port (CONNECT).
func validAuthority(a []byte, needPort bool) bool {
	var rest []byte
	if len(a) > 0 && a[0] == '[' {
		end := bytes.IndexByte(a, ']')
		if end < 0 || !validIPv6(a[1:end]) {
			return false
		}
		rest = a[end+1:]
	} else {
		i := 0
		for i < len(a) && class[a[i]]&cRegName != 0 {
			i++
		}
		if i == 0 {
			return false
		}
		rest = a[i:]
	}
	if len(rest) == 0 {
		return !needPort
	}
	if rest[0] != ':' {
		return false
	}
	port := rest[1:]
	if len(port) == 0 {
		return !needPort
	}
	n, ok := parseDecimal(port)
	return ok && len(port) <= 5 && n <= 65535
}

// validIPv6 reports whether s is an IPv6address (RFC 4291 §2.2 text form,
// as netip.ParseAddr takes it, without a zone).
func validIPv6(s []byte) bool {
	groups := 0
	ellipsis := false
	if len(s) >= 2 && s[0] == ':' && s[1] == ':' {
		ellipsis = true
		s = s[2:]
	}
	for len(s) > 0 {
		j := 0
		for j < len(s) && j < 5 && class[s[j]]&cHex != 0 {
			j++
		}
		if j < len(s) && s[j] == '.' {
			if !validIPv4(s) {
				return false
			}
			groups += 2
			break
		}
		if j == 0 || j > 4 {
			return false
		}
		groups++
		s = s[j:]
		if len(s) == 0 {
			break
		}
		if s[0] != ':' || len(s) == 1 {
			return false
		}
		s = s[1:]
		if s[0] == ':' {
			if ellipsis {
				return false
			}
			ellipsis = true
			s = s[1:]
		}
	}
	if ellipsis {
		return groups < 8
	}
	return groups == 8
}

// validIPv4 reports whether s is a dotted-decimal IPv4 address without
// leading zeros, as netip.ParseAddr takes it.
func validIPv4(s []byte) bool {
	for part := 0; part < 4; part++ {
		if part > 0 {
			if len(s) == 0 || s[0] != '.' {
				return false
			}
			s = s[1:]
		}
		j := 0
		for j < len(s) && j < 4 && class[s[j]]&cDigit != 0 {
			j++
		}
		if j == 0 || j > 3 || j > 1 && s[0] == '0' {
			return false
		}
		n, _ := parseDecimal(s[:j])
		if n > 255 {
			return false
		}
		s = s[j:]
	}
	return len(s) == 0
}
