package proxy

import (
	"context"
	"log/slog"
	"time"

	"github.com/switchboard-proxy/switchboard/hangup"
)

// Access-log keys: one record per request (rule R8).
const (
	keyMethod      = "method"
	keyHost        = "host"
	keyPath        = "path"
	keyProto       = "proto"
	keyRoute       = "route"
	keyStatus      = "status"
	keyBytesIn     = "bytes_in"
	keyBytesOut    = "bytes_out"
	keyDuration    = "duration_ms"
	keyUpstream    = "upstream"
	keySide        = "side"
	keyPhase       = "phase"
	keyKind        = "kind"
	keyAction      = "action"
	keyAbortMS     = "abort_ms"
	keyProxyStatus = "proxy_status"
	keyError       = "error"
	keyDetail      = "detail"
	keyIgnored     = "ignored_abort"
	keyRemote      = "remote"
	keyAttempts    = "attempts"
	keyRetries     = "retries"
	keyNoRetry     = "no_retry"
	keyDeliveryID  = "delivery_id"
	keyNoFallback  = "no_fallback"
	keyQueueError  = "queue_error"
)

// finish writes the request's one access-log record and metrics
// observation. ServeHTTP defers it, so it also runs while an aborting panic
// unwinds.
func (ex *exchange) finish() {
	if ex.status == 0 {
		ex.status = 200
	}
	o := ex.outcome
	if o.Side == hangup.Caller && ex.status < 400 && ex.status != 101 {
		ex.status = hangup.StatusCallerGone
	}
	d := time.Since(ex.start)
	route := "-"
	if ex.route != nil {
		route = ex.route.name
	}
	ex.h.metrics.Request(route, ex.status, o, d)
	log := ex.h.log.Load()
	level := slog.LevelInfo
	if (o.Side == hangup.Upstream || o.Side == hangup.Proxy) && o.Action != hangup.OK {
		// An upstream that closed a tunnel in good order did nothing
		// wrong.
		level = slog.LevelWarn
	}
	if !log.Enabled(context.Background(), level) {
		return
	}
	attrs := make([]slog.Attr, 0, 24)
	attrs = append(attrs,
		slog.String(keyMethod, ex.r.Method),
		slog.String(keyHost, ex.r.Host),
		slog.String(keyPath, ex.r.URL.Path),
		slog.String(keyProto, ex.r.Proto),
		slog.String(keyRemote, ex.r.RemoteAddr),
		slog.String(keyRoute, route),
		slog.Int(keyStatus, ex.status),
		slog.Int64(keyBytesIn, ex.bytesIn()),
		slog.Int64(keyBytesOut, ex.bytesOut),
		slog.Float64(keyDuration, ms(d)),
	)
	if ex.endpoint != nil {
		attrs = append(attrs, slog.String(keyUpstream, ex.endpoint.Host))
	}
	attrs = append(attrs,
		slog.String(keySide, o.Side.String()),
		slog.String(keyPhase, o.Phase.String()),
		slog.String(keyKind, o.Kind.String()),
		slog.String(keyAction, o.Action.String()),
	)
	if o.Side == hangup.Caller && !ex.abortedAt.IsZero() && ex.propagation >= 0 && !ex.ignored {
		attrs = append(attrs, slog.Float64(keyAbortMS, ms(ex.propagation)))
	}
	if ex.ignored || (o.Side == hangup.Caller && ex.route != nil && ex.route.ignoreAbort) {
		attrs = append(attrs, slog.Bool(keyIgnored, true))
	}
	// A fallback request that was stored lists even a single attempt:
	// the record's side, phase and kind describe it only when it failed.
	if ex.try != nil && (len(ex.tries) > 0 || ex.try.conns.Load() > 1 || ex.deliveryID != "") {
		list := ex.tries
		if !ex.tryLogged {
			last := ex.try.logEntry()
			switch {
			case ex.res != nil && (o.Side != hangup.Upstream || o.Action == hangup.QueuedForLater):
				last.Status = ex.res.StatusCode
			case o.Side == hangup.Upstream:
				last.Side, last.Phase, last.Kind = o.Side.String(), o.Phase.String(), o.Kind.String()
			}
			list = append(list, last)
		}
		attrs = append(attrs, slog.Any(keyAttempts, list), slog.Int(keyRetries, len(list)-1))
	}
	if ex.deliveryID != "" {
		attrs = append(attrs, slog.String(keyDeliveryID, ex.deliveryID))
	}
	if ex.noRetry != "" {
		attrs = append(attrs, slog.String(keyNoRetry, ex.noRetry))
	}
	if ex.noFallback != "" {
		attrs = append(attrs, slog.String(keyNoFallback, ex.noFallback))
	}
	if ex.queueErr != nil {
		attrs = append(attrs, slog.String(keyQueueError, ex.queueErr.Error()))
	}
	if ex.proxyError != "" {
		attrs = append(attrs, slog.String(keyProxyStatus, ex.proxyError))
	}
	if o.Err != nil {
		attrs = append(attrs, slog.String(keyError, o.Err.Error()))
	}
	if ex.detail != "" {
		attrs = append(attrs, slog.String(keyDetail, ex.detail))
	}
	log.LogAttrs(context.Background(), level, "request", attrs...)
}

// bytesIn is the request body bytes read from the caller, or the bytes a
// tunnel copied from the caller to the upstream.
func (ex *exchange) bytesIn() int64 {
	if ex.body != nil {
		return ex.body.n.Load() + ex.tunnelIn
	}
	return ex.tunnelIn
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
