package proxy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// BenchmarkKeepAliveGET is a plain keep-alive GET through switchboard to a
// loopback upstream: the hot path issue 4 measures. Allocations include
// net/http's on both sides; run with -memprofile to see switchboard's own.
func BenchmarkKeepAliveGET(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "hello, world\n")
	}))
	defer up.Close()
	h := start(b, "access_log:\n  path: \"off\"\n", routeOpts{upstream: up.URL})
	for _, target := range []struct{ name, url string }{{"direct", up.URL + "/bench"}, {"switchboard", h.url("/bench")}} {
		b.Run(target.name, func(b *testing.B) { benchGET(b, target.url) })
	}
}

func benchGET(b *testing.B, url string) {
	tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	b.ReportAllocs()
	for b.Loop() {
		res, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
}

// BenchmarkProxyGET isolates switchboard's own cost: the caller and the
// upstream are raw loopback sockets that allocate nothing, so allocs/op is
// what switchboard allocates per keep-alive GET. Issue 4's target is zero.
// Compare runs with benchstat (see bench/NOTES.md).
func BenchmarkProxyGET(b *testing.B) {
	up := rawUpstream(b, "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nhello, world\n")
	h := start(b, "access_log:\n  path: \"off\"\n", routeOpts{upstream: "http://" + up})
	conn, err := net.Dial("tcp", h.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	req := []byte("GET /bench HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	buf := make([]byte, 4096)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := conn.Write(req); err != nil {
			b.Fatal(err)
		}
		if err := readRawResponse(conn, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// rawUpstream serves one fixed response to every request head it reads, on
// every connection, until the benchmark ends. It allocates nothing per
// request. Requests must have no body.
func rawUpstream(b *testing.B, response string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	b.Cleanup(func() { ln.Close(); wg.Wait() })
	resp := []byte(response)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.Cleanup(func() { c.Close() })
			wg.Go(func() {
				defer c.Close()
				buf := make([]byte, 8192)
				n := 0
				for {
					i := bytes.Index(buf[:n], []byte("\r\n\r\n"))
					if i < 0 {
						if n == len(buf) {
							return
						}
						m, err := c.Read(buf[n:])
						if err != nil {
							return
						}
						n += m
						continue
					}
					n = copy(buf, buf[i+4:n])
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			})
		}
	})
	return ln.Addr().String()
}

// readRawResponse reads one response with a Content-Length body from c.
func readRawResponse(c net.Conn, buf []byte) error {
	n := 0
	for {
		m, err := c.Read(buf[n:])
		if err != nil {
			return err
		}
		n += m
		i := bytes.Index(buf[:n], []byte("\r\n\r\n"))
		if i < 0 {
			if n == len(buf) {
				return errors.New("response head too long")
			}
			continue
		}
		if !bytes.HasPrefix(buf, []byte("HTTP/1.1 200 ")) {
			return fmt.Errorf("response %q", buf[:i])
		}
		k := bytes.Index(buf[:i], []byte("\r\nContent-Length: "))
		if k < 0 {
			return fmt.Errorf("no Content-Length in %q", buf[:i])
		}
		length := 0
		for _, d := range buf[k+len("\r\nContent-Length: ") : i] {
			if d < '0' || d > '9' {
				break
			}
			length = length*10 + int(d-'0')
		}
		for n < i+4+length {
			m, err := c.Read(buf[n:])
			if err != nil {
				return err
			}
			n += m
		}
		if n != i+4+length {
			return errors.New("more bytes than one response")
		}
		return nil
	}
}
