package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"syscall"

	"github.com/switchboard-proxy/switchboard/internal/config"
	"github.com/switchboard-proxy/switchboard/internal/proxy"
)

// serve runs the proxy until a stop signal, then drains.
func serve(args []string, stdout, stderr io.Writer, sigs <-chan os.Signal) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file (YAML); reloaded on SIGHUP")
	listen := fs.String("listen", "", "address to listen on, e.g. 127.0.0.1:8080 (without --config)")
	up := fs.String("upstream", "", "upstream URL, e.g. http://127.0.0.1:3000 (without --config)")
	debug := fs.Bool("debug", false, "log debug messages")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	cfg, err := loadConfig(*path, *listen, *up)
	if err != nil {
		return usageError{err}
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	srv, err := proxy.New(cfg, proxy.Options{Log: log, Stdout: stdout, Stderr: stderr})
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	return waitForSignals(srv, *path, log, sigs)
}

func loadConfig(path, listen, up string) (*config.Config, error) {
	switch {
	case path != "" && (listen != "" || up != ""):
		return nil, errors.New("serve: use either --config or --listen/--upstream, not both")
	case path != "":
		return config.Load(path)
	case listen == "" || up == "":
		return nil, errors.New("serve: need --config FILE, or both --listen ADDR and --upstream URL")
	}
	return config.FromFlags(listen, up)
}

// waitForSignals reloads on SIGHUP and drains on SIGTERM/SIGINT; a second
// stop signal during the drain closes everything at once.
func waitForSignals(srv *proxy.Server, path string, log *slog.Logger, sigs <-chan os.Signal) error {
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			reload(srv, path, log)
			continue
		}
		return drain(srv, log, sigs)
	}
	srv.Close()
	return nil
}

func reload(srv *proxy.Server, path string, log *slog.Logger) {
	if path == "" {
		log.Warn("reload ignored: no config file (started with --listen/--upstream)")
		return
	}
	cfg, err := config.Load(path)
	if err != nil {
		srv.Metrics().Reload(false)
	} else {
		err = srv.Reload(cfg)
	}
	if err != nil {
		log.Error("reload rejected; the previous configuration stays in force", "error", err.Error())
		return
	}
	log.Info("configuration reloaded", "file", path)
}

func drain(srv *proxy.Server, log *slog.Logger, sigs <-chan os.Signal) error {
	// The drain timeout of the configuration in force, which a reload
	// may have changed.
	ctx, cancel := context.WithTimeout(context.Background(), srv.DrainDelay()+srv.DrainTimeout())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	for {
		select {
		case err := <-done:
			if err != nil {
				log.Warn("drain ended at the deadline", "error", err.Error())
			} else {
				log.Info("drained; bye")
			}
			return nil
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				continue
			}
			log.Warn("second stop signal: closing now")
			cancel()
		}
	}
}
