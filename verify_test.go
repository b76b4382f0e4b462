package litestream_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sqlitebackup/litestream"
)

func TestVerify(t *testing.T) {
	h := newHarness(t, 4096, nil)
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	for i := 0; i < 4; i++ {
		insertRows(t, h, 10)
		h.sync()
	}
	if _, err := h.db.Replica.Compact(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rep, err := litestream.Verify(ctx, h.client, litestream.VerifyOptions{Full: true, DBPath: h.dbPath})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.IntegrityCheck != "ok" || rep.LatestTXID != h.db.Pos() || !strings.HasPrefix(rep.LiveComparison, "identical") {
		t.Fatalf("healthy replica: %+v", rep)
	}

	// Corrupt one file: the report names it.
	p := filepath.Join(h.dir, "replica", "ltx", "0", "0000000000000002-0000000000000002.ltx")
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 0xff
	os.WriteFile(p, b, 0o644)
	rep, err = litestream.Verify(ctx, h.client, litestream.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || !strings.Contains(strings.Join(rep.Problems, "\n"), "0000000000000002-0000000000000002.ltx") {
		t.Fatalf("corrupt file not reported: %+v", rep.Problems)
	}

	// A gap in level 0 is reported too.
	os.Remove(filepath.Join(h.dir, "replica", "ltx", "0", "0000000000000003-0000000000000003.ltx"))
	rep, _ = litestream.Verify(ctx, h.client, litestream.VerifyOptions{})
	if !strings.Contains(strings.Join(rep.Problems, "\n"), "gap") {
		t.Fatalf("gap not reported: %+v", rep.Problems)
	}
}

// TestPeriodicVerify: the store's periodic verify records problems in
// metrics: 0 for a healthy replica, more once a file is corrupted.
func TestPeriodicVerify(t *testing.T) {
	h := newHarness(t, 4096, nil)
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	insertRows(t, h, 10)
	h.sync()
	store := litestream.NewStore([]*litestream.DB{h.db})
	store.CompactionIntervals, store.SnapshotInterval, store.L0Retention = nil, 0, 0
	store.VerifyInterval = 20 * time.Millisecond
	h.db.Close(context.Background())
	if err := store.Open(); err != nil {
		t.Fatal(err)
	}
	defer store.Close(context.Background())
	labels := map[string]string{"db": h.dbPath}
	waitFor(t, "a verify run", func() bool { return counterOrZero("litestream_verify_last_run_timestamp_seconds", labels) > 0 })
	if got := counterOrZero("litestream_verify_problems", labels); got != 0 {
		t.Fatalf("%v problems on a healthy replica", got)
	}
	p := filepath.Join(h.dir, "replica", "ltx", "9", "0000000000000001-0000000000000001.ltx")
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 0xff
	os.WriteFile(p, b, 0o644)
	waitFor(t, "the corruption to be reported", func() bool { return counterOrZero("litestream_verify_problems", labels) > 0 })
}
