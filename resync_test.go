package litestream_test

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/sqlitebackup/litestream"
)

// lockedBuffer collects log output written from the engine's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fillRows inserts n rows of 1 KiB in one transaction.
func fillRows(t *testing.T, app *sql.DB, n int) {
	t.Helper()
	mustExec(t, app, fillSQL, n)
}

const fillSQL = "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?) INSERT INTO t (v) SELECT randomblob(1024) FROM s"

func countRows(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// commitDuring returns an OnProgress hook that commits rows through app
// when a level-0 file or full image of more than 256 pages starts,
// once, and records the commit's error. The engine is mid-copy then; an
// application blocked by our write lock would fail after its busy timeout.
func commitDuring(app *sql.DB, op string, rows int, done *bool, commitErr *error) func(litestream.ProgressEvent) {
	return func(ev litestream.ProgressEvent) {
		if *done || ev.Op != op || ev.TotalPages <= 256 || ev.Pages > 0 {
			return
		}
		*done = true
		_, *commitErr = app.Exec(fillSQL, rows)
	}
}

// TestFullImageWithoutWriteLock: a full image is written after the write
// lock is released, so the application commits meanwhile, and the image
// holds exactly the state at the WAL end it was planned at.
func TestFullImageWithoutWriteLock(t *testing.T) {
	// Every level-0 file is uploaded on its own, so the full image's TXID
	// is a restore point even when the commit made during it is written
	// in the same sync (an upload pass merges pending files otherwise).
	defer litestream.SetMaxMergeBytes(1)()
	h := newHarness(t, 4096, nil)
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	fillRows(t, h.app, 2000)
	last := h.sync()
	if err := h.db.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A WAL restart while stopped: the next level-0 file is a full image.
	mustExec(t, h.app, "PRAGMA wal_checkpoint(TRUNCATE)")
	mustExec(t, h.app, "INSERT INTO t (v) VALUES (randomblob(1024))")
	before := countRows(t, h.dbPath)

	app, err := sql.Open("sqlite", h.dbPath+"?_pragma=busy_timeout(2000)")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	var done bool
	var commitErr error
	h.open(func(db *litestream.DB) { db.OnProgress = commitDuring(app, "full image", 1, &done, &commitErr) })
	if err := h.db.Sync(h.ctx); err != nil {
		t.Fatal(err)
	}
	if !done {
		t.Fatal("no full image of more than 256 pages was written")
	}
	if commitErr != nil {
		t.Fatalf("the application could not commit while the full image was written: %v", commitErr)
	}
	h.sync()
	image := last + 1
	out := h.restoreFile(litestream.RestoreTarget{TXID: image})
	if got := countRows(t, out); got != before {
		t.Fatalf("full image TXID %s holds %d rows, want the %d committed before it", image, got, before)
	}
	if got, want := countRows(t, h.restoreFile(litestream.RestoreTarget{})), before+1; got != want {
		t.Fatalf("latest restore holds %d rows, want %d", got, want)
	}
	h.verifyAll()
}

// TestUnlockedCopyNoticesWALRestart: a full image is copied without
// the write lock while the WAL is fully backfilled, so our reader reads
// the database file alone and does not stop the application from
// restarting the WAL over the frames being copied. The copy must notice
// and start over under the lock, never ship an overwritten frame.
func TestUnlockedCopyNoticesWALRestart(t *testing.T) {
	h := newHarness(t, 4096, nil)
	mustExec(t, h.app, "PRAGMA wal_autocheckpoint = 0")
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	last := h.sync()
	if err := h.db.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ { // many transactions, each filling new leaf pages
		fillRows(t, h.app, 20)
	}
	mustExec(t, h.app, "PRAGMA wal_checkpoint(PASSIVE)") // backfills all, keeps the frames
	before := countRows(t, h.dbPath)

	logs := &lockedBuffer{}
	var done bool
	var commitErr error
	h.open(func(db *litestream.DB) {
		db.Logger = slog.New(slog.NewTextHandler(logs, nil))
		db.OnProgress = commitDuring(h.app, "full image", 60, &done, &commitErr)
	})
	if err := h.db.Sync(h.ctx); err != nil {
		t.Fatal(err)
	}
	if !done || commitErr != nil {
		t.Fatalf("commit during the copy: ran %v, error %v", done, commitErr)
	}
	if !strings.Contains(logs.String(), "copying again under it") {
		t.Fatalf("the copy did not notice the WAL restart; log:\n%s", logs.String())
	}
	h.sync()
	// Redone under the lock, the image includes the commit made meanwhile.
	if got := countRows(t, h.restoreFile(litestream.RestoreTarget{TXID: last + 1})); got != before+60 {
		t.Fatalf("TXID %s holds %d rows, want %d", last+1, got, before+60)
	}
	if got := countRows(t, h.restoreFile(litestream.RestoreTarget{})); got != before+60 {
		t.Fatalf("latest restore holds %d rows, want %d", got, before+60)
	}
	h.verifyAll()
}
