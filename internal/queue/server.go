package queue

import (
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// startServer starts the embedded nats-server that keeps its JetStream
// data under dir. It listens on no port: the queue reaches it through an
// in-process connection. The caller shuts it down.
func startServer(dir string, maxPayload int32) (*server.Server, error) {
	opts := &server.Options{
		ServerName: "switchboard-queue",
		DontListen: true,
		NoSigs:     true, // only main handles signals
		NoLog:      true,
		JetStream:  true,
		StoreDir:   dir,
		// SyncAlways fsyncs every write before JetStream acknowledges
		// it. The default syncs every two minutes, and Jepsen's 2025
		// analysis of NATS showed that lazy default losing writes that
		// had been acknowledged; rule R9 promises the caller's 202 means
		// the request is on disk.
		SyncAlways: true,
		MaxPayload: maxPayload,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, fmt.Errorf("embedded nats-server in %s: not ready after 30s", dir)
	}
	return s, nil
}
