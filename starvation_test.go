package litestream_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sqlitebackup/litestream"
)

// TestApplicationNotStarvedByCheckpoints: with checkpoints due after
// nearly every sync, an application committing in a tight loop through
// SQLite's own busy handler must never time out waiting for the write
// lock (RELIABILITY.md, defect 12). It guards against gross starvation
// (a lock held for most of a second); the specific cause found, a full
// image written under the lock, is TestFullImageWithoutWriteLock's.
func TestApplicationNotStarvedByCheckpoints(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	openApp(t, path, 4096)
	app, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(1000)")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	app.SetMaxOpenConns(1)
	mustExec(t, app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")

	db := litestream.NewDB(path)
	db.MonitorInterval = time.Millisecond
	db.MinCheckpointPageN = 4
	r := litestream.NewReplica(db, newFileClient(filepath.Join(dir, "replica")))
	r.SyncInterval = time.Millisecond
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())

	commits := 3000
	if testing.Short() {
		commits = 1000
	}
	var busy int
	var slowest time.Duration
	for i := 0; i < commits; i++ {
		start := time.Now()
		_, err := app.Exec("INSERT INTO t (v) VALUES (randomblob(3000))")
		slowest = max(slowest, time.Since(start))
		if err != nil {
			if !strings.Contains(err.Error(), "locked") && !strings.Contains(err.Error(), "BUSY") {
				t.Fatal(err)
			}
			busy++
		}
	}
	t.Logf("%d commits, %d busy, slowest %v", commits, busy, slowest)
	if busy > 0 {
		t.Fatalf("the application timed out waiting for the write lock %d times in %d commits", busy, commits)
	}
	if err := db.SyncAndWait(context.Background()); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := app.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != commits {
		t.Fatalf("count = %d, %v; want %d", n, err, commits)
	}
}

// TestSyncDoesNotChaseWriter: one sync writes one level-0 file even while
// the application keeps committing. Chasing the WAL's end instead (a
// reused WAL file does not grow, so its size bounds nothing) wrote a file
// per commit for as long as the writer kept up and never reached the
// checkpoint, so the WAL grew without bound.
func TestSyncDoesNotChaseWriter(t *testing.T) {
	h := newHarness(t, 4096, func(db *litestream.DB) {
		db.MinCheckpointPageN, db.CheckpointInterval = 0, 0
	})
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	// A large WAL, checkpointed: the application's next commits reuse the
	// file from its start, so its size no longer bounds a scan.
	for i := 0; i < 20; i++ {
		mustExec(t, h.app, "INSERT INTO t (v) VALUES (randomblob(100000))")
	}
	h.sync()
	if err := h.db.Checkpoint(h.ctx, litestream.CheckpointPassive); err != nil {
		t.Fatal(err)
	}
	mustExec(t, h.app, "DELETE FROM t")
	h.sync()
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if _, err := h.app.Exec("INSERT INTO t (v) VALUES (randomblob(100))"); err != nil {
				done <- err
				return
			}
		}
	}()
	for i := 0; i < 50; i++ {
		before := h.db.Pos()
		if err := h.db.Sync(h.ctx); err != nil {
			t.Fatal(err)
		}
		if got := h.db.Pos(); got > before+1 {
			t.Fatalf("sync %d wrote TXIDs %s..%s: one sync must write one level-0 file", i, before+1, got)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	h.sync()
	h.verifyAll()
}
