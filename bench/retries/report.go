package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/switchboard-proxy/switchboard/bench/internal/benchkit"
)

type report struct {
	date    time.Time
	elapsed time.Duration
	stopped error // why the run ended early, if it did
	flags   string
	rate    float64
	n       int
	callers int
	targets []*target
}

func (r *report) markdown() string {
	var b strings.Builder
	pct := r.rate * 100
	fmt.Fprintf(&b, "# Caller-visible errors when an upstream resets %.0f%% of requests\n\n", pct)
	fmt.Fprintf(&b, "- Date: %s\n", r.date.Format(time.RFC3339))
	fmt.Fprintf(&b, "- Go: %s\n", benchkit.Toolchain())
	fmt.Fprintf(&b, "- Machine: %s\n", benchkit.Machine())
	for _, t := range r.targets {
		if t.version != "" && t.name != "direct" && t.name != "haproxy-noguard" {
			fmt.Fprintf(&b, "- %s: %s\n", t.name, t.version)
		}
	}
	fmt.Fprintf(&b, "- Command: `go run ./bench/retries %s` (took %.1fs)\n", r.flags, r.elapsed.Seconds())
	if r.stopped != nil {
		fmt.Fprintf(&b, "- **Stopped early** (%v): later rows are partial or missing.\n", r.stopped)
	}
	fmt.Fprintf(&b, "\nTwo upstream endpoints on loopback (one Go process, raw HTTP/1.1) read each\n"+
		"request's head and body, then reset the connection (`SetLinger(0)`+`Close`, no\n"+
		"response byte) for %.0f%% of arrivals and answer `200` to the rest. The draw is\n"+
		"seeded per (`X-Req-Id`, arrival number), so every attempt, first or replayed,\n"+
		"is reset with the same probability. Callers: %d raw HTTP/1.1 keep-alive\n"+
		"clients with no retries of their own, %d requests per class; POSTs carry 64\n"+
		"bytes. An error is a connection failure, a close or reset before a complete\n"+
		"response, or a 5xx. `reused conn:` marks a failure on a keep-alive connection\n"+
		"that had already carried a response, where HTTP clients commonly replay\n"+
		"idempotent requests themselves. *Upstream arrivals* counts how often the\n"+
		"upstream saw the class's requests, replays included; *seen twice+* counts\n"+
		"requests that arrived more than once, which for a POST without an\n"+
		"Idempotency-Key is a replay of a request the upstream may have processed.\n\n",
		pct, r.callers, r.n)

	b.WriteString("| target | class | error rate | errors / requests | callers saw | upstream arrivals | resets | seen twice+ |\n")
	b.WriteString("|---|---|---:|---:|---|---:|---:|---:|\n")
	for _, t := range r.targets {
		if t.skipped != "" {
			fmt.Fprintf(&b, "| %s | – | not measured | – | %s | – | – | – |\n", t.name, benchkit.Escape(t.skipped))
			continue
		}
		for _, res := range t.results {
			tl := res.tally
			rate := "–"
			if tl.requests > 0 {
				rate = fmt.Sprintf("%.2f%%", 100*float64(tl.errors())/float64(tl.requests))
			}
			dups := fmt.Sprint(res.dups)
			if res.dups > 0 && res.class.post && !res.class.keyed {
				dups = fmt.Sprintf("**%d unsafe**", res.dups)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %d / %d | %s | %d | %d | %s |\n",
				t.name, res.class.name, rate, tl.errors(), tl.requests, benchkit.Counts(tl.errs, "–"), res.arrivals, res.resets, dups)
		}
	}
	r.writeConfigs(&b)
	return b.String()
}

// writeConfigs explains each target's setup and shows its configuration.
func (r *report) writeConfigs(b *strings.Builder) {
	b.WriteString("\n## How each is configured and why\n")
	for _, t := range r.targets {
		fmt.Fprintf(b, "\n### %s\n\n%s\n", t.name, why[t.name])
		if t.config != "" {
			lang := map[string]string{"nginx": "nginx", "switchboard": "yaml"}[t.name]
			fmt.Fprintf(b, "\n```%s\n%s```\n", lang, t.config)
		}
	}
}

// why is the reasoning behind each target's configuration.
var why = map[string]string{
	"direct": "The callers connect straight to the endpoints (caller *i* to endpoint *i* mod 2).\n" +
		"Nothing retries, so the error rate is the reset rate: the baseline.",

	"nginx": "`proxy_next_upstream error timeout` (nginx's default) passes a request to the\n" +
		"next server when connecting, sending the request or reading the response head\n" +
		"fails; `proxy_next_upstream_tries 3` caps the attempts at 3 in all. nginx never\n" +
		"passes a request to a server it already tried for that request, so with two\n" +
		"endpoints a GET gets at most 2 attempts: the third try ends in \"no live\n" +
		"upstreams\" and a 502. Upstream keep-alive needs `keepalive`,\n" +
		"`proxy_http_version 1.1` and an empty `Connection` header. Since 1.9.13 nginx\n" +
		"does not pass a request with a non-idempotent method (POST, LOCK, PATCH) to the\n" +
		"next server once it was sent to one, unless `proxy_next_upstream` lists\n" +
		"`non_idempotent`. nginx has no notion of an Idempotency-Key, and\n" +
		"`non_idempotent` would replay unkeyed POSTs too, so it is left out: both POST\n" +
		"classes are expected to show the reset rate as 502s. `max_fails=0` turns off\n" +
		"passive health (default `max_fails=1 fail_timeout=10s`): both endpoints fail\n" +
		"alike, so marking one down would only add \"no live upstreams\" 502s. nginx\n" +
		"runs as one process (`master_process off`) in the foreground, all its files in\n" +
		"the temporary directory.",

	"haproxy": "`retries 2` with `option redispatch 1`: HAProxy counts the retries after the\n" +
		"first attempt, so this is 3 attempts in all, like the others, each retry on the\n" +
		"other server. By default HAProxy retries only connection failures (`retry-on\n" +
		"conn-failure`); `empty-response` (the server closed after the request was sent\n" +
		"and nothing came back: our reset) and `response-timeout` turn on layer-7\n" +
		"retries, for which HAProxy keeps a copy of the request. The HAProxy 2.6\n" +
		"configuration manual gives `retry-on` no method rule: it warns that the\n" +
		"application needs replay protection such as unique transaction IDs in\n" +
		"requests, and documents `http-request disable-l7-retry` as the way to make sure\n" +
		"POST requests are not retried. We apply it to POSTs without an\n" +
		"Idempotency-Key; the keyed POSTs carry that replay protection. `http-reuse\n" +
		"safe` (the default, stated) sends a caller connection's first request on a new\n" +
		"server connection and later ones over idle ones. When a request that is not\n" +
		"the first on its caller connection fails and is not retried, HAProxy closes the\n" +
		"caller connection without a response, as a keep-alive server would, leaving\n" +
		"the retry to the caller (`abort_keep_alive` in its `http_ana.c`): the callers\n" +
		"see that as `reused conn: EOF`, not as a 502.",

	"haproxy-noguard": "The same HAProxy configuration without the `disable-l7-retry` line, to show\n" +
		"what `retry-on empty-response` does on its own: it replays every method,\n" +
		"including POSTs without a key.",

	"switchboard": "A pool of both endpoints (default round-robin balancing and passive health)\n" +
		"and one route with `retries: {max_attempts: 3}` (3 attempts in all); its retry\n" +
		"policy replays an idempotent method or a request with an Idempotency-Key, and\n" +
		"any request that provably never reached the upstream. Access log and admin\n" +
		"listener are off.",
}
