// Command abortlat measures how fast switchboard propagates a caller's
// hang-up (rule R1) to the upstream.
//
// The caller and a raw TCP upstream run in this process, on one monotonic
// clock; the proxy is the real switchboard binary, built and started by this
// program with a temporary config and stopped by PID at the end. For each
// phase (await_headers, stream_response, send_request) and each kind of
// hang-up (FIN: CloseWrite+Close; RST: SetLinger(0)+Close) it brings an
// exchange to that phase, closes the caller's connection, and times the
// interval from the close call until the upstream's Read on its connection
// returns (EOF or ECONNRESET).
//
// Run it from the module:
//
//	go run ./bench/abortlat
//
// It prints a Markdown table and writes it to bench/results/abort-propagation.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/switchboard-proxy/switchboard/bench/internal/benchkit"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "abortlat:", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("n", 500, "hang-ups per phase and kind")
	warmup := flag.Int("warmup", 20, "unrecorded hang-ups per phase before measuring")
	bin := flag.String("proxy", "", "switchboard binary (default: build cmd/switchboard)")
	out := flag.String("out", "", "result file (default: bench/results/abort-propagation.md in the module; \"-\" for none)")
	budget := flag.Duration("budget", 100*time.Second, "stop measuring after this long and report what was measured")
	flag.Parse()

	ctx, stop := benchkit.RunContext(0) // -budget bounds the measuring only, below
	defer stop()

	root, err := benchkit.ModuleRoot("abortlat")
	if err != nil {
		return err
	}
	if *out == "" {
		*out = filepath.Join(root, "bench", "results", "abort-propagation.md")
	}
	dir, err := os.MkdirTemp("", "abortlat-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if *bin == "" {
		if *bin, err = benchkit.GoBuild(ctx, root, dir, "switchboard", "./cmd/switchboard"); err != nil {
			return err
		}
	}

	u, err := newUpstream()
	if err != nil {
		return err
	}
	defer u.close()
	p, err := startProxy(*bin, dir, u.addr())
	if err != nil {
		return err
	}
	defer p.Stop()
	fmt.Fprintf(os.Stderr, "abortlat: switchboard pid %d on %s, upstream on %s\n", p.PID(), p.addr, u.addr())

	deadline := time.Now().Add(*budget)
	began := time.Now()
	var results []result
	seq := 0
	phases := []phase{phaseAwaitHeaders, phaseStreamResponse, phaseSendRequest}
	for _, ph := range phases {
		for i := 0; i < *warmup; i++ {
			seq++
			newTrial(fmt.Sprintf("warmup-%d", seq), ph, kinds[i%2]).run(p.addr, u)
		}
		// Alternate FIN and RST so drift over time hits both alike.
		for i := 0; i < 2**n; i++ {
			if ctx.Err() != nil || time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "abortlat: stopped early (%v); reporting what was measured\n", context.Cause(ctx))
				goto done
			}
			seq++
			k := kinds[i%2]
			results = append(results, newTrial(fmt.Sprintf("%s-%s-%d", ph, k, seq), ph, k).run(p.addr, u))
		}
	}
done:
	elapsed := time.Since(began)
	p.Stop() // flushes and closes the access log
	logged, err := readAccessLog(p.accessLog)
	if err != nil {
		fmt.Fprintln(os.Stderr, "abortlat: access log:", err)
	}

	rep := report{
		date:    time.Now(),
		nproc:   strconv.Itoa(benchkit.NumCPU()),
		commit:  benchkit.GitCommit(root),
		elapsed: elapsed,
		results: results,
		logged:  logged,
		phases:  phases,
	}
	md := rep.markdown()
	fmt.Print(md)
	if *out == "-" {
		return nil
	}
	if err := benchkit.WriteResult(*out, md); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "abortlat: wrote", *out)
	return nil
}

var kinds = [2]kind{kindFIN, kindRST}
