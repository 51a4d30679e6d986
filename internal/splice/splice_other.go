//go:build !linux

package splice

import "syscall"

// Pipe is a kernel pipe between two sockets; see the Linux version.
type Pipe struct{}

// Get reports ErrUnsupported.
func Get() (*Pipe, error) { return nil, ErrUnsupported }

func (p *Pipe) Put()          {}
func (p *Pipe) Buffered() int { return 0 }

func (p *Pipe) Fill(syscall.RawConn, int) (int, error) { return 0, ErrUnsupported }
func (p *Pipe) Drain(syscall.RawConn) (int, error)     { return 0, ErrUnsupported }
