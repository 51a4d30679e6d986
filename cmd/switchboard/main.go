// Command switchboard is an HTTP reverse proxy that gets every connection
// hang-up right.
//
// Usage:
//
//	switchboard serve --listen 127.0.0.1:8080 --upstream http://127.0.0.1:3000
//	switchboard serve --config switchboard.yaml
//	switchboard check --config switchboard.yaml
//	switchboard queue list --config switchboard.yaml --state dead
//
// serve runs until SIGTERM or SIGINT, then drains (a second signal stops at
// once); SIGHUP reloads the config file.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 2) // a second signal must not be lost while draining
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	os.Exit(exitCode(run(os.Args[1:], os.Stdout, os.Stderr, sigs), os.Stderr))
}

// usageError is a mistake in the command line or config: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "switchboard:", err)
	switch {
	case errors.As(err, new(usageError)):
		return 2
	case errors.As(err, new(lookupError)):
		return 3
	}
	return 1
}

const usage = `usage: switchboard <command> [flags]

commands:
  serve   run the proxy (--config FILE, or --listen ADDR --upstream URL)
  check   validate a config file without serving (--config FILE)
  queue   inspect and repair the delivery queue: list, show, replay, drop, purge
  version print the version

Run "switchboard <command> -h" for the command's flags.`

// run dispatches a subcommand. Signals arrive on sigs.
func run(args []string, stdout, stderr io.Writer, sigs <-chan os.Signal) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return usageError{errors.New("no command given")}
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr, sigs)
	case "check":
		return check(args[1:], stdout, stderr)
	case "queue":
		return queueMain(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "switchboard", version)
		return nil
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return usageError{fmt.Errorf("unknown command %q (run \"switchboard help\")", args[0])}
}

const version = "0.1.0-dev"
