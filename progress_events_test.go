package litestream_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sqlitebackup/litestream"
)

// eventLog collects progress events by operation; the engine may report
// from several goroutines.
type eventLog struct {
	mu   sync.Mutex
	byOp map[string][]litestream.ProgressEvent
}

func (l *eventLog) add(e litestream.ProgressEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.byOp[e.Op] = append(l.byOp[e.Op], e)
}

// check verifies op's runs (one after another, never overlapping): each
// starts at zero, never goes backwards, and ends Finished with every
// known total reached.
func (l *eventLog) check(t *testing.T, op string, wantPages bool) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	evs := l.byOp[op]
	if len(evs) == 0 {
		t.Fatalf("no %q events", op)
	}
	var prev *litestream.ProgressEvent
	runs := 0
	for i := range evs {
		e := &evs[i]
		if prev == nil || prev.Finished {
			runs++
			if e.Bytes != 0 || e.Pages != 0 || e.Finished {
				t.Fatalf("%s run %d starts at %+v", op, runs, *e)
			}
		} else if e.Bytes < prev.Bytes || e.Pages < prev.Pages {
			t.Fatalf("%s went backwards: %+v after %+v", op, *e, *prev)
		}
		prev = e
	}
	last := evs[len(evs)-1]
	if !last.Finished || last.TotalBytes == 0 || last.Bytes != last.TotalBytes {
		t.Fatalf("%s ends at %+v", op, last)
	}
	if wantPages && (last.TotalPages == 0 || last.Pages != last.TotalPages) {
		t.Fatalf("%s ends at %+v: pages", op, last)
	}
	t.Logf("%s: %d runs, %d events, last %+v", op, runs, len(evs), last)
}

// TestProgressEvents: the hook sees the full image, the upload, a
// compaction, a snapshot and a restore from start to finish, bytes and
// pages reaching their totals.
func TestProgressEvents(t *testing.T) {
	events := &eventLog{byOp: map[string][]litestream.ProgressEvent{}}
	h := newHarness(t, 4096, func(db *litestream.DB) { db.OnProgress = events.add })
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	// 1.5 MB in one transaction: several events per operation.
	mustExec(t, h.app, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 3000) INSERT INTO t (v) SELECT randomblob(500) FROM n")
	h.sync()
	events.check(t, "full image", true)
	events.check(t, "upload", false)

	insertRows(t, h, 10)
	h.sync()
	events.check(t, "level-0", true)
	ctx := context.Background()
	if _, err := h.db.Replica.Compact(ctx, 1); err != nil {
		t.Fatal(err)
	}
	events.check(t, "compaction", false)
	if _, err := h.db.Replica.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	events.check(t, "snapshot", false)

	out := filepath.Join(t.TempDir(), "out.db")
	if _, err := litestream.Restore(ctx, h.client, litestream.RestoreOptions{OutputPath: out, OnProgress: events.add}); err != nil {
		t.Fatal(err)
	}
	events.check(t, "restore", true)
	if got, want := contentHash(t, out), contentHash(t, h.dbPath); got != want {
		t.Fatal("restored database differs")
	}
}
