package litestream_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/file"
	"github.com/sqlitebackup/litestream/internal/faultfs"
)

// newFaultHarness replicates through a fault-injecting filesystem used for
// both the meta directory and the file replica.
func newFaultHarness(t *testing.T) (*harness, *faultfs.FS) {
	t.Helper()
	fsys := faultfs.New(litestream.OSFS)
	h := newHarness(t, 4096, func(db *litestream.DB) { db.FS = fsys })
	h.db.Close(context.Background())
	h.client = file.NewReplicaClientFS(filepath.Join(h.dir, "replica"), fsys)
	h.open(func(db *litestream.DB) { db.FS = fsys })
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	h.sync()
	return h, fsys
}

// TestLocalFaultsRecoverWithoutGap injects each kind of failure into the
// level-0 write path once: the sync reports it, leaves no partial file,
// and the next sync continues with no gap and nothing lost.
func TestLocalFaultsRecoverWithoutGap(t *testing.T) {
	metaFile := ".app.db-litestream" + string(filepath.Separator) + "ltx"
	cases := []struct {
		name   string
		inject func(f *faultfs.FS)
	}{
		{"ENOSPC on write", func(f *faultfs.FS) { f.Inject(faultfs.OpWrite, metaFile, faultfs.ENOSPC, 1) }},
		{"EIO on write", func(f *faultfs.FS) { f.Inject(faultfs.OpWrite, metaFile, faultfs.EIO, 1) }},
		{"short write", func(f *faultfs.FS) { f.InjectShortWrite(metaFile, 1) }},
		{"failed fsync", func(f *faultfs.FS) { f.Inject(faultfs.OpSync, ".ltx.tmp", faultfs.EIO, 1) }},
		{"failed rename", func(f *faultfs.FS) { f.Inject(faultfs.OpRename, metaFile, faultfs.EIO, 1) }},
		{"failed create", func(f *faultfs.FS) { f.Inject(faultfs.OpCreate, metaFile, faultfs.ENOSPC, 1) }},
		{"failed dir fsync", func(f *faultfs.FS) {
			f.Inject(faultfs.OpSync, filepath.Join(".app.db-litestream", "ltx", "0"), faultfs.EIO, 1)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, fsys := newFaultHarness(t)
			insertRows(t, h, 5)
			c.inject(fsys)
			err := h.db.Sync(context.Background())
			if fsys.Hits() == 0 {
				t.Fatal("the fault was never hit")
			}
			if err == nil && c.name != "failed dir fsync" {
				t.Fatal("sync succeeded despite the fault")
			}
			if tmps, _ := filepath.Glob(filepath.Join(h.db.LTXDir(), "*.tmp")); len(tmps) > 0 {
				t.Fatalf("partial files left: %v", tmps)
			}
			insertRows(t, h, 5)
			h.sync()
			h.verifyAll()
		})
	}
}

// TestReplicaFaultsRecoverWithoutGap fails uploads to the file replica:
// nothing is lost locally, and uploads resume in order when it clears.
func TestReplicaFaultsRecoverWithoutGap(t *testing.T) {
	for _, op := range []faultfs.Op{faultfs.OpWrite, faultfs.OpSync, faultfs.OpRename, faultfs.OpChtimes, faultfs.OpMkdir} {
		t.Run(string(op), func(t *testing.T) {
			h, fsys := newFaultHarness(t)
			fsys.Inject(op, filepath.Join(h.dir, "replica"), faultfs.EIO, -1)
			for i := 0; i < 3; i++ {
				insertRows(t, h, 5)
				if err := h.db.Sync(context.Background()); err != nil {
					t.Fatal(err)
				}
				if err := h.db.Replica.Sync(context.Background()); err == nil {
					t.Fatal("upload succeeded despite the fault")
				}
			}
			fsys.Clear()
			h.sync()
			h.verifyAll()
		})
	}
}

// TestDiskFullPausesAndResumes: with the monitor running, a full disk
// stops level-0 writes (reported by the disk-full gauge) without losing
// anything; when space returns, replication catches up by itself.
func TestDiskFullPausesAndResumes(t *testing.T) {
	h, fsys := newFaultHarness(t)
	h.db.Close(context.Background())
	h.open(func(db *litestream.DB) {
		db.FS = fsys
		db.MonitorInterval = 10 * time.Millisecond
		db.Replica.SyncInterval = 10 * time.Millisecond
	})
	h.sync()
	fsys.Inject(faultfs.OpCreate, ".app.db-litestream", faultfs.ENOSPC, -1)
	insertRows(t, h, 20)
	labels := map[string]string{"db": h.dbPath}
	waitFor(t, "disk_full gauge", func() bool { return counterOrZero("litestream_disk_full", labels) == 1 })
	fsys.Clear()
	insertRows(t, h, 1)
	waitFor(t, "replica to catch up", func() bool {
		return counterOrZero("litestream_disk_full", labels) == 0 && h.db.ReplicationLag() == 0 && h.db.Replica.Pos() == h.db.Pos()
	})
	h.sync()
	h.verifyAll()
}

// waitFor polls cond for at most 20 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
