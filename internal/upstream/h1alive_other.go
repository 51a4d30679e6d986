//go:build !linux

package upstream

// alive reports whether the idle connection pc can carry a request. Only
// Linux looks at the socket (see h1alive_linux.go); elsewhere a connection
// the upstream closed fails on use, and is replayed when that is safe.
func (pc *h1Conn) alive() bool { return true }
