// Package hanguptest provides loopback test peers that hang up — with an
// orderly FIN, an RST, or by stalling — at a chosen phase of an HTTP
// exchange, and record exactly what they saw, so end-to-end tests of the
// proxy can assert facts such as "the upstream saw its connection close
// soon after the caller hung up". It is named like net/http/httptest.
//
// The peers are:
//
//   - [Upstream]: a raw TCP HTTP/1.1 server that hands each accepted
//     connection, as a [ServerConn], to a handler; canned handlers such as
//     [Respond], [Stall], [HangUpBeforeHeaders], [HangUpMidBody] and
//     [StreamUntilClosed] cover the usual phases.
//   - [Caller]: a raw TCP client connection that sends exact bytes and hangs
//     up exactly when told.
//   - [Recorder]: an http.Handler wrapper recording, per request, when the
//     handler's context ended (the upstream's view of an abort), for Go
//     upstreams served by [NewH2CServer], [NewTLSServer] or httptest.
//   - [NodeUpstream]: a real Node.js http server (testdata/upstream.js),
//     started by [StartNode], that reports its view of each request as JSON
//     events.
//
// Everything listens on 127.0.0.1 with an ephemeral port. Every blocking
// operation has a deadline (see [Timeout]) so that a broken proxy fails a
// test rather than hanging it, and every goroutine a peer starts is stopped
// and waited for in t.Cleanup, so tests may use goleak.
//
// The peers classify hang-ups themselves ([PeerClose]) rather than through
// package hangup: they are the oracle the proxy's classification is tested
// against, so they must not share its code.
package hanguptest
