//go:build !linux

package rawio

import "syscall"

// Raw socket calls are wired up on Linux only; elsewhere NewReader and
// NewWriter return nil and callers use the connection as it is.
const supported = false

func rawWrite(uintptr, []byte) (int, syscall.Errno) { return 0, syscall.ENOSYS }
func rawRead(uintptr, []byte) (int, syscall.Errno)  { return 0, syscall.ENOSYS }
