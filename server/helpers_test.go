package server

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/file"
)

// testDB is a real database with a file replica, replicated by a Store.
type testDB struct {
	db      *litestream.DB
	app     *sql.DB
	path    string
	replica string
}

func newTestDB(t *testing.T, dir, name string) *testDB {
	t.Helper()
	path := filepath.Join(dir, name)
	app, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(wal)")
	if err != nil {
		t.Fatal(err)
	}
	app.SetMaxOpenConns(1)
	t.Cleanup(func() { app.Close() })
	if _, err := app.Exec("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
		t.Fatal(err)
	}
	return &testDB{db: newDB(path, filepath.Join(dir, name+"-replica")), app: app, path: path, replica: filepath.Join(dir, name+"-replica")}
}

func newDB(path, replicaDir string) *litestream.DB {
	db := litestream.NewDB(path)
	db.MonitorInterval = 10 * time.Millisecond
	r := litestream.NewReplica(db, file.NewReplicaClient(replicaDir))
	r.SyncInterval = 10 * time.Millisecond
	return db
}

func (d *testDB) write(t *testing.T) {
	t.Helper()
	if _, err := d.app.Exec("INSERT INTO t (v) VALUES (randomblob(500))"); err != nil {
		t.Fatal(err)
	}
}

// openStore opens a Store over dbs and closes it at the end of the test.
func openStore(t *testing.T, dbs ...*litestream.DB) *litestream.Store {
	t.Helper()
	s := litestream.NewStore(dbs)
	s.SnapshotInterval = 0
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Close(ctx)
	})
	return s
}

// eventually polls cond (bounded) until it holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
