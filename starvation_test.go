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
// lock (RELIABILITY.md, defect 12). Its busy timeout is short, so a
// lock held most of the time shows up as SQLITE_BUSY within the run.
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
