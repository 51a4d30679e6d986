#!/usr/bin/env bash
# throughput.sh: requests/s and proxy CPU per request for a plain keep-alive
# GET, straight to the upstream ("direct") and through switchboard ("proxy").
#
#   bench/throughput.sh            # 3 rounds × 10 s × 50 connections each
#   ROUNDS=5 DURATION=20 CONNS=100 bench/throughput.sh
#
# Pinning (2-core machine): switchboard on CPU 0 with GOMAXPROCS=1; the
# upstream (bench/upstream, GOMAXPROCS=1) and wrk (1 thread) on CPU 1.
# Rounds alternate direct and proxy so drift hits both alike. Proxy CPU is
# the utime+stime delta of its /proc/PID/stat over the round divided by the
# requests wrk completed. Writes bench/results/throughput.md.
# Every process it starts is stopped by PID on exit; every load run is
# bounded by wrk's -d and by timeout(1).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}  # seconds per round
CONNS=${CONNS:-50}
WARMUP=${WARMUP:-3}       # seconds of unrecorded load per target first
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/bench/results/throughput.md}
work=$(mktemp -d /tmp/sb-throughput.XXXXXX)
pids=()

cleanup() {
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "throughput: $*" >&2; }
die() { log "$*"; exit 1; }

if ! command -v wrk >/dev/null; then
	log "wrk not found; installing it with apt-get"
	if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
	$sudo apt-get install -y wrk >/dev/null 2>&1 || { $sudo apt-get update >/dev/null && $sudo apt-get install -y wrk >/dev/null; } ||
		die "could not install wrk"
fi
command -v taskset >/dev/null || die "taskset (util-linux) is required"
[ "$(nproc)" -ge 2 ] || die "needs at least 2 CPUs for the pinning"

# waitfor FILE PATTERN: up to 10 s for PATTERN to appear in FILE.
waitfor() {
	for _ in $(seq 100); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# cputicks PID: utime+stime in clock ticks (fields 14 and 15 of stat; the
# comm field may hold spaces, so count from after its closing parenthesis).
cputicks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

# cpustat N: busy and total ticks of CPU N from /proc/stat.
cpustat() { awk -v c="cpu$1" '$1 == c {t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t}' /proc/stat; }

log "building switchboard and the upstream"
(cd "$root" && go build -o "$work/switchboard" ./cmd/switchboard && go build -o "$work/upstream" ./bench/upstream)

GOMAXPROCS=1 taskset -c "$LOAD_CPU" "$work/upstream" -max-run 10m >"$work/upstream.out" 2>&1 &
upid=$!
pids+=("$upid")
waitfor "$work/upstream.out" "listening on" || die "upstream did not start: $(cat "$work/upstream.out")"
upaddr=$(sed -n 's/^listening on //p' "$work/upstream.out")

cat >"$work/switchboard.yaml" <<YAML
listeners:
  - address: 127.0.0.1:0
admin:
  address: "off"
access_log:
  path: "off"
drain_timeout: 2s
pools:
  - name: bench
    endpoints:
      - url: http://$upaddr
routes:
  - name: all
    match:
      path_prefix: /
    pool: bench
YAML
GOMAXPROCS=1 taskset -c "$PROXY_CPU" "$work/switchboard" serve --config "$work/switchboard.yaml" >/dev/null 2>"$work/proxy.err" &
ppid=$!
pids+=("$ppid")
waitfor "$work/proxy.err" '"switchboard started"' || die "switchboard did not start: $(cat "$work/proxy.err")"
paddr=$(grep -o '"listeners":\["[^"]*"' "$work/proxy.err" | head -1 | sed 's/.*\["//; s/"$//')
log "upstream pid $upid on $upaddr; switchboard pid $ppid on $paddr"

for addr in "$upaddr" "$paddr"; do
	got=$(timeout 5 curl -sS "http://$addr/") || die "GET http://$addr/ failed"
	[ "$got" = "hello, world" ] || die "GET http://$addr/ answered '$got'"
done

# load URL SECONDS: one bounded wrk run; prints its output.
load() {
	timeout $(($2 + 15)) taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${2}s" --latency "$1"
}

for addr in "$upaddr" "$paddr"; do
	load "http://$addr/" "$WARMUP" >/dev/null
done

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
rows="$work/rows.tsv"  # target round reqs_per_s requests p50 p99 errors proxy_us_per_req upstream_us_per_req other_cpu_pct
: >"$rows"
tck=$(getconf CLK_TCK)
for round in $(seq "$ROUNDS"); do
	for target in direct proxy; do
		if [ "$target" = direct ]; then addr=$upaddr; else addr=$paddr; fi
		p0=$(cputicks "$ppid"); u0=$(cputicks "$upid"); read -r b0 t0 < <(cpustat "$PROXY_CPU")
		res=$(load "http://$addr/" "$DURATION")
		p1=$(cputicks "$ppid"); u1=$(cputicks "$upid"); read -r b1 t1 < <(cpustat "$PROXY_CPU")
		# Busy time on the proxy's CPU that was not the proxy: other work.
		other=$(awk -v b=$((b1 - b0)) -v p=$((p1 - p0)) -v t=$((t1 - t0)) 'BEGIN {v = (b - p) * 100 / t; printf "%.0f", v < 0 ? 0 : v}')
		rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$res")
		n=$(awk '/requests in/ {print $1}' <<<"$res")
		p50=$(awk '/^ +50%/ {print $2}' <<<"$res")
		p99=$(awk '/^ +99%/ {print $2}' <<<"$res")
		errs=$(awk '/Socket errors|Non-2xx/ {sub(/^ +/, ""); printf "%s; ", $0}' <<<"$res")
		[ -n "$rps" ] && [ -n "$n" ] || die "could not parse wrk output: $res"
		pus=$(awk -v d=$((p1 - p0)) -v n="$n" -v t="$tck" 'BEGIN {printf "%.2f", d * 1e6 / t / n}')
		uus=$(awk -v d=$((u1 - u0)) -v n="$n" -v t="$tck" 'BEGIN {printf "%.2f", d * 1e6 / t / n}')
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$round" "$rps" "$n" "$p50" "$p99" "${errs:-none}" "$pus" "$uus" "$other" >>"$rows"
		log "round $round $target: $rps req/s, $n requests, p50 $p50, p99 $p99, proxy CPU $pus µs/req, upstream CPU $uus µs/req, other work on CPU $PROXY_CPU $other%, errors: ${errs:-none}"
	done
done

median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
col() { awk -F'\t' -v t="$1" -v c="$2" '$1 == t {print $c}' "$rows"; }
d_rps=$(col direct 3 | median)
p_rps=$(col proxy 3 | median)
p_cpu=$(col proxy 8 | median)
d_ucpu=$(col direct 9 | median)
p_ucpu=$(col proxy 9 | median)
ratio=$(awk -v p="$p_rps" -v d="$d_rps" 'BEGIN {printf "%.2f", p / d}')

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git -C "$root" status --porcelain 2>/dev/null)" ] || commit="$commit with uncommitted changes"
mkdir -p "$(dirname "$out")"
{
	echo "# Throughput: plain keep-alive GET, direct vs through switchboard"
	echo
	echo "- Date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "- Machine: nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), kernel $(uname -r), $(awk '/MemTotal/ {printf "%.1f GiB RAM", $2 / 1048576}' /proc/meminfo)"
	echo "- Load average (1/5/15 min) at the start: $load_start; at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on this machine skews the figures)"
	echo "- $(go version | sed 's/^go version //'), $(wrk --version 2>&1 | head -1 | awk '{print "wrk " $2}'), switchboard $commit"
	echo "- Command: \`bench/throughput.sh\` (ROUNDS=$ROUNDS DURATION=${DURATION}s CONNS=$CONNS, ${WARMUP}s warm-up per target)"
	echo "- Pinning: switchboard on CPU $PROXY_CPU (GOMAXPROCS=1, access log and admin off); upstream"
	echo "  (bench/upstream, Go net/http, GOMAXPROCS=1, 13-byte \"hello, world\\n\") and wrk (-t1 -c$CONNS) share CPU $LOAD_CPU."
	echo "- Other work on CPU $PROXY_CPU: busy ticks of that CPU (/proc/stat) not charged to switchboard, as a share of the round: other processes competing with the proxy, plus interrupt time."
	echo "- CPU µs/req: utime+stime delta from /proc/PID/stat (tick = $((1000000 / tck)) µs) ÷ requests completed."
	echo
	echo "| target | round | req/s | requests | p50 | p99 | errors | proxy CPU µs/req | upstream CPU µs/req | other work on CPU $PROXY_CPU |"
	echo "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|"
	awk -F'\t' '{pc = ($1 == "direct") ? "–" : $8; printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s%% |\n", $1, $2, $3, $4, $5, $6, $7, pc, $9, $10}' "$rows"
	echo
	echo "| summary (medians) | req/s | ratio to direct | proxy CPU µs/req | upstream CPU µs/req |"
	echo "|---|---:|---:|---:|---:|"
	echo "| direct | $d_rps | 1.00 | – | $d_ucpu |"
	echo "| via switchboard | $p_rps | $ratio | $p_cpu | $p_ucpu |"
	echo
	echo "Note: \"direct\" has wrk and the upstream alone on CPU $LOAD_CPU; via switchboard the"
	echo "proxy adds its own CPU $PROXY_CPU, so the ratio is the throughput of one proxy core"
	echo "against one core running both client and origin, not a per-core cost comparison;"
	echo "the proxy CPU µs/req column is that cost."
} >"$out"
cat "$out"
log "wrote $out"
