package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/admin"
	"github.com/switchboard-proxy/switchboard/internal/config"
	"github.com/switchboard-proxy/switchboard/internal/queue"
)

const queueUsage = `usage: switchboard queue <command> [flags] [ID...]

Inspect and repair the delivery queue of async routes through a running
switchboard's admin API.

commands:
  list    [--route R] [--state S]      deliveries, oldest first
  show    ID                           one delivery: state, every attempt, the upstream's answer
  replay  ID... | --all [--route R]    make dead letters pending again
  drop    ID...                        cancel a pending delivery, or discard a dead letter
  purge   --state S [--older-than D]   remove delivered, dead or cancelled records

flags of every command:
  --admin URL     admin API (default http://127.0.0.1:9901, or admin.address of --config)
  --config FILE   read the admin address and token from this config file
  --token T       admin bearer token (default $SWITCHBOARD_ADMIN_TOKEN, then admin.token of --config)
  --json          print the API's JSON instead of a table

states: pending, delivered, dead, cancelled

exit status: 0 done; 1 runtime or server error (admin unreachable, bad token,
store failure); 2 usage error (bad flag, unknown state); 3 not found or
conflict (unknown id, queue not enabled, delivery in the wrong state).`

// lookupError is a delivery that is not there or not in a state that
// allows the command: exit status 3.
type lookupError struct{ err error }

func (e lookupError) Error() string { return e.err.Error() }
func (e lookupError) Unwrap() error { return e.err }

// queueCmd holds what every queue command shares.
type queueCmd struct {
	base   string // admin API base URL, without a trailing slash
	token  string
	json   bool
	stdout io.Writer
	client *http.Client
}

// queueTimeout bounds each admin API call.
const queueTimeout = 30 * time.Second

func queueMain(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 0 {
			fmt.Fprintln(stderr, queueUsage)
			return usageError{errors.New("queue: no command given")}
		}
		fmt.Fprintln(stdout, queueUsage)
		return nil
	}
	name, args := args[0], args[1:]
	fs := flag.NewFlagSet("queue "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	adminURL := fs.String("admin", "", "admin API URL (default http://127.0.0.1:9901, or admin.address of --config)")
	path := fs.String("config", "", "config file to read the admin address and token from")
	token := fs.String("token", "", "admin bearer token (default $SWITCHBOARD_ADMIN_TOKEN)")
	asJSON := fs.Bool("json", false, "print JSON")
	var route, state, olderThan *string
	var all *bool
	switch name {
	case "list":
		route = fs.String("route", "", "only this route")
		state = fs.String("state", "", "only this state: pending, delivered, dead or cancelled")
	case "replay":
		all = fs.Bool("all", false, "replay every dead letter (of --route)")
		route = fs.String("route", "", "with --all: only this route's dead letters")
	case "purge":
		state = fs.String("state", "", "delivered, dead or cancelled (required)")
		olderThan = fs.String("older-than", "", "only records unchanged this long, e.g. 24h (default: all)")
	case "show", "drop":
	default:
		return usageError{fmt.Errorf("queue: unknown command %q (run \"switchboard queue help\")", name)}
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: switchboard queue %s\n\nflags:\n", queueSynopsis[name])
		fs.PrintDefaults()
		fmt.Fprintln(stderr, "\nexit status: 0 done; 1 runtime or server error; 2 usage error; 3 not found or conflict")
	}
	ids, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	for _, st := range []*string{state} {
		if st != nil && *st != "" {
			if _, ok := queue.ParseState(*st); !ok {
				return usageError{fmt.Errorf("queue %s: --state %q: want pending, delivered, dead or cancelled", name, *st)}
			}
		}
	}
	c, err := newQueueCmd(*adminURL, *path, *token, os.Getenv("SWITCHBOARD_ADMIN_TOKEN"))
	if err != nil {
		return usageError{err}
	}
	c.json, c.stdout = *asJSON, stdout
	switch name {
	case "list":
		return c.list(noArgs(name, ids), *route, *state)
	case "show":
		if len(ids) != 1 {
			return usageError{errors.New("queue show: give exactly one delivery ID")}
		}
		return c.show(ids[0])
	case "replay":
		if *all == (len(ids) > 0) || (*route != "" && !*all) {
			return usageError{errors.New("queue replay: give delivery IDs, or --all [--route R]")}
		}
		if *all {
			return c.replayAll(*route)
		}
		return c.each(ids, c.replay)
	case "drop":
		if len(ids) == 0 {
			return usageError{errors.New("queue drop: give at least one delivery ID")}
		}
		return c.each(ids, c.drop)
	default: // purge
		if *state == "" {
			return usageError{errors.New("queue purge: --state is required (delivered, dead or cancelled)")}
		}
		return c.purge(noArgs(name, ids), *state, *olderThan)
	}
}

// queueSynopsis is each command's usage line for its -h.
var queueSynopsis = map[string]string{
	"list":   "list [--route R] [--state S] [flags]\n\nList deliveries, oldest first.",
	"show":   "show ID [flags]\n\nShow one delivery: its state, every attempt, the upstream's answer.",
	"replay": "replay ID... | replay --all [--route R] [flags]\n\nMake dead letters pending again (attempts reset; the Idempotency-Key stays).",
	"drop":   "drop ID... [flags]\n\nCancel a pending delivery (its record stays, cancelled) or discard a dead letter.",
	"purge":  "purge --state S [--older-than D] [flags]\n\nRemove delivered, dead or cancelled records (dead: with their stored requests).",
}

// noArgs reports an error for commands that take no positional argument.
func noArgs(name string, ids []string) error {
	if len(ids) > 0 {
		return usageError{fmt.Errorf("queue %s: unexpected argument %q", name, ids[0])}
	}
	return nil
}

// parseInterspersed parses fs allowing flags after positional arguments
// ("show ID --json"), and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// newQueueCmd resolves the admin URL and token: flags first, then the
// environment's token, then the config file.
func newQueueCmd(adminURL, path, token, envToken string) (*queueCmd, error) {
	token = cmpOr(token, envToken)
	if path != "" {
		cfg, err := config.Load(path)
		if err != nil {
			return nil, err
		}
		if adminURL == "" {
			if cfg.Admin.Address == config.AdminOff {
				return nil, fmt.Errorf("%s: the admin listener is off (admin.address: off)", path)
			}
			adminURL = cfg.Admin.Address
		}
		token = cmpOr(token, cfg.Admin.Token)
	}
	base, err := adminBase(cmpOr(adminURL, "http://127.0.0.1:9901"))
	if err != nil {
		return nil, err
	}
	return &queueCmd{base: base, token: token, client: &http.Client{Timeout: queueTimeout}}, nil
}

// adminBase turns an admin address ("127.0.0.1:9901", ":9901" or a URL)
// into a base URL.
func adminBase(s string) (string, error) {
	if !strings.Contains(s, "://") {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return "", fmt.Errorf("--admin %q: want a URL or host:port", s)
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		s = "http://" + net.JoinHostPort(host, port)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--admin %q: want an http(s) URL", s)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// call makes one admin API request and decodes a 2xx answer into out
// (when not nil). It returns the raw body for --json.
func (c *queueCmd) call(method, path string, q url.Values, out any) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), queueTimeout)
	defer cancel()
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin API: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("admin API: read answer: %w", err)
	}
	if res.StatusCode/100 != 2 {
		return body, apiError(res.StatusCode, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return body, fmt.Errorf("admin API: decode answer: %w", err)
		}
	}
	return body, nil
}

// apiError maps an error answer to the exit status it gives.
func apiError(status int, body []byte) error {
	var e admin.ErrorResponse
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	err := fmt.Errorf("admin API: %d %s: %s", status, http.StatusText(status), msg)
	switch status {
	case http.StatusNotFound, http.StatusConflict:
		return lookupError{err}
	case http.StatusBadRequest:
		return usageError{err}
	}
	return err
}

func (c *queueCmd) list(err error, route, state string) error {
	if err != nil {
		return err
	}
	q := url.Values{}
	if route != "" {
		q.Set("route", route)
	}
	if state != "" {
		q.Set("state", state)
	}
	var res admin.ListResponse
	body, err := c.call("GET", "/queue/deliveries", q, &res)
	if err != nil || c.json {
		return c.raw(body, err)
	}
	if len(res.Deliveries) == 0 {
		fmt.Fprintln(c.stdout, "no deliveries")
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROUTE\tSTATE\tATTEMPTS\tARRIVED\tREQUEST\tLAST")
	for _, r := range res.Deliveries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s %s\t%s\n", r.ID, r.Route, r.State, r.Attempts,
			r.Arrived.Local().Format(time.DateTime), r.Method, r.Target, last(r))
	}
	return tw.Flush()
}

// last summarises how a delivery stands: its answer, why it ended, or its
// last failure.
func last(r *queue.Record) string {
	switch {
	case r.Response != nil:
		return fmt.Sprintf("%d", r.Response.Status)
	case r.Reason != "":
		return r.Reason
	case len(r.Outcomes) > 0:
		o := r.Outcomes[len(r.Outcomes)-1]
		if o.Status != 0 {
			return fmt.Sprintf("%d, %s", o.Status, o.Verdict)
		}
		return o.Verdict
	}
	return "-"
}

func (c *queueCmd) show(id string) error {
	var r queue.Record
	body, err := c.call("GET", "/queue/deliveries/"+url.PathEscape(id), nil, &r)
	if err != nil || c.json {
		return c.raw(body, err)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "id:\t%s\n", r.ID)
	fmt.Fprintf(tw, "route:\t%s\n", r.Route)
	fmt.Fprintf(tw, "request:\t%s %s (%d bytes)\n", r.Method, r.Target, r.Size)
	fmt.Fprintf(tw, "idempotency-key:\t%s\n", r.IdempotencyKey)
	fmt.Fprintf(tw, "state:\t%s\n", r.State)
	if r.Reason != "" {
		fmt.Fprintf(tw, "reason:\t%s\n", r.Reason)
	}
	fmt.Fprintf(tw, "arrived:\t%s\n", r.Arrived.Local().Format(time.RFC3339))
	fmt.Fprintf(tw, "updated:\t%s\n", r.Updated.Local().Format(time.RFC3339))
	if !r.NextAttempt.IsZero() {
		fmt.Fprintf(tw, "next attempt:\t%s\n", r.NextAttempt.Local().Format(time.RFC3339))
	}
	fmt.Fprintf(tw, "attempts:\t%d (generation %d)\n", r.Attempts, r.Generation)
	if r.Response != nil {
		fmt.Fprintf(tw, "response:\t%d, %d bytes kept\n", r.Response.Status, len(r.Response.Body))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Outcomes) == 0 {
		return nil
	}
	fmt.Fprintln(c.stdout)
	tw = tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tSTART\tDURATION\tSTATUS\tVERDICT\tERROR")
	for i, o := range r.Outcomes {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", i+1, o.Start.Local().Format(time.DateTime),
			o.Duration.Round(time.Microsecond), dash(o.Status), cmpOr(o.Verdict, "-"), cmpOr(o.Error, "-"))
	}
	return tw.Flush()
}

func dash(status int) string {
	if status == 0 {
		return "-"
	}
	return fmt.Sprint(status)
}

// each runs fn for every id, goes on after a failure, and returns the
// first error (so the exit status reflects it).
func (c *queueCmd) each(ids []string, fn func(string) error) error {
	var first error
	for _, id := range ids {
		if err := fn(id); err != nil {
			if first == nil {
				first = err
			}
			if len(ids) > 1 {
				fmt.Fprintf(c.stdout, "%s: %v\n", id, err)
			}
		}
	}
	return first
}

func (c *queueCmd) replay(id string) error {
	var r queue.Record
	body, err := c.call("POST", "/queue/deliveries/"+url.PathEscape(id)+"/replay", nil, &r)
	if err != nil || c.json {
		return c.raw(body, err)
	}
	fmt.Fprintf(c.stdout, "replayed %s: %s\n", id, r.State)
	return nil
}

func (c *queueCmd) replayAll(route string) error {
	q := url.Values{}
	if route != "" {
		q.Set("route", route)
	}
	var res admin.ReplayResponse
	body, err := c.call("POST", "/queue/replay", q, &res)
	if c.json {
		return c.raw(body, err)
	}
	if json.Unmarshal(body, &res) != nil {
		return err
	}
	for _, id := range res.Replayed {
		fmt.Fprintf(c.stdout, "replayed %s\n", id)
	}
	for _, f := range res.Failed {
		fmt.Fprintf(c.stdout, "failed   %s: %s\n", f.ID, f.Error)
	}
	fmt.Fprintf(c.stdout, "%d dead letters replayed, %d failed\n", len(res.Replayed), len(res.Failed))
	return err
}

func (c *queueCmd) drop(id string) error {
	var res admin.DropResponse
	body, err := c.call("DELETE", "/queue/deliveries/"+url.PathEscape(id), nil, &res)
	if err != nil || c.json {
		return c.raw(body, err)
	}
	fmt.Fprintf(c.stdout, "%s %s (was %s)\n", res.Result, id, res.Was)
	return nil
}

func (c *queueCmd) purge(err error, state, olderThan string) error {
	if err != nil {
		return err
	}
	q := url.Values{"state": {state}}
	if olderThan != "" {
		if _, err := time.ParseDuration(olderThan); err != nil {
			return usageError{fmt.Errorf("queue purge: --older-than %q: want a duration such as 24h", olderThan)}
		}
		q.Set("before", olderThan)
	}
	var res admin.PurgeResponse
	body, err := c.call("POST", "/queue/purge", q, &res)
	if err != nil || c.json {
		return c.raw(body, err)
	}
	fmt.Fprintf(c.stdout, "purged %d %s records\n", res.Purged, state)
	return nil
}

// raw prints a successful answer's JSON as is (--json) and passes err on.
func (c *queueCmd) raw(body []byte, err error) error {
	if err == nil {
		c.stdout.Write(body)
	}
	return err
}
