package server

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// TestSocketPermissionsBeforeAccept watches the socket path while it is
// created: the first time the socket is visible there it already has its
// final mode, and no private directory is left behind.
func TestSocketPermissionsBeforeAccept(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ls.sock")
	for _, perm := range []os.FileMode{0o600, 0o660, 0o640} {
		os.Remove(path)
		var firstMode atomic.Uint32
		stop := make(chan struct{})
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if fi, err := os.Lstat(path); err == nil {
					firstMode.Store(uint32(fi.Mode()))
					return
				}
			}
		}()
		ln, err := ListenUnix(path, perm)
		if err != nil {
			t.Fatal(err)
		}
		close(stop)
		<-watched
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != perm {
			t.Fatalf("socket mode %v, want socket %#o", fi.Mode(), perm)
		}
		if m := os.FileMode(firstMode.Load()); m != 0 && m.Perm() != perm {
			t.Fatalf("socket was visible with mode %#o before it got %#o", m.Perm(), perm)
		}
		ln.Close()
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".litestream-sock-") {
			t.Fatalf("private directory %s left behind", e.Name())
		}
	}
}

func TestSocketPathChecks(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ls.sock")
	ln, err := ListenUnix(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ListenUnix(path, 0o600); err == nil || !strings.Contains(err.Error(), "another process is listening") {
		t.Fatalf("second listener on a live socket: %v", err)
	}
	ln.Close() // leaves a stale socket file behind (unlink on close is off)
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket expected: %v", err)
	}
	ln, err = ListenUnix(path, 0o600)
	if err != nil {
		t.Fatalf("replacing a stale socket: %v", err)
	}
	ln.Close()

	regular := filepath.Join(dir, "file.sock")
	if err := os.WriteFile(regular, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ListenUnix(regular, 0o600); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("listening over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(regular); string(b) != "data" {
		t.Fatal("regular file was replaced")
	}
	if _, err := ListenUnix(filepath.Join(dir, "missing", "ls.sock"), 0o600); err == nil {
		t.Fatal("expected an error for a missing directory")
	}
}
