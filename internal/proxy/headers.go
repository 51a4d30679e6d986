package proxy

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/switchboard-proxy/switchboard/internal/h1"
	"github.com/switchboard-proxy/switchboard/internal/hop"
)

// copyHeader copies src into dst without the hop-by-hop headers and without
// the headers src's Connection header names.
func copyHeader(dst, src http.Header) {
	conn := src["Connection"]
	for k, vv := range src {
		if hop.Drop(k, conn) {
			continue
		}
		// The value slice is shared, not copied: neither side changes
		// values in place, and the capacity is capped so that an append
		// on either side reallocates instead of writing into the other.
		dst[k] = vv[:len(vv):len(vv)]
	}
}

// forwarded sets X-Forwarded-For, -Proto and -Host on out. Incoming values
// are kept (and For appended to) only when the direct peer is a trusted
// proxy; from anyone else they are replaced, so a caller cannot forge its
// address or scheme. The values it sets are slices of vals when it has room
// for three.
func forwarded(out http.Header, in *http.Request, trusted []netip.Prefix, vals []string) {
	peer, ip := peerOf(in)
	trust := peer.IsValid() && isTrusted(peer, trusted)
	if len(vals) < 3 {
		vals = make([]string, 3)
	}
	set := func(i int, k, v string) {
		vals[i] = v
		out[k] = vals[i : i+1 : i+1]
	}
	if prior := in.Header["X-Forwarded-For"]; trust && len(prior) > 0 && ip != "" {
		set(0, "X-Forwarded-For", strings.Join(prior, ", ")+", "+ip)
	} else if ip != "" {
		set(0, "X-Forwarded-For", ip)
	} else {
		delete(out, "X-Forwarded-For")
	}
	if !trust || out.Get("X-Forwarded-Proto") == "" {
		proto := "http"
		if in.TLS != nil {
			proto = "https"
		}
		set(1, "X-Forwarded-Proto", proto)
	}
	if !trust || out.Get("X-Forwarded-Host") == "" {
		set(2, "X-Forwarded-Host", in.Host)
	}
	if !trust {
		delete(out, "Forwarded")
	}
}

// peerOf returns the address of in's direct peer, and it as text; from the
// caller's connection when it has them worked out.
func peerOf(in *http.Request) (netip.Addr, string) {
	if cc := callerConnFrom(in.Context()); cc != nil && cc.remote == in.RemoteAddr {
		return cc.peer, cc.peerIP
	}
	peer := peerAddr(in.RemoteAddr)
	if !peer.IsValid() {
		return peer, ""
	}
	return peer, peer.String()
}

func peerAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func isTrusted(a netip.Addr, nets []netip.Prefix) bool {
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// isUpgrade reports whether r asks to switch protocols (WebSocket and
// others), which HTTP/1.1 carries as Connection: upgrade plus Upgrade.
func isUpgrade(h http.Header) bool {
	return h.Get("Upgrade") != "" && h1.HasToken(h["Connection"], "upgrade")
}
