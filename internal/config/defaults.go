package config

import (
	"fmt"
	"time"
)

// applyDefaults replaces every zero-valued field that has a default. It runs
// before validation so validation sees effective values.
func (c *Config) applyDefaults() {
	orString(&c.Admin.Address, defaultAdminAddress)
	orString(&c.AccessLog.Path, defaultAccessLog)
	orDuration(&c.DrainTimeout, defaultDrainTimeout)
	for i := range c.Listeners {
		c.Listeners[i].applyDefaults()
	}
	for i := range c.Pools {
		c.Pools[i].applyDefaults()
	}
	for i := range c.Routes {
		c.Routes[i].applyDefaults(i)
	}
	c.Queue.applyDefaults()
}

// applyDefaults fills in the queue settings. Dir stays relative here;
// validation resolves it against the config file's directory.
func (q *Queue) applyDefaults() {
	orString(&q.Dir, defaultQueueDir)
	orSize(&q.MaxBody, defaultQueueMaxBody)
	orInt(&q.Concurrency, defaultQueueConcurrency)
	orDuration(&q.AckWait, defaultQueueAckWait)
	orInt(&q.Replicas, defaultQueueReplicas)
	orDuration(&q.Retention, defaultQueueRetention)
	orDuration(&q.DeadRetention, defaultQueueDeadRetention)
}

func (q *RouteQueue) applyDefaults() {
	orInt(&q.MaxAttempts, defaultQueueMaxAttempts)
	orDuration(&q.MaxAge, defaultQueueMaxAge)
	orDuration(&q.BackoffBase, defaultQueueBackoffBase)
	orDuration(&q.BackoffMax, defaultQueueBackoffMax)
}

func (l *Listener) applyDefaults() {
	if l.H2C == nil {
		// TLS listeners get HTTP/2 from ALPN; prior knowledge is for cleartext.
		l.H2C = new(l.TLS == nil)
	}
	orDuration(&l.ReadHeaderTimeout, defaultReadHeaderTimeout)
	orDuration(&l.IdleTimeout, defaultIdleTimeout)
	orSize(&l.MaxHeaderBytes, defaultMaxHeaderBytes)
}

func (p *Pool) applyDefaults() {
	orString(&p.Protocol, ProtoHTTP1)
	orInt(&p.MaxIdlePerEndpoint, defaultMaxIdle)
	orDuration(&p.IdleConnTimeout, defaultIdleConnTimeout)
	for i := range p.Endpoints {
		if p.Endpoints[i].Weight == 0 {
			p.Endpoints[i].Weight = 1
		}
	}
	orString(&p.Balance, BalanceRoundRobin)
	orInt(&p.MaxQueue, defaultMaxQueue)
	orDuration(&p.QueueTimeout, defaultQueueTimeout)
	p.Health.Passive.applyDefaults()
	if p.Health.Active != nil { // active probing is off unless the block is written
		p.Health.Active.applyDefaults()
	}
}

func (h *PassiveHealth) applyDefaults() {
	orInt(&h.ConsecutiveFailures, defaultConsecutiveFailures)
	orDuration(&h.BaseEjection, defaultBaseEjection)
	orDuration(&h.MaxEjection, defaultMaxEjection)
	orInt(&h.MaxEjectedPercent, defaultMaxEjectedPercent)
}

func (h *ActiveHealth) applyDefaults() {
	orDuration(&h.Interval, defaultProbeInterval)
	orDuration(&h.Timeout, defaultProbeTimeout)
	orInt(&h.HealthyThreshold, defaultHealthyThreshold)
	orInt(&h.UnhealthyThreshold, defaultUnhealthyThreshold)
}

func (r *Route) applyDefaults(index int) {
	orString(&r.Name, fmt.Sprintf("route%d", index))
	orString(&r.Match.PathPrefix, "/")
	orSize(&r.MaxRequestBody, defaultMaxRequestBody)
	r.Timeouts.applyDefaults()
	r.Retries.applyDefaults()
	orString(&r.Mode, ModeSync)
	r.Queue.applyDefaults()
	// Hedge.Delay's default is 0, hedging off: nothing to fill in.
}

// applyDefaults fills in the retry policy. RetryOnStatus is the one list
// whose emptiness matters: left out (or null) it decodes to nil and gets the
// default, while an explicit [] decodes to an empty, non-nil slice and
// means "retry on no status".
func (r *Retries) applyDefaults() {
	orInt(&r.MaxAttempts, defaultMaxAttempts)
	if r.RetryOnStatus == nil {
		r.RetryOnStatus = defaultRetryOnStatus()
	}
	orDuration(&r.BackoffBase, defaultBackoffBase)
	orDuration(&r.BackoffMax, defaultBackoffMax)
	orDuration(&r.RetryAfterMax, defaultRetryAfterMax)
	orSize(&r.BufferBody, defaultBufferBody)
	if r.Budget.Ratio == 0 {
		r.Budget.Ratio = defaultBudgetRatio
	}
	orInt(&r.Budget.MinPerSecond, defaultBudgetMinPerSecond)
}

// applyDefaults caps each defaulted phase timeout at Total, so setting only
// a short total is valid; an explicit phase timeout is left for validation.
func (t *Timeouts) applyDefaults() {
	orDuration(&t.Connect, capAt(defaultConnect, t.Total))
	orDuration(&t.ResponseHeader, capAt(defaultResponseHeader, t.Total))
	orDuration(&t.IdleBody, capAt(defaultIdleBody, t.Total))
}

func capAt(d time.Duration, total Duration) time.Duration {
	if total > 0 && total.D() < d {
		return total.D()
	}
	return d
}

func orString(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

func orDuration(d *Duration, def time.Duration) {
	if *d == 0 {
		*d = Duration(def)
	}
}

func orInt(n *int, def int) {
	if *n == 0 {
		*n = def
	}
}

func orSize(s *Size, def int64) {
	if *s == 0 {
		*s = Size(def)
	}
}
