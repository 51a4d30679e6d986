package config

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// validator checks a defaulted Config and resolves its derived fields. It
// stops at the first problem, checking sections in the order a config file
// usually lists them.
type validator struct {
	c   *Config
	dir string // base for relative file paths
	// flags renames field-path prefixes to the command-line flags they came
	// from, so FromFlags errors say "--listen" rather than "listeners[0]".
	flags map[string]string
}

func (v *validator) validate() *Error {
	checks := []func() *Error{v.listeners, v.admin, v.clashes, v.accessLog, v.trustedProxies, v.pools, v.routes, v.queue}
	for _, check := range checks {
		if e := check(); e != nil {
			return e
		}
	}
	return nil
}

// errf returns an *Error for field, positioned at the field or its nearest
// ancestor written in the file.
func (v *validator) errf(field, format string, args ...any) *Error {
	at := v.c.pos.lookup(field)
	return &Error{
		File: v.c.File, Line: at.Line, Column: at.Column,
		Field: v.name(field), Msg: fmt.Sprintf(format, args...),
	}
}

// intIn checks an int field against lo..hi. Zero means "use the default"
// and was replaced before validation, so a negative value is the usual
// mistake and gets its own message.
func (v *validator) intIn(field string, n, lo, hi int) *Error {
	switch {
	case n < 0:
		return v.errf(field, "must not be negative, got %d", n)
	case n < lo:
		return v.errf(field, "must be at least %d, got %d", lo, n)
	case n > hi:
		return v.errf(field, "must be at most %d, got %d", hi, n)
	}
	return nil
}

// ordered checks that the duration at field lo is no larger than the one at
// field hi, reporting at whichever of the two the user wrote.
func (v *validator) ordered(lo, hi string, dlo, dhi Duration) *Error {
	if dlo <= dhi {
		return nil
	}
	return v.errf(v.written(lo, hi), "%s %s is larger than %s %s", lastKey(lo), v.show(lo, dlo), lastKey(hi), v.show(hi, dhi))
}

// show formats the value d of field for a message, marking it as the
// default when field is not written, since the user may not know it.
func (v *validator) show(field string, d Duration) string {
	if v.c.pos.has(field) {
		return d.String()
	}
	return d.String() + " (default)"
}

// written returns a unless only b is written in the file. For a rule
// between two fields, either of which may hold a default, it picks the
// field to report so the error points at a line the user can change.
func (v *validator) written(a, b string) string {
	if !v.c.pos.has(a) && v.c.pos.has(b) {
		return b
	}
	return a
}

// lastKey returns the last ".key" of a dotted field path.
func lastKey(field string) string {
	return field[strings.LastIndex(field, ".")+1:]
}

// name returns field as the user wrote it: a flag name for FromFlags.
func (v *validator) name(field string) string {
	for prefix, flag := range v.flags {
		if field == prefix || strings.HasPrefix(field, prefix+".") {
			return flag
		}
	}
	return field
}

func (v *validator) listeners() *Error {
	if len(v.c.Listeners) == 0 {
		return v.errf("listeners", "at least one listener is required")
	}
	for i := range v.c.Listeners {
		if e := v.listener(fmt.Sprintf("listeners[%d]", i), &v.c.Listeners[i]); e != nil {
			return e
		}
	}
	return nil
}

func (v *validator) listener(field string, l *Listener) *Error {
	if _, err := parseAddress(l.Address); err != nil {
		return v.errf(field+".address", "%v", err)
	}
	if l.MaxHeaderBytes < minHeaderBytes || l.MaxHeaderBytes > maxHeaderBytes {
		return v.errf(field+".max_header_bytes", "must be between 1KiB and 16MiB, got %d bytes", l.MaxHeaderBytes)
	}
	if l.TLS == nil {
		return nil
	}
	if *l.H2C {
		return v.errf(field+".h2c", "h2c cannot be combined with tls; TLS listeners offer HTTP/2 via ALPN")
	}
	return v.listenerTLS(field+".tls", l.TLS)
}

func (v *validator) listenerTLS(field string, t *TLS) *Error {
	switch {
	case t.CertFile == "":
		return v.errf(field+".cert_file", "cert_file is required")
	case t.KeyFile == "":
		return v.errf(field+".key_file", "key_file is required")
	case t.CAFile != "":
		return v.errf(field+".ca_file", "ca_file is only valid on a pool")
	case t.ServerName != "":
		return v.errf(field+".server_name", "server_name is only valid on a pool")
	case t.InsecureSkipVerify:
		return v.errf(field+".insecure_skip_verify", "insecure_skip_verify is only valid on a pool")
	}
	return v.files(field, t)
}

// files resolves and checks every file a TLS block names. Checking at load
// time turns a typo into a config error instead of a failed handshake later.
func (v *validator) files(field string, t *TLS) *Error {
	for _, f := range []struct {
		key  string
		path *string
	}{{"cert_file", &t.CertFile}, {"key_file", &t.KeyFile}, {"ca_file", &t.CAFile}} {
		if *f.path == "" {
			continue
		}
		*f.path = v.resolve(*f.path)
		fi, err := os.Stat(*f.path)
		if err != nil {
			return v.errf(field+"."+f.key, "%v", statMsg(*f.path, err))
		}
		if fi.IsDir() {
			return v.errf(field+"."+f.key, "%s is a directory", *f.path)
		}
	}
	return nil
}

// resolve makes a relative path relative to the config file's directory,
// so the config means the same thing whatever the working directory.
func (v *validator) resolve(path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(v.dir, path)
}

// statMsg describes err from os.Stat(path) without the "stat" prefix.
func statMsg(path string, err error) string {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Sprintf("%s does not exist", path)
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Sprintf("%s: %v", path, pe.Err)
	}
	return err.Error()
}

func (v *validator) admin() *Error {
	a := &v.c.Admin
	if a.Address == AdminOff {
		return nil
	}
	addr, err := parseAddress(a.Address)
	if err != nil {
		return v.errf("admin.address", "%v", err)
	}
	if !addr.isLoopback() && a.Token == "" {
		// The admin API can drain and reconfigure the proxy.
		return v.errf("admin.token", "token is required when the admin address %s is not loopback", a.Address)
	}
	return nil
}

func (v *validator) accessLog() *Error {
	p := &v.c.AccessLog.Path
	switch *p {
	case "stdout", "stderr", "off":
		return nil
	}
	*p = v.resolve(*p)
	dir := filepath.Dir(*p)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return v.errf("access_log.path", "directory %s does not exist", dir)
	}
	return nil
}

func (v *validator) trustedProxies() *Error {
	v.c.TrustedNets = nil
	for i, s := range v.c.TrustedProxies {
		p, ok := parsePrefix(s)
		if !ok {
			return v.errf(fmt.Sprintf("trusted_proxies[%d]", i), "invalid CIDR or IP address %q", s)
		}
		v.c.TrustedNets = append(v.c.TrustedNets, p)
	}
	return nil
}

// parsePrefix parses a CIDR, or a bare IP as a single-address prefix.
func parsePrefix(s string) (netip.Prefix, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, a.BitLen()), true
}

// clashes reports two listeners, or a listener and the admin API, that would
// bind the same port. Port 0 (ephemeral) never clashes.
func (v *validator) clashes() *Error {
	var bound []boundAddr
	for i, l := range v.c.Listeners {
		bound = append(bound, boundAddr{field: fmt.Sprintf("listeners[%d].address", i), raw: l.Address})
	}
	if v.c.Admin.Address != AdminOff {
		bound = append(bound, boundAddr{field: "admin.address", raw: v.c.Admin.Address})
	}
	for i := range bound {
		bound[i].addr, _ = parseAddress(bound[i].raw) // validated already
		for _, prev := range bound[:i] {
			if bound[i].addr.overlaps(prev.addr) {
				return v.clash(bound[i], prev)
			}
		}
	}
	return nil
}

// clash reports the later of two clashing addresses, unless only the earlier
// is written in the file (a defaulted admin address): then the error points
// at the line the user can change.
func (v *validator) clash(later, earlier boundAddr) *Error {
	if !v.c.pos.has(later.field) && v.c.pos.has(earlier.field) {
		later, earlier = earlier, later
	}
	return v.errf(later.field, "address %s also used by %s", later.raw, v.name(earlier.field))
}

type boundAddr struct {
	field, raw string
	addr       hostPort
}

// queue checks the queue section. It is checked whether or not a route
// uses the queue, so a mistake shows before the first async route does.
func (v *validator) queue() *Error {
	q := &v.c.Queue
	q.Dir = v.resolve(q.Dir)
	if q.URL != "" {
		for _, u := range strings.Split(q.URL, ",") {
			pu, err := url.Parse(strings.TrimSpace(u))
			if err != nil || pu.Host == "" || !slices.Contains([]string{"nats", "tls", "ws", "wss"}, pu.Scheme) {
				return v.errf("queue.url", "invalid NATS URL %q: want nats://host:port (or tls://, ws://, wss://), comma-separated", strings.TrimSpace(u))
			}
		}
	}
	if q.MaxBody <= 0 || q.MaxBody > maxQueueBody {
		return v.errf("queue.max_body", "must be between 1 byte and 32MiB, got %d bytes", q.MaxBody)
	}
	if e := v.intIn("queue.concurrency", q.Concurrency, 1, maxQueueConcurrency); e != nil {
		return e
	}
	if e := v.intIn("queue.replicas", q.Replicas, 1, maxQueueReplicas); e != nil {
		return e
	}
	if q.Replicas > 1 && q.URL == "" {
		return v.errf("queue.replicas", "%d replicas need a NATS cluster in queue.url; the embedded server keeps 1", q.Replicas)
	}
	if q.AckWait < Duration(time.Second) {
		return v.errf("queue.ack_wait", "must be at least 1s, got %v", q.AckWait)
	}
	if q.Retention < Duration(time.Second) {
		return v.errf("queue.retention", "must be at least 1s, got %v", q.Retention)
	}
	if q.DeadRetention < Duration(time.Second) {
		return v.errf("queue.dead_retention", "must be at least 1s, got %v", q.DeadRetention)
	}
	return nil
}
