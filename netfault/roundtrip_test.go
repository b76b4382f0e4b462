package netfault_test

import (
	"context"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
)

// TestStoreRoundTrip replicates to each configured backend (directly, no
// proxy) under a Store with short schedules, and waits for the Store to
// compact level 0 into level 1, write a snapshot and apply level-0
// retention, so the restore can only use compacted files: replicate ->
// compact -> snapshot -> restore works end to end on every backend.
func TestStoreRoundTrip(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			b.require(t)
			runStoreRoundTrip(t, b.newClient(t, ""))
		})
	}
}

func runStoreRoundTrip(t *testing.T, client litestream.ReplicaClient) {
	h := newClosedHarness(t, client, func(db *litestream.DB) { db.Replica.SyncInterval = 50 * time.Millisecond })
	store := litestream.NewStore([]*litestream.DB{h.db})
	store.Logger = testLogger()
	store.CompactionIntervals = []time.Duration{time.Second}
	store.SnapshotInterval = 2 * time.Second
	store.L0Retention = time.Millisecond
	store.L0RetentionCheckInterval = time.Second
	if err := store.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := store.Close(ctx); err != nil {
			t.Errorf("close store: %v", err)
		}
	})

	h.commit(baselineRows)
	h.mustSync("baseline")
	for i := 0; i < batches; i++ {
		h.commit(rowsPerBatch)
		h.mustSync("batch")
	}
	compacted := h.db.Pos()
	ctx := context.Background()
	waitUntil(t, 30*time.Second, "level 1, a snapshot and level-0 retention to reach TXID "+compacted.String(), func() bool {
		return levelMax(t, h.client, 1) >= compacted && levelMax(t, h.client, litestream.SnapshotLevel) >= compacted &&
			levelMin(t, h.client, 0) > compacted-1 // level 0 keeps only its newest file
	})

	// A tail after the snapshot, still in level 0.
	h.commit(rowsPerBatch)
	final := h.mustSync("tail")

	plan, err := litestream.CalcRestorePlan(ctx, h.client, litestream.RestoreTarget{})
	if err != nil {
		t.Fatal(err)
	}
	if plan[0].Level != litestream.SnapshotLevel {
		t.Fatalf("restore plan starts at level %d, want the snapshot (plan: %v)", plan[0].Level, planString(plan))
	}
	out, err := h.restore(ctx, litestream.RestoreTarget{})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	h.checkRestored(out, final)

	// Point in time: the snapshot's TXID.
	snap := plan[0].MaxTXID
	if _, ok := h.states[snap]; ok {
		out, err := h.restore(ctx, litestream.RestoreTarget{TXID: snap})
		if err != nil {
			t.Fatalf("restore TXID %s: %v", snap, err)
		}
		h.checkRestored(out, snap)
	}
	h.checkVerify(ctx)
	t.Logf("restore plan: %s", planString(plan))
}

// levelMax returns the highest TXID in a level of the replica (0: none).
func levelMax(t *testing.T, c litestream.ReplicaClient, level int) ltx.TXID {
	infos := listLevel(t, c, level)
	if len(infos) == 0 {
		return 0
	}
	return infos[len(infos)-1].MaxTXID
}

// levelMin returns the lowest TXID in a level of the replica (0: none).
func levelMin(t *testing.T, c litestream.ReplicaClient, level int) ltx.TXID {
	infos := listLevel(t, c, level)
	if len(infos) == 0 {
		return 0
	}
	return infos[0].MinTXID
}

func listLevel(t *testing.T, c litestream.ReplicaClient, level int) []*ltx.FileInfo {
	t.Helper()
	infos, err := litestream.LTXFileInfos(context.Background(), c, level, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	return infos
}

func planString(plan []*ltx.FileInfo) string {
	var s string
	for _, info := range plan {
		s += " " + ltx.FormatFilename(info.MinTXID, info.MaxTXID) + "@L" + string(rune('0'+info.Level))
	}
	return s
}
