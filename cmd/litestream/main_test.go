package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// TestMain lets the test binary act as the litestream command in a child
// process, so crash tests kill a real process without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("LITESTREAM_TEST_AS_MAIN") == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// runCLI runs a command in-process and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func openApp(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(wal)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// queryInt runs a one-value query against a database file.
func queryInt(t *testing.T, path, q string) int {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("%s on %s: %v", q, path, err)
	}
	return n
}

func integrityOK(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var s string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&s); err != nil || s != "ok" {
		t.Fatalf("integrity_check %s: %q %v", path, s, err)
	}
}

func writeConfig(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "litestream.yml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReplicateOnceAndRestore(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	app := openApp(t, dbPath)
	mustExec(t, app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
	mustExec(t, app, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 1000) INSERT INTO t (v) SELECT 'row' FROM n")
	replicaURL := "file://" + filepath.Join(dir, "replica")
	if code, _, stderr := runCLI(t, "replicate", "-once", "-config", writeConfig(t, dir, fmt.Sprintf("dbs:\n  - path: %s\n    replica:\n      url: %s\n", dbPath, replicaURL))); code != 0 {
		t.Fatalf("replicate -once: %d %s", code, stderr)
	}
	out := filepath.Join(dir, "out.db")
	code, stdout, stderr := runCLI(t, "restore", "-json", "-integrity-check", "full", "-o", out, replicaURL)
	if code != 0 {
		t.Fatalf("restore: %d %s", code, stderr)
	}
	if !strings.Contains(stdout, `"txid": "0000000000000001"`) {
		t.Fatalf("restore -json output: %s", stdout)
	}
	if n := queryInt(t, out, "SELECT COUNT(*) FROM t"); n != 1000 {
		t.Fatalf("restored %d rows, want 1000", n)
	}
	// The user's schema is left alone: no tables of ours.
	if n := queryInt(t, out, "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE '_litestream%'"); n != 0 {
		t.Fatalf("restored database has %d litestream tables", n)
	}
	// A second restore to the same path needs -force.
	if code, _, stderr := runCLI(t, "restore", "-o", out, replicaURL); code == 0 || !strings.Contains(stderr, "already exists") {
		t.Fatalf("restore over existing output: %d %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, "restore", "-force", "-o", out, replicaURL); code != 0 {
		t.Fatalf("restore -force: %s", stderr)
	}
	if code, _, _ := runCLI(t, "restore", "-if-db-not-exists", "-o", out, replicaURL); code != 0 {
		t.Fatal("restore -if-db-not-exists on an existing output must succeed")
	}
	// Dry run prints the plan and writes nothing.
	dry := filepath.Join(dir, "dry.db")
	code, stdout, _ = runCLI(t, "restore", "-dry-run", "-o", dry, replicaURL)
	if code != 0 || !strings.Contains(stdout, "0000000000000001-0000000000000001.ltx") {
		t.Fatalf("dry run: %d %s", code, stdout)
	}
	if _, err := os.Stat(dry); !os.IsNotExist(err) {
		t.Fatal("dry run wrote an output file")
	}
}

func TestRestoreFromConfigByTimestampAndTXID(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	app := openApp(t, dbPath)
	mustExec(t, app, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
	t.Setenv("REPLICA_DIR", filepath.Join(dir, "replica"))
	cfg := writeConfig(t, dir, fmt.Sprintf("dbs:\n  - path: %s\n    replica:\n      type: file\n      path: ${REPLICA_DIR}\n", dbPath))
	for i := 0; i < 3; i++ {
		mustExec(t, app, "INSERT INTO t DEFAULT VALUES")
		if code, _, stderr := runCLI(t, "replicate", "-once", "-config", cfg); code != 0 {
			t.Fatalf("replicate -once: %s", stderr)
		}
	}
	out := filepath.Join(dir, "at2.db")
	if code, _, stderr := runCLI(t, "restore", "-config", cfg, "-txid", "0000000000000002", "-o", out, dbPath); code != 0 {
		t.Fatalf("restore -txid: %s", stderr)
	}
	if n := queryInt(t, out, "SELECT COUNT(*) FROM t"); n != 2 {
		t.Fatalf("TXID 2 has %d rows, want 2", n)
	}
	code, _, stderr := runCLI(t, "restore", "-config", cfg, "-timestamp", "2001-01-01T00:00:00Z", "-o", filepath.Join(dir, "old.db"), dbPath)
	if code == 0 || !strings.Contains(stderr, "before the first backup") {
		t.Fatalf("restore before first backup: %d %s", code, stderr)
	}
	code, _, stderr = runCLI(t, "restore", "-config", cfg, "-txid", "00000000000000ff", "-o", filepath.Join(dir, "far.db"), dbPath)
	if code == 0 || !strings.Contains(stderr, "beyond the replica's last TXID") {
		t.Fatalf("restore beyond last TXID: %d %s", code, stderr)
	}
}

func openAppJournal(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=journal_mode(delete)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}
