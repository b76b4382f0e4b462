package litestream_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/file"
)

func openApp(t testing.TB, path string, pageSize int) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(wal)"+fmt.Sprintf("&_pragma=page_size(%d)", pageSize))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustExec(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// contentHash hashes every row of every user table, in order.
func contentHash(t testing.TB, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check on %s: %q %v", path, check, err)
	}
	rows, err := db.Query("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	h := sha256.New()
	for _, tbl := range tables {
		fmt.Fprintf(h, "table %s\n", tbl)
		rows, err := db.Query(fmt.Sprintf("SELECT * FROM %q ORDER BY 1", tbl))
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(h, "%v\n", vals)
		}
		rows.Close()
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func TestQuickRoundTrip(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	app := openApp(t, dbPath, 4096)
	mustExec(t, app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
	db := litestream.NewDB(dbPath)
	db.MonitorInterval = 0
	client := file.NewReplicaClient(filepath.Join(dir, "replica"))
	litestream.NewReplica(db, client)
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		mustExec(t, app, "INSERT INTO t (v) VALUES (?)", fmt.Sprintf("row %d %s", i, time.Now()))
		if err := db.SyncAndWait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := contentHash(t, dbPath)
	if err := db.Close(ctx); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.db")
	if _, err := litestream.Restore(ctx, client, litestream.RestoreOptions{OutputPath: out}); err != nil {
		t.Fatal(err)
	}
	if got := contentHash(t, out); got != want {
		t.Fatalf("content mismatch")
	}
}
