package proxy

import "github.com/switchboard-proxy/switchboard/internal/queue"

// QueueForTest returns the server's delivery queue, nil when none is open.
func (s *Server) QueueForTest() *queue.Queue { return s.queue }
