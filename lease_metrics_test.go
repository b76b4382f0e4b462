package litestream_test

import (
	"context"
	"path/filepath"
	"testing"
)

// TestLeaseMetrics: acquisitions, refusals and the release are counted
// per database, and litestream_lease_held follows the holder.
func TestLeaseMetrics(t *testing.T) {
	ctx := context.Background()
	replicaDir := filepath.Join(t.TempDir(), "replica")
	a := newLeaseSide(t, "a", replicaDir, nil)
	labels := func(s *leaseSide, op, result string) map[string]string {
		return map[string]string{"db": s.path, "op": op, "result": result}
	}
	a.insert(t, 1)
	if err := a.db.SyncAndWait(ctx); err != nil {
		t.Fatal(err)
	}
	if v := metricValue(t, "litestream_lease_operation_total", labels(a, "acquire", "ok")); v != 1 {
		t.Fatalf("holder's acquisitions = %v, want 1", v)
	}
	if v := metricValue(t, "litestream_lease_held", map[string]string{"db": a.path}); v != 1 {
		t.Fatalf("litestream_lease_held of the holder = %v, want 1", v)
	}

	b := newLeaseSide(t, "b", replicaDir, nil)
	b.insert(t, 1)
	if err := b.db.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	wantLeaseHeld(t, "upload", b.db.Replica.Sync(ctx), a.path)
	if v := metricValue(t, "litestream_lease_operation_total", labels(b, "acquire", "held")); v < 1 {
		t.Fatalf("refused acquisitions = %v, want at least 1 (the replica's own loop may try too)", v)
	}
	if v := metricValue(t, "litestream_lease_held", map[string]string{"db": b.path}); v != 0 {
		t.Fatalf("litestream_lease_held of the refused replicator = %v, want 0", v)
	}

	if err := a.db.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if v := metricValue(t, "litestream_lease_operation_total", labels(a, "release", "ok")); v != 1 {
		t.Fatalf("releases = %v, want 1", v)
	}
	if _, ok := gather("litestream_lease_held", map[string]string{"db": a.path}); ok {
		t.Fatal("a closed database still reports litestream_lease_held")
	}
}
