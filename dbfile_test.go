package litestream_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sqlitebackup/litestream"
)

// sqliteSharedLocked reports whether any lock is held on the byte range of
// SQLite's SHARED lock in the database file f. An open file description
// lock query conflicts with ordinary POSIX locks even of this process, so
// it sees the locks of the application's connections in this process.
func sqliteSharedLocked(t *testing.T, f *os.File) bool {
	t.Helper()
	const pendingByte = 0x40000000
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: pendingByte + 2, Len: 510}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		t.Fatalf("F_OFD_GETLK: %v", err)
	}
	return lk.Type != unix.F_UNLCK
}

// TestApplicationKeepsItsLocks: an application embedding the library
// keeps SQLite's shared lock on its database through a whole Open, Sync,
// Close and CheckDBFile; closing a descriptor of the file would have
// dropped it (POSIX locks belong to the process, not the descriptor), and
// another process could then delete the WAL or leave WAL mode under it.
func TestApplicationKeepsItsLocks(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// The test's own descriptor stays open until after the application
	// closes (cleanups run last-in first-out): closing it earlier would
	// drop the locks being checked.
	probe, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { probe.Close() })
	app := openApp(t, path, 4096)
	mustExec(t, app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
	mustExec(t, app, "INSERT INTO t (v) VALUES ('x')")
	if !sqliteSharedLocked(t, probe) {
		t.Fatal("precondition: the application's idle WAL connection holds no shared lock")
	}

	for i := 0; i < 2; i++ { // a second Open reuses the kept descriptor
		db := litestream.NewDB(path)
		db.MonitorInterval = 0
		litestream.NewReplica(db, newFileClient(filepath.Join(dir, "replica")))
		if err := db.Open(); err != nil {
			t.Fatal(err)
		}
		mustExec(t, app, "INSERT INTO t (v) VALUES ('y')")
		if err := db.SyncAndWait(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := litestream.CheckDBFile(path); err != nil {
			t.Fatal(err)
		}
		if !sqliteSharedLocked(t, probe) {
			t.Fatalf("round %d: the application lost its shared lock on the database file", i)
		}
	}
	mustExec(t, app, "INSERT INTO t (v) VALUES ('z')")
}
