// Package config is switchboard's configuration model: the YAML schema, its
// defaults, and strict validation.
//
// It is the only package that imports a YAML library. [Load] and [Parse] decode
// strictly (an unknown field is an error), fill every zero-valued field with the
// default documented on it, resolve derived fields (endpoint schemes and
// host:port, trusted networks, relative file paths), and validate the result.
// Every problem is reported as an [*Error] naming the file, line, column and the
// dotted field path, so an operator can jump straight to the mistake. Only the
// first problem is reported.
//
// A *Config returned without error is fully resolved and must be treated as
// read-only; it is safe for concurrent reads. A zero value in a field always
// means "use the default", which is why a Config built by hand should go
// through [Parse] or [FromFlags] rather than be used directly.
package config
