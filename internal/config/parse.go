package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Load reads the file at path and returns Parse's result. Errors reading the
// file are returned as they come from the os package.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse decodes data strictly, applies defaults, resolves derived fields and
// validates. file names the source in errors and anchors relative paths (TLS
// files, the access log) to its directory. Every failure is an *Error.
func Parse(file string, data []byte) (*Config, error) {
	c, e := parse(file, data)
	if e != nil {
		return nil, e
	}
	return c, nil
}

func parse(file string, data []byte) (*Config, *Error) {
	f, err := parser.ParseBytes(normalizeNewlines(data), 0)
	if err != nil {
		return nil, decodeError(file, positions{}, err)
	}
	c := &Config{File: file, pos: indexFile(f)}
	if e := c.decode(f); e != nil {
		return nil, e
	}
	c.applyDefaults()
	v := &validator{c: c, dir: filepath.Dir(file)}
	if e := v.validate(); e != nil {
		return nil, e
	}
	return c, nil
}

// normalizeNewlines turns "\r\n" and bare "\r" into "\n". YAML treats all
// three as one line break, but go-yaml v1.19.2 counts the CRLF after a
// comment as two lines, which misnumbers every later error in a file saved
// with Windows line endings (found by FuzzParse).
func normalizeNewlines(data []byte) []byte {
	if !bytes.ContainsRune(data, '\r') {
		return data
	}
	data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(data, []byte("\r"), []byte("\n"))
}

// decode fills c from the single document in f, rejecting unknown fields.
func (c *Config) decode(f *ast.File) *Error {
	for _, d := range f.Docs[min(1, len(f.Docs)):] {
		if d.Body != nil {
			return &Error{File: c.File, Line: docLine(d), Msg: "more than one YAML document; want exactly one"}
		}
	}
	if len(f.Docs) == 0 || f.Docs[0].Body == nil {
		return nil // an empty file decodes to an empty config; validation says what is missing
	}
	if tag := findTag(f.Docs[0].Body); tag != nil {
		return errorAt(c.File, c.pos, tag.GetToken(), "yaml tags are not supported")
	}
	if err := yaml.NodeToValue(f.Docs[0].Body, c, yaml.Strict()); err != nil {
		return decodeError(c.File, c.pos, err)
	}
	return nil
}

// findTag returns the first tag node ("!!str", "!foo") under n, or nil.
// Tags are refused because a config never needs them and go-yaml v1.19.2
// panics decoding a tagged scalar into a slice (TagNode.ArrayRange returns a
// nil iterator); found by FuzzParse.
func findTag(n ast.Node) *ast.TagNode {
	var v tagFinder
	ast.Walk(&v, n)
	return v.tag
}

type tagFinder struct{ tag *ast.TagNode }

func (v *tagFinder) Visit(n ast.Node) ast.Visitor {
	if t, ok := n.(*ast.TagNode); ok && v.tag == nil {
		v.tag = t
	}
	if v.tag != nil {
		return nil
	}
	return v
}

func docLine(d *ast.DocumentNode) int {
	if d.Start != nil && d.Start.Position != nil {
		return d.Start.Position.Line
	}
	return 0
}

// tokenError is implemented by go-yaml's errors and by valueError.
type tokenError interface {
	GetToken() *token.Token
	GetMessage() string
}

// decodeError converts a go-yaml syntax or decode error into an *Error,
// naming the field at the error's token when the AST is known.
func decodeError(file string, idx positions, err error) *Error {
	var te tokenError
	if !errors.As(err, &te) {
		return &Error{File: file, Msg: err.Error()}
	}
	msg := te.GetMessage()
	var typeErr *yaml.TypeError
	if errors.As(err, &typeErr) {
		msg = fmt.Sprintf("expected %s, got %s", yamlKind(typeErr.DstType), yamlKind(typeErr.SrcType))
		if isFloat(typeErr.DstType) && strings.HasSuffix(strings.TrimSpace(te.GetToken().Value), "%") {
			msg += " (write a share as a fraction: 0.2, not 20%)"
		}
	}
	return errorAt(file, idx, te.GetToken(), msg)
}

// errorAt returns an *Error at tok, naming the field written there.
func errorAt(file string, idx positions, tok *token.Token, msg string) *Error {
	e := &Error{File: file, Msg: msg}
	if tok != nil && tok.Position != nil {
		e.Line, e.Column = tok.Position.Line, tok.Position.Column
		e.Field = idx.fieldAt(tok)
	}
	return e
}

func isFloat(t reflect.Type) bool {
	return t != nil && (t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64)
}

// yamlKind names a Go type the way a YAML author thinks of it, so type errors
// do not leak Go struct names.
func yamlKind(t reflect.Type) string {
	if t == nil {
		return "null"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct, reflect.Pointer:
		return "a mapping"
	}
	return strings.ToLower(t.Kind().String())
}

// FromFlags builds the one-listener, one-pool, one-route config used when
// switchboard runs without a file: listen is the listener address and
// upstream the single endpoint URL of pool "default", which route "default"
// sends every request to. It validates like Parse; errors name the flag
// ("--listen", "--upstream") as Field and have no file or line.
func FromFlags(listen, upstream string) (*Config, error) {
	c := &Config{
		Listeners: []Listener{{Address: listen}},
		Pools:     []Pool{{Name: "default", Endpoints: []Endpoint{{URL: upstream}}}},
		Routes:    []Route{{Name: "default", Pool: "default"}},
	}
	c.applyDefaults()
	v := &validator{c: c, dir: ".", flags: map[string]string{
		"listeners[0]":          "--listen",
		"pools[0].endpoints[0]": "--upstream",
	}}
	if e := v.validate(); e != nil {
		return nil, e
	}
	return c, nil
}
