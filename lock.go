package litestream

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrLocked means another process (or DB value) is already replicating the
// database: two writers would interleave TXIDs in one replica.
var ErrLocked = errors.New("database is already being replicated")

// lockFileName is the lock file inside the meta directory. Upstream has
// none; it ignores files it does not know.
const lockFileName = "lock"

// acquireMetaLock takes an exclusive, non-blocking flock on the meta
// directory's lock file and records our PID in it for the error message
// another process will see. The kernel drops the lock if we die, so a
// crash never leaves a stale lock.
func acquireMetaLock(metaPath string) (*os.File, error) {
	if err := os.MkdirAll(metaPath, 0o755); err != nil {
		return nil, fmt.Errorf("create meta directory: %w", err)
	}
	path := filepath.Join(metaPath, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (lock %s held by pid %s)", ErrLocked, path, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}
