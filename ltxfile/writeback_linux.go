package ltxfile

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing the dirty pages of
// [off, off+n) without waiting for them. Errors are ignored: it is only a
// hint, and the caller's fsync reports any failure to write.
func startWriteback(conn syscall.RawConn, off, n int64) {
	_ = conn.Control(func(fd uintptr) {
		_ = unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
	})
}
