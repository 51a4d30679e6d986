package proxy

import (
	"context"
	"time"

	"github.com/switchboard-proxy/switchboard/internal/metrics"
	"github.com/switchboard-proxy/switchboard/internal/queue"
)

// queueCountTimeout bounds one reading of the queue for the metrics.
const queueCountTimeout = 5 * time.Second

// watchQueue exports the queue's depth on the server's metrics.
func (s *Server) watchQueue() {
	s.metrics.WatchQueue(s.queueCounts)
}

// queueCounts reads the queue's depth for a scrape.
func (s *Server) queueCounts() ([]metrics.QueueCount, error) {
	ctx, cancel := context.WithTimeout(context.Background(), queueCountTimeout)
	defer cancel()
	cs, err := s.queue.Counts(ctx)
	if err != nil {
		s.log.Warn("queue metrics: read the queue", "error", err.Error())
		return nil, err
	}
	out := make([]metrics.QueueCount, len(cs))
	for i, c := range cs {
		out[i] = metrics.QueueCount{Route: c.Route, State: string(c.State), N: c.N, Oldest: c.Oldest}
	}
	return out, nil
}

// queueOutcome counts a recorded delivery step; the worker calls it.
func (s *Server) queueOutcome(e queue.Event) {
	s.metrics.QueueOutcome(e.Route, string(e.State), e.Reason, e.Status)
}
