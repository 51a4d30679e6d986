package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-proxy/switchboard/bench/internal/benchkit"
)

// logRecord is the part of switchboard's access-log line this program reads.
type logRecord struct {
	Path    string   `json:"path"`
	Status  int      `json:"status"`
	Side    string   `json:"side"`
	Phase   string   `json:"phase"`
	Kind    string   `json:"kind"`
	Action  string   `json:"action"`
	AbortMS *float64 `json:"abort_ms"`
}

// readAccessLog returns the proxy's records by trial id.
func readAccessLog(path string) (map[string]logRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs := make(map[string]logRecord)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r logRecord
		if json.Unmarshal(sc.Bytes(), &r) == nil && strings.HasPrefix(r.Path, "/abortlat/") {
			recs[strings.TrimPrefix(r.Path, "/abortlat/")] = r
		}
	}
	return recs, sc.Err()
}

type report struct {
	date    time.Time
	nproc   string
	commit  string
	elapsed time.Duration
	results []result
	logged  map[string]logRecord
	phases  []phase
}

func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Caller hang-up propagation (R1)\n\n")
	fmt.Fprintf(&b, "- Date: %s\n", r.date.Format(time.RFC3339))
	fmt.Fprintf(&b, "- Go: %s\n", benchkit.Toolchain())
	fmt.Fprintf(&b, "- nproc: %s\n", r.nproc)
	fmt.Fprintf(&b, "- switchboard: %s\n", r.commit)
	fmt.Fprintf(&b, "- Command: `go run ./bench/abortlat` (measuring took %.1fs)\n\n", r.elapsed.Seconds())
	b.WriteString("Time from the caller's close call to the moment the upstream's `Read` on its\n" +
		"connection returns, caller and raw TCP upstream in one process (monotonic clock),\n" +
		"the switchboard binary in between, all on loopback. `fin` = CloseWrite+Close,\n" +
		"`reset` = SetLinger(0)+Close. Target: median < 1 ms, p99 < 5 ms.\n\n")

	b.WriteString("| phase | kind | n | median ms | p90 ms | p99 ms | max ms | target | upstream saw | failed |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---|---|---:|\n")
	for _, ph := range r.phases {
		for _, k := range kinds {
			var lat []time.Duration
			saw := map[string]int{}
			failed := 0
			for _, res := range r.results {
				if res.phase != ph || res.kind != k {
					continue
				}
				if res.err != nil {
					failed++
					continue
				}
				lat = append(lat, res.latency)
				saw[res.how]++
			}
			if len(lat) == 0 && failed == 0 {
				continue
			}
			slices.Sort(lat)
			med, p90, p99, mx := pct(lat, 0.5), pct(lat, 0.9), pct(lat, 0.99), pct(lat, 1)
			target := "met"
			if len(lat) == 0 || med >= time.Millisecond || p99 >= 5*time.Millisecond || failed > 0 {
				target = "**missed**"
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %d |\n",
				ph, k, len(lat), msStr(med), msStr(p90), msStr(p99), msStr(mx), target, benchkit.Counts(saw, "–"), failed)
		}
	}

	r.writeFailures(&b)
	r.writeLogged(&b)
	return b.String()
}

// writeFailures lists the distinct reasons trials failed, if any.
func (r *report) writeFailures(b *strings.Builder) {
	reasons := map[string]int{}
	for _, res := range r.results {
		if res.err != nil {
			reasons[fmt.Sprintf("%s/%s: %v", res.phase, res.kind, res.err)]++
		}
	}
	if len(reasons) == 0 {
		return
	}
	b.WriteString("\nFailed trials:\n\n")
	for _, k := range slices.Sorted(maps.Keys(reasons)) {
		fmt.Fprintf(b, "- %d × %s\n", reasons[k], k)
	}
}

// writeLogged summarises what switchboard's access log said about the
// measured trials: status, side/phase/kind/action, and its own abort_ms.
func (r *report) writeLogged(b *strings.Builder) {
	if r.logged == nil {
		return
	}
	b.WriteString("\nswitchboard's own record of the same trials (access log):\n\n")
	b.WriteString("| phase | kind | logged as (status side/phase/kind/action) | proxy abort_ms median | p99 | missing |\n")
	b.WriteString("|---|---|---|---:|---:|---:|\n")
	for _, ph := range r.phases {
		for _, k := range kinds {
			as := map[string]int{}
			var abort []time.Duration
			missing, n := 0, 0
			for _, res := range r.results {
				if res.phase != ph || res.kind != k {
					continue
				}
				n++
				rec, ok := r.logged[res.id]
				if !ok {
					missing++
					continue
				}
				as[fmt.Sprintf("%d %s/%s/%s/%s", rec.Status, rec.Side, rec.Phase, rec.Kind, rec.Action)]++
				if rec.AbortMS != nil {
					abort = append(abort, time.Duration(*rec.AbortMS*float64(time.Millisecond)))
				}
			}
			if n == 0 {
				continue
			}
			slices.Sort(abort)
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %d |\n", ph, k, benchkit.Counts(as, "–"), msStr(pct(abort, 0.5)), msStr(pct(abort, 0.99)), missing)
		}
	}
}

// pct is the nearest-rank percentile of sorted d.
func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return -1
	}
	i := int(math.Ceil(p*float64(len(d)))) - 1
	return d[max(i, 0)]
}

func msStr(d time.Duration) string {
	if d < 0 {
		return "–"
	}
	return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond))
}
