package litestream_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/file"
)

// countingClient wraps a real client and counts uploads.
type countingClient struct {
	litestream.ReplicaClient
	writes atomic.Int64
}

func (c *countingClient) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	c.writes.Add(1)
	return c.ReplicaClient.WriteLTXFile(ctx, level, minTXID, maxTXID, r)
}

func newReplicatedDB(t *testing.T, dbPath string, client litestream.ReplicaClient) *litestream.DB {
	t.Helper()
	db := litestream.NewDB(dbPath)
	db.MonitorInterval = 0
	litestream.NewReplica(db, client)
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	return db
}

// TestReplicaResumesWithoutReupload: after a restart the replica's
// position is read back and nothing already uploaded is sent again.
func TestReplicaResumesWithoutReupload(t *testing.T) {
	h := newHarness(t, 4096, nil)
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	for i := 0; i < 5; i++ {
		insertRows(t, h, 3)
		h.sync()
	}
	if err := h.db.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	counting := &countingClient{ReplicaClient: h.client}
	db := newReplicatedDB(t, h.dbPath, counting)
	insertRows(t, h, 3)
	if err := db.SyncAndWait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := counting.writes.Load(); n != 1 {
		t.Fatalf("%d uploads after restart, want 1 (only the new file)", n)
	}
}

// TestReplicaAheadOfLocalState: the database is restored from the replica
// and replication restarts from scratch locally; numbering must continue
// after the replica's TXIDs, never overwrite them.
func TestReplicaAheadOfLocalState(t *testing.T) {
	h := newHarness(t, 4096, nil)
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	for i := 0; i < 4; i++ {
		insertRows(t, h, 3)
		h.sync()
	}
	before := h.db.Pos()
	h.db.Close(context.Background())
	h.app.Close()

	// Lose the machine: only the replica is left.
	for _, p := range []string{h.dbPath, h.dbPath + "-wal", h.dbPath + "-shm"} {
		os.Remove(p)
	}
	os.RemoveAll(h.db.MetaPath())
	if _, err := litestream.Restore(context.Background(), h.client, litestream.RestoreOptions{OutputPath: h.dbPath}); err != nil {
		t.Fatal(err)
	}
	h.app = openApp(t, h.dbPath, 4096)
	h.open(nil)
	insertRows(t, h, 2)
	txid := h.sync()
	if txid <= before {
		t.Fatalf("new TXID %s does not continue after the replica's %s", txid, before)
	}
	h.verifyAll()
}

// TestFreshReplica: pointing an existing database at an empty replica
// fills it from TXID 1 without a reset.
func TestFreshReplica(t *testing.T) {
	h := newHarness(t, 4096, nil)
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	for i := 0; i < 3; i++ {
		insertRows(t, h, 3)
		h.sync()
	}
	h.db.Close(context.Background())
	h.client = file.NewReplicaClient(filepath.Join(h.dir, "fresh"))
	h.open(nil)
	insertRows(t, h, 3)
	h.sync()
	// The pass merged the pending files 2..4 into one level-0 file: only
	// its end is a restore point in the new replica.
	keepReachableStates(t, h)
	h.verifyAll()
}

// TestFreshReplicaWithoutLocalHistory: the local level-0 files that an
// empty replica would need are gone, so the replica is started from a full
// image, stored as a snapshot.
func TestFreshReplicaWithoutLocalHistory(t *testing.T) {
	h := newHarness(t, 4096, nil)
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	for i := 0; i < 3; i++ {
		insertRows(t, h, 3)
		h.sync()
	}
	h.db.Close(context.Background())
	for _, txid := range []ltx.TXID{1, 2} {
		if err := os.Remove(h.db.LTXPath(txid, txid)); err != nil {
			t.Fatal(err)
		}
	}
	h.client = file.NewReplicaClient(filepath.Join(h.dir, "fresh"))
	h.states = map[ltx.TXID]string{} // earlier TXIDs cannot be in the new replica
	h.open(nil)
	insertRows(t, h, 3)
	h.sync()
	snapshots, err := litestream.LTXFileInfos(context.Background(), h.client, litestream.SnapshotLevel, 0, false)
	if err != nil || len(snapshots) != 1 || snapshots[0].MinTXID != 1 {
		t.Fatalf("want one snapshot starting at TXID 1, got %v %v", snapshots, err)
	}
	if got, want := h.restore(litestream.RestoreTarget{}), contentHash(t, h.dbPath); got != want {
		t.Fatal("restore from the fresh replica differs from the database")
	}
}

// TestLayoutMatchesUpstream checks the replica tree and the headers of the
// files we write against what Litestream v0.5 writes. One difference is
// deliberate: the first file of an empty replica (a full image) goes to
// the snapshot level only, not to level 0, so compaction does not copy the
// whole database into every level.
func TestLayoutMatchesUpstream(t *testing.T) {
	h := newHarness(t, 4096, nil)
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	for i := 0; i < 3; i++ {
		insertRows(t, h, 3)
		h.sync()
	}
	var entries []os.DirEntry
	for _, level := range []string{"9", "0"} {
		a, err := os.ReadDir(filepath.Join(h.dir, "replica", "ltx", level))
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, a...)
	}
	if len(entries) != 3 {
		t.Fatalf("replica levels 9 and 0 have %d entries, want 3", len(entries))
	}
	levelOf := func(i int) string { return map[bool]string{true: "9", false: "0"}[i == 0] }
	var prev ltx.Header
	for i, e := range entries {
		if want := ltx.FormatFilename(ltx.TXID(i+1), ltx.TXID(i+1)); e.Name() != want {
			t.Fatalf("file %d named %s, want %s", i, e.Name(), want)
		}
		local, err := os.ReadFile(filepath.Join(h.db.LTXDir(), e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		remote, err := os.ReadFile(filepath.Join(h.dir, "replica", "ltx", levelOf(i), e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if string(local) != string(remote) {
			t.Fatalf("%s: local and replica copies differ", e.Name())
		}
		hdr, _ := levelZeroHeader(t, h, ltx.TXID(i+1))
		fi, _ := e.Info()
		switch {
		case hdr.Flags != ltx.HeaderFlagNoChecksum, hdr.PreApplyChecksum != 0, hdr.NodeID != 0:
			t.Fatalf("%s: header %+v is not what upstream writes", e.Name(), hdr)
		case hdr.WALOffset < litestream.WALHeaderSize || hdr.WALSize <= 0 || hdr.WALSalt1 == 0 && hdr.WALSalt2 == 0:
			t.Fatalf("%s: WAL fields %+v", e.Name(), hdr)
		case i > 0 && hdr.WALOffset != prev.WALOffset+prev.WALSize && hdr.WALOffset != litestream.WALHeaderSize:
			t.Fatalf("%s: WAL offset %d does not continue %d+%d", e.Name(), hdr.WALOffset, prev.WALOffset, prev.WALSize)
		case fi.ModTime().UnixMilli() != hdr.Timestamp:
			t.Fatalf("%s: mtime %s is not the header timestamp", e.Name(), fi.ModTime())
		}
		prev = hdr
	}
}
