package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// DefaultSocketPermissions is the mode of the control socket when the
// config sets none: only the daemon's user may connect.
const DefaultSocketPermissions os.FileMode = 0o600

// ListenUnix creates a Unix socket at path that nobody can connect to
// before it has mode perm.
//
// Binding a socket creates its file with the process umask, and the
// kernel queues connections from that moment, so a chmod after listen
// leaves a window in which another user can connect. Changing the umask
// is process-wide and would race with every other file the daemon
// creates. Instead the socket is bound inside a fresh 0700 directory next
// to path (connect needs search permission on every directory of the
// path, so only our user can reach it there), chmod-ed, and renamed into
// place: rename is atomic, so at path the socket only ever exists with
// its final mode.
//
// A stale socket at path (no one listening) is replaced; a live one or a
// file that is not a socket is an error.
func ListenUnix(path string, perm os.FileMode) (*net.UnixListener, error) {
	if err := checkSocketPath(path); err != nil {
		return nil, err
	}
	tmpDir, err := os.MkdirTemp(filepath.Dir(path), ".litestream-sock-")
	if err != nil {
		return nil, fmt.Errorf("control socket %s: private directory: %w", path, err)
	}
	defer os.RemoveAll(tmpDir)
	tmpPath := filepath.Join(tmpDir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmpPath, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	// The file moves, so the listener must not unlink its old name on
	// Close; Control.Close removes the socket at path instead.
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmpPath, perm); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: chmod %#o: %w", path, perm, err)
	}
	if err := os.Rename(tmpPath, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return ln, nil
}

// checkSocketPath refuses to replace anything but a stale socket.
func checkSocketPath(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("control socket %s: a file that is not a socket is in the way", path)
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("control socket %s: another process is listening on it", path)
	}
	return nil
}

// removeSocket removes the socket at path if it is still the one we
// created (another daemon may have taken the path over since).
func removeSocket(path string, ours os.FileInfo) {
	if ours == nil {
		return
	}
	if fi, err := os.Lstat(path); err == nil && os.SameFile(fi, ours) {
		os.Remove(path)
	}
}
