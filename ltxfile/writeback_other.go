//go:build !linux

package ltxfile

import "syscall"

// startWriteback does nothing where sync_file_range(2) is not available;
// the caller's fsync writes everything.
func startWriteback(syscall.RawConn, int64, int64) {}
