package config

import (
	"fmt"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// pos is a 1-based line and column in the config file.
type pos struct{ Line, Column int }

// positions maps dotted field paths ("routes[0].timeouts.connect") to where
// they are written. It is built once from the AST so validation can name a
// line for any field without re-parsing, and so Where works after loading.
type positions struct {
	byPath map[string]pos
	byPos  map[pos]string // token position → path, to name the field of a decode error
}

// indexFile records the position of every mapping key, sequence item and
// scalar value in the first document of f.
func indexFile(f *ast.File) positions {
	p := positions{byPath: map[string]pos{}, byPos: map[pos]string{}}
	if f != nil && len(f.Docs) > 0 && f.Docs[0] != nil {
		p.walk("", f.Docs[0].Body)
	}
	return p
}

func (p *positions) walk(path string, n ast.Node) {
	switch n := n.(type) {
	case *ast.MappingNode:
		for _, mv := range n.Values {
			p.walkEntry(path, mv)
		}
	case *ast.MappingValueNode:
		p.walkEntry(path, n)
	case *ast.SequenceNode:
		for i, v := range n.Values {
			item := fmt.Sprintf("%s[%d]", path, i)
			p.add(item, firstToken(v))
			p.walk(item, v)
		}
	case *ast.AnchorNode:
		p.walk(path, n.Value)
	case *ast.TagNode:
		p.walk(path, n.Value)
	}
}

func (p *positions) walkEntry(parent string, mv *ast.MappingValueNode) {
	if mv == nil || mv.Key == nil {
		return
	}
	path := joinPath(parent, keyText(mv.Key))
	keyTok := mv.Key.GetToken()
	// Recording the key first keeps its reverse mapping (unknown-field
	// errors point at the key) even when a scalar value then overrides the
	// forward entry: errors about a scalar point at the value itself.
	p.add(path, keyTok)
	if isScalar(mv.Value) {
		p.add(path, mv.Value.GetToken())
		return
	}
	p.walk(path, mv.Value)
}

// add records tok as the position of path, overwriting any earlier entry, and
// the reverse mapping.
func (p *positions) add(path string, tok *token.Token) {
	if tok == nil || tok.Position == nil {
		return
	}
	at := tokPos(tok)
	p.byPath[path] = at
	p.byPos[at] = path
}

// lookup returns the position of path or of its nearest recorded ancestor.
func (p positions) lookup(path string) pos {
	for path != "" {
		if at, ok := p.byPath[path]; ok {
			return at
		}
		path = parentPath(path)
	}
	return pos{}
}

// has reports whether path itself is written in the file.
func (p positions) has(path string) bool {
	_, ok := p.byPath[path]
	return ok
}

// fieldAt returns the path whose key or value is at tok, or "".
func (p positions) fieldAt(tok *token.Token) string {
	if tok == nil || tok.Position == nil {
		return ""
	}
	return p.byPos[tokPos(tok)]
}

func tokPos(tok *token.Token) pos {
	return pos{Line: tok.Position.Line, Column: tok.Position.Column}
}

// firstToken returns the token a sequence item starts with. A block mapping's
// own token can be its first ':' or a later line, so use its first key.
func firstToken(n ast.Node) *token.Token {
	if m, ok := n.(*ast.MappingNode); ok && len(m.Values) > 0 && m.Values[0].Key != nil {
		return m.Values[0].Key.GetToken()
	}
	if n == nil {
		return nil
	}
	return n.GetToken()
}

func isScalar(n ast.Node) bool {
	_, ok := n.(ast.ScalarNode)
	return ok
}

func keyText(k ast.MapKeyNode) string {
	if s, ok := k.(ast.ScalarNode); ok {
		return fmt.Sprint(s.GetValue())
	}
	return k.String()
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// parentPath strips the last ".key" or "[i]" from path.
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}
