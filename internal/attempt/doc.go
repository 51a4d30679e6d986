// Package attempt is the one place that decides what happens when an attempt
// to reach an upstream ends: relay the answer, answer the caller with an error,
// or (in later work) retry or queue the request. The proxy's synchronous path,
// the delivery queue's workers and the client library all decide through it,
// so each hang-up rule lives in one place.
package attempt
