package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// hostPort is a parsed listen address. host is "", "localhost" or a
// canonical IP literal.
type hostPort struct {
	host string
	port int
}

// parseAddress parses a listen address: host:port where host is an IP
// literal, "localhost" or empty (all interfaces) and port is 0..65535.
// Names other than localhost are refused because a listener must not depend
// on DNS at start-up.
func parseAddress(s string) (hostPort, error) {
	if s == "" {
		return hostPort{}, errors.New("address is required")
	}
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			err = errors.New(ae.Err)
		}
		return hostPort{}, fmt.Errorf("invalid address %q: %w", s, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 || strings.HasPrefix(portStr, "+") {
		return hostPort{}, fmt.Errorf("invalid address %q: port must be a number from 0 to 65535", s)
	}
	if host == "" || host == "localhost" {
		return hostPort{host: host, port: port}, nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return hostPort{}, fmt.Errorf(`invalid address %q: host must be an IP address, "localhost" or empty`, s)
	}
	return hostPort{host: ip.Unmap().String(), port: port}, nil
}

// isLoopback reports whether a is reachable only from this machine.
func (a hostPort) isLoopback() bool {
	if a.host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(a.host)
	return err == nil && ip.IsLoopback()
}

// isWildcard reports whether a binds every interface.
func (a hostPort) isWildcard() bool {
	if a.host == "" {
		return true
	}
	ip, err := netip.ParseAddr(a.host)
	return err == nil && ip.IsUnspecified()
}

// overlaps reports whether binding both a and b would fail. A wildcard host
// is treated as clashing with every host on its port: that is the portable
// answer, even where the OS would let an IPv4 wildcard and an IPv6 address
// coexist.
func (a hostPort) overlaps(b hostPort) bool {
	if a.port == 0 || b.port == 0 || a.port != b.port {
		return false
	}
	return a.host == b.host || a.isWildcard() || b.isWildcard()
}

// parseEndpoint checks an endpoint URL and returns its scheme and host:port,
// with the port filled in from the scheme when absent.
func parseEndpoint(raw string) (scheme, host string, err error) {
	u, err := parseHTTPURL(raw, false)
	if err != nil {
		return "", "", err
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return u.Scheme, net.JoinHostPort(strings.ToLower(u.Hostname()), port), nil
}

// checkCallbackURL checks a route's queue.callback_url: an endpoint URL
// that may have a path and a query.
func checkCallbackURL(raw string) error {
	_, err := parseHTTPURL(raw, true)
	return err
}

// parseHTTPURL parses an http or https URL to send requests to; withPath
// allows a path and a query.
func parseHTTPURL(raw string, withPath bool) (*url.URL, error) {
	bad := func(why string) (*url.URL, error) {
		return nil, fmt.Errorf("invalid url %q: %s", raw, why)
	}
	switch {
	case raw == "":
		return nil, errors.New("url is required")
	case strings.ContainsFunc(raw, isSpaceOrControl):
		return bad("contains a space or control character")
	case !strings.Contains(raw, "://"):
		return bad("missing scheme (want http:// or https://)")
	case strings.Contains(raw, "#"):
		// Checked on the raw text: url.Parse drops an empty fragment.
		return bad("must not have a fragment")
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return bad(err.Error())
	}
	if why := endpointProblem(u, withPath); why != "" {
		return bad(why)
	}
	return u, nil
}

// endpointProblem says what is wrong with a parsed endpoint URL, or "";
// withPath allows a path and a query.
func endpointProblem(u *url.URL, withPath bool) string {
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("unsupported scheme %q (want http or https)", u.Scheme)
	case u.User != nil:
		return "must not contain userinfo"
	case u.Hostname() == "":
		return "missing host"
	case !isHostName(u.Hostname()):
		return fmt.Sprintf("invalid host %q", u.Hostname())
	case !withPath && u.Path != "" && u.Path != "/":
		return "must not have a path"
	case !withPath && (u.RawQuery != "" || u.ForceQuery):
		return "must not have a query"
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Sprintf("port %s out of range 1..65535", p)
		}
	}
	return ""
}

// isHostName reports whether h is an IP literal or a DNS name.
func isHostName(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	return isDNSName(h)
}

// isDNSName reports whether s is a syntactically valid DNS name: dot-separated
// labels of 1..63 letters, digits, '-' or '_', not starting or ending with '-'.
func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if !isDNSLabel(label) {
			return false
		}
	}
	return true
}

func isDNSLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, c := range []byte(l) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		if !ok {
			return false
		}
	}
	return true
}

// parseHostPattern checks a route's host match and returns it lower-cased,
// with IPv6 brackets removed to match net.SplitHostPort on the request Host.
func parseHostPattern(h string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("invalid host %q: %s", h, why)
	}
	p := strings.ToLower(h)
	switch {
	case p == "":
		return "", nil
	case strings.ContainsFunc(p, isSpaceOrControl):
		return bad("contains a space or control character")
	case strings.Contains(p, "://"):
		return bad("must not include a scheme")
	case strings.ContainsAny(p, "/?#"):
		return bad("must not include a path")
	}
	if ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(p, "["), "]")); err == nil {
		return ip.String(), nil
	}
	name, _ := strings.CutPrefix(p, "*.")
	switch {
	case strings.Contains(name, "*"):
		return bad(`"*" is only allowed as a leading "*." label`)
	case strings.Contains(name, ":"):
		return bad("must not include a port (the request port is ignored)")
	case !isDNSName(name):
		return bad("not a valid host name")
	}
	return p, nil
}

func isSpaceOrControl(r rune) bool {
	return r <= ' ' || r == 0x7f
}
