package main

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/sqlitebackup/litestream/internal/v3fixture"
)

// TestRestoreV3Replica restores a replica written in the Litestream v0.3
// layout through the CLI, latest and by timestamp.
func TestRestoreV3Replica(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "replica")
	rep := v3fixture.New(t, root, filepath.Join(dir, "app.db"), "00000000000000c3", 4096, time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC))
	rep.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	rep.Snapshot()
	rep.Exec("INSERT INTO t (v) VALUES (randomblob(10000)), (randomblob(10000))")
	first := rep.Ship()
	rep.Checkpoint()
	rep.Exec("INSERT INTO t (v) VALUES (randomblob(10000))")
	rep.Ship()

	out := filepath.Join(dir, "out.db")
	if code, _, stderr := runCLI(t, "restore", "-integrity-check", "full", "-o", out, "file://"+root); code != 0 {
		t.Fatalf("restore: %s", stderr)
	}
	if n := queryInt(t, out, "SELECT COUNT(*) FROM t"); n != 3 {
		t.Fatalf("restored %d rows, want 3", n)
	}
	at := filepath.Join(dir, "at.db")
	if code, _, stderr := runCLI(t, "restore", "-timestamp", first.Format(time.RFC3339), "-o", at, "file://"+root); code != 0 {
		t.Fatalf("restore -timestamp: %s", stderr)
	}
	if n := queryInt(t, at, "SELECT COUNT(*) FROM t"); n != 2 {
		t.Fatalf("restored %d rows at %s, want 2", n, first)
	}
	integrityOK(t, at)
}
