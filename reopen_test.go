package litestream_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/sqlitebackup/litestream"
)

// TestDBReopen: a DB can be stopped and started again in one process (the
// control socket's stop/start), resuming without a full image or a gap.
func TestDBReopen(t *testing.T) {
	h := newHarness(t, 4096, nil)
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	h.sync()
	for i := 0; i < 3; i++ {
		if err := h.db.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		insertRows(t, h, 5)
		if err := h.db.Open(); err != nil {
			t.Fatal(err)
		}
		insertRows(t, h, 5)
		h.sync()
	}
	if h.db.Replica.LastSyncAt().IsZero() {
		t.Fatal("LastSyncAt not recorded")
	}
	h.verifyAll()
}

// TestRestoreProgress: the progress hook sees the pages written grow to
// the database size.
func TestRestoreProgress(t *testing.T) {
	h := newHarness(t, 1024, nil)
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	insertRows(t, h, 1500)
	h.sync()
	var calls int
	var last int64
	var total uint32
	out := filepath.Join(t.TempDir(), "p.db")
	if _, err := litestream.Restore(context.Background(), h.client, litestream.RestoreOptions{OutputPath: out, Progress: func(written int64, tot uint32) {
		if written < last {
			t.Errorf("progress went backwards: %d after %d", written, last)
		}
		calls, last, total = calls+1, written, tot
	}}); err != nil {
		t.Fatal(err)
	}
	if calls < 2 || last != int64(total) || total == 0 {
		t.Fatalf("progress: %d calls, last %d of %d", calls, last, total)
	}
}

// TestHarnessPageSize guards the test helpers: the database really has the
// page size a test asks for.
func TestHarnessPageSize(t *testing.T) {
	for _, ps := range []int{512, 65536} {
		h := newHarness(t, ps, nil)
		h.sync()
		if got := h.db.PageSize(); got != uint32(ps) {
			t.Fatalf("page size %d, want %d", got, ps)
		}
	}
}

// TestRestartWithoutFullImage: closing the replicator (even as the last
// connection) keeps the WAL, so a restart with no change in between
// continues without a full image.
func TestRestartWithoutFullImage(t *testing.T) {
	h := newHarness(t, 4096, nil)
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	insertRows(t, h, 50)
	first := h.sync()
	h.app.Close() // the replicator's connection is now the last one
	for i := 0; i < 3; i++ {
		if err := h.db.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		h.open(nil)
		if err := h.db.SyncAndWait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.db.Pos(); got != first {
		t.Fatalf("restarts without changes wrote files: TXID %s, want %s", got, first)
	}
	h.app = openApp(t, h.dbPath, 4096)
	insertRows(t, h, 3)
	txid := h.sync()
	hdr, pages := levelZeroHeader(t, h, txid)
	if pages == int(hdr.Commit) {
		t.Fatalf("TXID %s after restarts is a full image", txid)
	}
	h.verifyAll()
}
