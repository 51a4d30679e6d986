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

// queueOutcome counts a recorded delivery step and, when it ended the
// delivery, queues the callback of its route in the table in force; the
// worker calls it.
func (s *Server) queueOutcome(e queue.Event) {
	s.metrics.QueueOutcome(e.Route, string(e.State), e.Reason, e.Status)
	if e.State != queue.Delivered && e.State != queue.Dead {
		return
	}
	if rt := s.handler.table.Load().route(e.Route); rt != nil && rt.callbackURL != "" {
		s.notifier.notify(rt.callbackURL, e)
	}
}

// purgeTimeout bounds one retention pass.
const purgeTimeout = time.Minute

// retentionInterval is how often ended records are looked at: a tenth of
// the shorter retention, at most a minute.
func retentionInterval(retention, deadRetention time.Duration) time.Duration {
	return min(retention/10, deadRetention/10, time.Minute)
}

// runRetention purges ended records older than their retention until
// Close.
func (s *Server) runRetention() {
	t := time.NewTicker(retentionInterval(s.retention, s.deadRetention))
	defer t.Stop()
	for {
		select {
		case <-s.stop.Done():
			return
		case <-t.C:
			s.purgeExpired()
		}
	}
}

// purgeExpired removes delivered and cancelled records older than
// s.retention and dead letters older than s.deadRetention.
func (s *Server) purgeExpired() {
	ctx, cancel := context.WithTimeout(s.stop, purgeTimeout)
	defer cancel()
	now := time.Now()
	for _, p := range []struct {
		state queue.State
		keep  time.Duration
	}{{queue.Delivered, s.retention}, {queue.Cancelled, s.retention}, {queue.Dead, s.deadRetention}} {
		n, err := s.queue.Purge(ctx, p.state, now.Add(-p.keep))
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("queue retention: purge", "state", string(p.state), "error", err.Error())
			}
			return
		}
		if n > 0 {
			s.log.Info("queue retention: purged", "state", string(p.state), "records", n, "older_than", p.keep.String())
		}
	}
}
