// Package v3fixture writes replicas in the Litestream v0.3 layout from a
// live SQLite database, for tests of the v0.3 restore path: snapshots are
// copies of the database file after a TRUNCATE checkpoint, WAL segments
// are the bytes SQLite appended to its WAL since the last segment, each
// ending on a commit, both stored as LZ4 frames. Every file gets an mtime
// from a controlled clock, so timestamp restores can be checked exactly.
package v3fixture

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pierrec/lz4/v4"
	_ "modernc.org/sqlite"

	"github.com/sqlitebackup/litestream"
)

// Replica is a database being backed up the v0.3 way.
type Replica struct {
	t      testing.TB
	Root   string // replica directory
	DBPath string
	Gen    string // current generation
	Index  int    // current WAL index
	DB     *sql.DB

	// Clock is the mtime of the next file written; it advances by Step
	// after each file.
	Clock time.Time
	Step  time.Duration

	walOff  int64 // bytes of the current WAL already shipped
	snapped bool  // the generation has a snapshot, so WAL bytes are shipped
}

// NewGeneration starts generation gen; call Snapshot next.
func (r *Replica) NewGeneration(gen string) {
	r.Gen, r.snapped = gen, false
}

// New creates a WAL-mode database at dbPath whose checkpoints only this
// package runs, backed up under root in generation gen.
func New(t testing.TB, root, dbPath, gen string, pageSize int, clock time.Time) *Replica {
	t.Helper()
	r := &Replica{t: t, Root: root, DBPath: dbPath, Gen: gen, Clock: clock, Step: time.Minute}
	r.open(pageSize)
	t.Cleanup(func() { r.DB.Close() })
	return r
}

func (r *Replica) open(pageSize int) {
	r.t.Helper()
	dsn := fmt.Sprintf("%s?_pragma=page_size(%d)&_pragma=journal_mode(wal)&_pragma=wal_autocheckpoint(0)", r.DBPath, pageSize)
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		r.t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	if _, err := db.Exec("SELECT 1"); err != nil {
		r.t.Fatal(err)
	}
	r.DB = db
}

// Exec runs a statement on the database.
func (r *Replica) Exec(q string, args ...any) {
	r.t.Helper()
	if _, err := r.DB.Exec(q, args...); err != nil {
		r.t.Fatalf("%s: %v", q, err)
	}
}

// Snapshot checkpoints the WAL away (starting a new WAL index if the
// current one has content), copies the database file as snapshot
// <index>, and returns the snapshot's time.
func (r *Replica) Snapshot() time.Time {
	r.t.Helper()
	r.Checkpoint()
	var pageSize int
	if err := r.DB.QueryRow("PRAGMA page_size").Scan(&pageSize); err != nil {
		r.t.Fatal(err)
	}
	// The connection must be closed before the file is read: closing any
	// descriptor of the file drops this process's SQLite locks on it.
	r.DB.Close()
	data, err := os.ReadFile(r.DBPath)
	if err != nil {
		r.t.Fatal(err)
	}
	r.open(pageSize)
	r.snapped = true
	return r.write(litestream.V3SnapshotPath(r.Root, r.Gen, r.Index), data)
}

// Ship writes the WAL bytes appended since the last segment as a new
// segment and returns its time. It does nothing (and returns the zero
// time) if nothing was appended.
func (r *Replica) Ship() time.Time {
	r.t.Helper()
	data, err := os.ReadFile(r.DBPath + "-wal")
	if err != nil && !os.IsNotExist(err) {
		r.t.Fatal(err)
	}
	if int64(len(data)) <= r.walOff {
		return time.Time{}
	}
	ts := r.write(litestream.V3WALSegmentPath(r.Root, r.Gen, r.Index, r.walOff), data[r.walOff:])
	r.walOff = int64(len(data))
	return ts
}

// Checkpoint ships what is left of the WAL (if the generation has a
// snapshot: before it, the WAL belongs to no backup), then truncates it
// with a TRUNCATE checkpoint; the next write starts WAL index+1.
func (r *Replica) Checkpoint() {
	r.t.Helper()
	if r.snapped {
		r.Ship()
	}
	var busy, log, done int
	if err := r.DB.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &log, &done); err != nil || busy != 0 {
		r.t.Fatalf("checkpoint: busy=%d %v", busy, err)
	}
	if r.walOff > 0 {
		r.Index++
		r.walOff = 0
	}
}

// write stores data LZ4-compressed at p with the clock's time as mtime.
func (r *Replica) write(p string, data []byte) time.Time {
	r.t.Helper()
	p = filepath.FromSlash(p)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	f, err := os.Create(p)
	if err != nil {
		r.t.Fatal(err)
	}
	zw := lz4.NewWriter(f)
	if _, err := zw.Write(data); err != nil {
		r.t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		r.t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		r.t.Fatal(err)
	}
	ts := r.Clock
	if err := os.Chtimes(p, ts, ts); err != nil {
		r.t.Fatal(err)
	}
	r.Clock = r.Clock.Add(r.Step)
	return ts
}
