// Package benchkit holds what the benchmark programs under bench/ share:
// starting and stopping the processes they measure, building and
// installing those programs, the run's context and module facts, and the
// machine facts and Markdown pieces of their reports.
//
// It writes nothing to stdout or stderr itself; callers log with their
// own prefix.
package benchkit
