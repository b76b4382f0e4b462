package litestream_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
)

// levelZeroHeader reads the replica's file of txid: in level 0, or in the
// snapshot level when it was the replica's first file.
func levelZeroHeader(t *testing.T, h *harness, txid ltx.TXID) (ltx.Header, int) {
	t.Helper()
	rc, err := h.client.OpenLTXFile(context.Background(), 0, txid, txid, 0, 0)
	if errors.Is(err, os.ErrNotExist) {
		rc, err = h.client.OpenLTXFile(context.Background(), litestream.SnapshotLevel, 1, txid, 0, 0)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	dec := ltx.NewDecoder(rc)
	if err := dec.Verify(); err != nil {
		t.Fatalf("level-0 file %s: %v", txid, err)
	}
	return dec.Header(), dec.PageN()
}

func insertRows(t *testing.T, h *harness, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		mustExec(t, h.app, "INSERT INTO t (v) VALUES (randomblob(500))")
	}
}

// TestCheckpointByOtherConnectionWhileStopped: the application
// checkpoints (and then writes, restarting the WAL) while replication is
// stopped. On restart the engine must notice that frames it never saw
// were folded into the database, write a full image, and restore exactly.
func TestCheckpointByOtherConnectionWhileStopped(t *testing.T) {
	for _, mode := range []string{"PASSIVE", "FULL", "RESTART", "TRUNCATE"} {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t, 4096, nil)
			mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
			insertRows(t, h, 20)
			h.sync()
			if err := h.db.Close(context.Background()); err != nil {
				t.Fatal(err)
			}

			insertRows(t, h, 20) // frames the engine never copies
			mustExec(t, h.app, fmt.Sprintf("PRAGMA wal_checkpoint(%s)", mode))
			insertRows(t, h, 5) // restarts the WAL after a full checkpoint

			h.open(nil)
			txid := h.sync()
			hdr, pages := levelZeroHeader(t, h, txid)
			if pages != int(hdr.Commit) {
				t.Fatalf("TXID %s has %d pages of %d: want a full image after a foreign checkpoint", txid, pages, hdr.Commit)
			}
			insertRows(t, h, 5)
			h.sync()
			h.verifyAll()
		})
	}
}

// TestCheckpointByOtherConnectionWhileRunning: foreign checkpoints while
// the engine holds its read transaction cannot restart the WAL, so
// replication continues incrementally and nothing is lost.
func TestCheckpointByOtherConnectionWhileRunning(t *testing.T) {
	for _, mode := range []string{"PASSIVE", "FULL", "RESTART", "TRUNCATE"} {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t, 4096, nil)
			mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
			h.sync()
			for i := 0; i < 3; i++ {
				insertRows(t, h, 10)
				// FULL/RESTART/TRUNCATE give up (SQLITE_BUSY) after the
				// busy timeout because our reader pins the WAL.
				mustExec(t, h.app, "PRAGMA busy_timeout = 50")
				_, _ = h.app.Exec(fmt.Sprintf("PRAGMA wal_checkpoint(%s)", mode))
				mustExec(t, h.app, "PRAGMA busy_timeout = 10000")
				insertRows(t, h, 3)
				h.sync()
			}
			h.verifyAll()
		})
	}
}

// TestOwnCheckpointsRestartWALWithoutFullImage: our own checkpoints must
// not cost a full image: the WAL restarts and level-0 files continue.
func TestOwnCheckpointsRestartWALWithoutFullImage(t *testing.T) {
	h := newHarness(t, 4096, func(db *litestream.DB) { db.MinCheckpointPageN = 8 })
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	first := h.sync()
	restarts := 0
	for i := 0; i < 12; i++ {
		insertRows(t, h, 10)
		txid := h.sync()
		hdr, pages := levelZeroHeader(t, h, txid)
		if pages == int(hdr.Commit) && hdr.Commit > 20 {
			t.Fatalf("TXID %s is a full image (%d pages); own checkpoints must not need one", txid, pages)
		}
		if hdr.WALOffset == litestream.WALHeaderSize {
			restarts++
		}
	}
	if restarts == 0 {
		t.Fatal("the WAL never restarted: checkpoints did not run")
	}
	if first != 1 {
		t.Fatalf("first TXID %s, want 1", first)
	}
	h.verifyAll()
}

// TestTruncateCheckpoint forces the emergency TRUNCATE path.
func TestTruncateCheckpoint(t *testing.T) {
	h := newHarness(t, 4096, func(db *litestream.DB) { db.TruncatePageN = 10 })
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	h.sync()
	for i := 0; i < 5; i++ {
		insertRows(t, h, 15)
		h.sync()
	}
	fi, err := os.Stat(h.dbPath + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 64*1024 {
		t.Fatalf("wal is %d bytes after TRUNCATE checkpoints", fi.Size())
	}
	h.verifyAll()
}
