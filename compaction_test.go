package litestream_test

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
)

// allFiles lists every level of the replica.
func allFiles(t *testing.T, h *harness) []*ltx.FileInfo {
	t.Helper()
	var all []*ltx.FileInfo
	for level := 0; level <= litestream.SnapshotLevel; level++ {
		infos, err := litestream.LTXFileInfos(context.Background(), h.client, level, 0, true)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, infos...)
	}
	return all
}

// TestCompactionModel runs random writes interleaved with random
// compactions, snapshots and retention runs, and checks after each round
// that every restore point still in the replica gives exactly the
// content committed at that TXID, and that the newest snapshot and every
// point after the retention floor stay restorable.
func TestCompactionModel(t *testing.T) {
	h := newHarness(t, 4096, nil)
	mustExec(t, h.app, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, data BLOB)")
	mustExec(t, h.app, "CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)")
	h.sync()
	r := h.db.Replica
	ctx := context.Background()
	w := &workload{t: t, h: h, rng: rand.New(rand.NewPCG(3, 3))}
	var floor ltx.TXID
	for round := 0; round < 25; round++ {
		w.step()
		h.sync()
		switch w.rng.IntN(6) {
		case 0, 1:
			if _, err := r.Compact(ctx, 1); err != nil {
				t.Fatal(err)
			}
		case 2:
			if _, err := r.Compact(ctx, 1); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Compact(ctx, 2); err != nil {
				t.Fatal(err)
			}
		case 3:
			info, err := r.Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info == nil { // nothing to do only if the newest snapshot is current
				snaps, err := litestream.LTXFileInfos(ctx, h.client, litestream.SnapshotLevel, 0, false)
				if err != nil || len(snaps) == 0 || snaps[len(snaps)-1].MaxTXID != h.db.Pos() {
					t.Fatalf("no snapshot written, newest %v (%v), want 1-%s", snaps, err, h.db.Pos())
				}
			} else if info.MinTXID != 1 || info.MaxTXID != h.db.Pos() {
				t.Fatalf("snapshot %+v, want 1-%s", info, h.db.Pos())
			}
		case 4:
			// Keep only the newest snapshot: everything older is outside
			// the window.
			if err := r.EnforceRetention(ctx, time.Now().Add(time.Hour), litestream.RetentionPolicy{SnapshotRetention: time.Minute, DeleteRemote: true}); err != nil {
				t.Fatal(err)
			}
			snaps, _ := litestream.LTXFileInfos(ctx, h.client, litestream.SnapshotLevel, 0, false)
			if len(snaps) > 1 {
				t.Fatalf("%d snapshots left after retention", len(snaps))
			}
			if len(snaps) == 1 {
				floor = snaps[0].MaxTXID
			}
		case 5:
			if err := r.EnforceL0Retention(ctx, time.Now().Add(time.Hour), time.Minute, true); err != nil {
				t.Fatal(err)
			}
		}
		if round%6 == 5 || round == 24 { // every restore point costs a restore under -race
			checkRestorePoints(t, h, floor)
		} else if got := h.restore(litestream.RestoreTarget{}); got != h.states[h.db.Pos()] {
			t.Fatalf("round %d: latest restore differs", round)
		}
	}
}

// checkRestorePoints restores the end TXID of every file at or after
// floor and the latest state, comparing with the recorded content.
func checkRestorePoints(t *testing.T, h *harness, floor ltx.TXID) {
	t.Helper()
	latest := h.db.Pos()
	if got := h.restore(litestream.RestoreTarget{}); got != h.states[latest] {
		t.Fatalf("latest restore differs from TXID %s", latest)
	}
	checked := map[ltx.TXID]bool{}
	for _, info := range allFiles(t, h) {
		txid := info.MaxTXID
		if txid < floor || checked[txid] {
			continue
		}
		checked[txid] = true
		if got := h.restore(litestream.RestoreTarget{TXID: txid}); got != h.states[txid] {
			t.Fatalf("restore of TXID %s (end of level %d file) differs from what was committed", txid, info.Level)
		}
	}
}

// TestCompactedTimestampsAndRestoreAfterL0Retention: compacted files carry
// their newest source's timestamp, and restore by timestamp still picks
// the last state at or before it once level-0 files are gone (upstream
// bug #1084).
func TestCompactedTimestampsAndRestoreAfterL0Retention(t *testing.T) {
	h := newHarness(t, 4096, nil)
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	h.sync()
	var points []time.Time
	var txids []ltx.TXID
	for i := 0; i < 4; i++ {
		insertRows(t, h, 5)
		txids = append(txids, h.sync())
		infos, _ := litestream.LTXFileInfos(context.Background(), h.client, 0, txids[i], true)
		points = append(points, infos[0].CreatedAt)
		// Each group of syncs becomes one level-1 file.
		if _, err := h.db.Replica.Compact(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
	}
	l1, _ := litestream.LTXFileInfos(context.Background(), h.client, 1, 0, true)
	l0, _ := litestream.LTXFileInfos(context.Background(), h.client, 0, 0, true)
	for _, f := range l1 {
		for _, src := range l0 {
			if src.MaxTXID == f.MaxTXID && !src.CreatedAt.Equal(f.CreatedAt) {
				t.Fatalf("level-1 file %s has timestamp %s, its newest source %s", ltx.FormatFilename(f.MinTXID, f.MaxTXID), f.CreatedAt, src.CreatedAt)
			}
		}
	}
	if err := h.db.Replica.EnforceL0Retention(context.Background(), time.Now().Add(time.Hour), time.Minute, true); err != nil {
		t.Fatal(err)
	}
	l0, _ = litestream.LTXFileInfos(context.Background(), h.client, 0, 0, false)
	if len(l0) != 1 {
		t.Fatalf("%d level-0 files left, want only the newest", len(l0))
	}
	for i, ts := range points {
		if got := h.restore(litestream.RestoreTarget{Timestamp: ts}); got != h.states[txids[i]] {
			t.Fatalf("restore at %s (TXID %s) after level-0 retention differs", ts, txids[i])
		}
	}
}

// TestStoreSchedules runs a Store with short intervals against a live
// write load and checks that levels and snapshots appear and restore.
func TestStoreSchedules(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	app := openApp(t, dbPath, 4096)
	mustExec(t, app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	h := &harness{t: t, dir: dir, dbPath: dbPath, app: app, states: map[ltx.TXID]string{}, ctx: context.Background()}
	h.client = newFileClient(filepath.Join(dir, "replica"))
	db := litestream.NewDB(dbPath)
	db.MonitorInterval = 10 * time.Millisecond
	r := litestream.NewReplica(db, h.client)
	r.SyncInterval = 10 * time.Millisecond
	store := litestream.NewStore([]*litestream.DB{db})
	store.CompactionIntervals = []time.Duration{50 * time.Millisecond, 200 * time.Millisecond}
	store.SnapshotInterval = 400 * time.Millisecond
	store.L0RetentionCheckInterval = 50 * time.Millisecond
	store.L0Retention = time.Millisecond
	if err := store.Open(); err != nil {
		t.Fatal(err)
	}
	defer store.Close(context.Background())
	deadline := time.Now().Add(20 * time.Second)
	for {
		mustExec(t, app, "INSERT INTO t (v) VALUES (randomblob(200))")
		files := allFiles(t, h)
		levels := map[int]bool{}
		for _, f := range files {
			levels[f.Level] = true
		}
		if levels[1] && levels[2] && levels[litestream.SnapshotLevel] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("levels present after 20s: %v", levels)
		}
		time.Sleep(20 * time.Millisecond) // pace the load; not a synchronisation
	}
	if err := db.SyncAndWait(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := contentHash(t, dbPath)
	// Stop the schedulers first: retention at 1ms could delete a file
	// between planning the restore and reading it.
	if err := store.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := h.restore(litestream.RestoreTarget{}); got != want {
		t.Fatal("restore from a compacted replica differs from the database")
	}
}
