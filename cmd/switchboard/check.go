package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/switchboard-proxy/switchboard/internal/config"
)

// check validates a config file and reports what it defines.
func check(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file to validate (YAML)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *path == "" {
		return usageError{errors.New("check: --config FILE is required")}
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return usageError{err}
	}
	fmt.Fprintf(stdout, "%s: ok (%d listeners, %d routes, %d pools)\n",
		*path, len(cfg.Listeners), len(cfg.Routes), len(cfg.Pools))
	return nil
}
