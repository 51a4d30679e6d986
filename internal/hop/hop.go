// Package hop knows which HTTP header fields describe one connection
// rather than the message (hop-by-hop fields, RFC 9110 §7.6.1) and so must
// not be forwarded: the proxy's request path and the delivery queue both
// drop them by this one list.
package hop

import (
	"net/http"
	"strings"
)

// headers are the hop-by-hop fields, plus the obsolete ones proxies still
// strip.
var headers = [...]string{
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

// Header reports whether the canonical field name k is hop-by-hop.
func Header(k string) bool {
	for _, h := range headers {
		if k == h {
			return true
		}
	}
	return false
}

// NamedIn reports whether the canonical field name k appears among the
// comma-separated tokens of a Connection field's values, which makes it
// hop-by-hop for that message.
func NamedIn(connection []string, k string) bool {
	for _, v := range connection {
		for tok := range strings.SplitSeq(v, ",") {
			if tok = strings.TrimSpace(tok); tok != "" && http.CanonicalHeaderKey(tok) == k {
				return true
			}
		}
	}
	return false
}

// Drop reports whether the field k of a message whose Connection field is
// connection must not be forwarded.
func Drop(k string, connection []string) bool { return Header(k) || NamedIn(connection, k) }
