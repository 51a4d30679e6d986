// Package proxy is switchboard's request path: it routes each caller's
// request to an upstream pool, relays the request and the response as they
// stream, tunnels upgraded connections, and makes every hang-up on either
// side end the right way (rules R1, R2, R4, R5, R7 and R8 of the design).
//
// The inbound request's context is the abort signal: every upstream attempt
// is derived from it, so a caller who hangs up aborts the upstream request at
// once, unless the route sets ignore_client_abort. Each request ends with
// exactly one access-log record and one metrics observation, built from a
// hangup.Outcome.
//
// [Server] owns the listeners and their lifecycle: start, reload without
// dropping connections, and drain on shutdown.
package proxy
