package proxy

import "github.com/switchboard-proxy/switchboard/internal/queue"

// QueueForTest returns the server's delivery queue, nil when none is open.
func (s *Server) QueueForTest() *queue.Queue { return s.queue }

// SplicedBytesForTest returns how many response body bytes were relayed
// with splice(2) in this process so far.
func SplicedBytesForTest() int64 { return splicedBytes.Load() }
