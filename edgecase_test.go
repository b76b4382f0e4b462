package litestream_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"testing"

	"github.com/sqlitebackup/litestream"
)

// TestSecondReplicatorRefused: a second DB on the same database (another
// process, or the same one twice) is refused instead of interleaving
// TXIDs in the replica; once the first closes, the second may start.
func TestSecondReplicatorRefused(t *testing.T) {
	h := newHarness(t, 4096, nil)
	second := litestream.NewDB(h.dbPath)
	litestream.NewReplica(second, h.client)
	err := second.Open()
	if !errors.Is(err, litestream.ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	h.db.Close(context.Background())
	if err := second.Open(); err != nil {
		t.Fatalf("Open after the first closed: %v", err)
	}
	second.Close(context.Background())
}

// TestDatabaseReplacedAtSamePath: the database file is deleted and a new
// one created at the same path while replicating; the engine notices and
// continues with a full image of the new database.
func TestDatabaseReplacedAtSamePath(t *testing.T) {
	h := newHarness(t, 4096, nil)
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	insertRows(t, h, 10)
	h.sync()
	h.app.Close()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(h.dbPath + suffix)
	}
	h.app = openApp(t, h.dbPath, 4096)
	mustExec(t, h.app, "CREATE TABLE other (x TEXT)")
	mustExec(t, h.app, "INSERT INTO other VALUES ('new database')")
	// The first sync notices the replacement and reopens; the next copies.
	if err := h.db.Sync(context.Background()); err == nil {
		t.Log("replacement handled within one sync")
	}
	h.sync()
	if got, want := h.restore(litestream.RestoreTarget{}), contentHash(t, h.dbPath); got != want {
		t.Fatal("restore after the database was replaced differs from the new database")
	}
}

// TestJournalModeSwitchedWhileStopped: the application switches to
// rollback-journal mode and writes while replication is stopped; on
// restart the database goes back to WAL and a full image is taken.
func TestJournalModeSwitchedWhileStopped(t *testing.T) {
	h := newHarness(t, 4096, nil)
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	insertRows(t, h, 5)
	h.sync()
	h.db.Close(context.Background())
	mustExec(t, h.app, "PRAGMA journal_mode = delete")
	insertRows(t, h, 5)
	h.open(nil)
	h.sync()
	fresh, err := sql.Open("sqlite", h.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	var mode string
	if err := fresh.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal mode %q %v, want wal", mode, err)
	}
	insertRows(t, h, 5)
	h.sync()
	h.verifyAll()
}

// TestLocalFilesKeepDatabasePermissions: level-0 files are created with
// the database file's mode, so they are no more readable than the data.
func TestLocalFilesKeepDatabasePermissions(t *testing.T) {
	h := newHarness(t, 4096, nil)
	mustExec(t, h.app, "CREATE TABLE t (x)")
	if err := os.Chmod(h.dbPath, 0o600); err != nil {
		t.Fatal(err)
	}
	txid := h.sync()
	fi, err := os.Stat(h.db.LTXPath(txid, txid))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("level-0 file mode %o, want 600", fi.Mode().Perm())
	}
}
