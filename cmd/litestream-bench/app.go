package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite"
)

// app is the application side: one connection to a WAL-mode database,
// with the settings Litestream recommends (synchronous=NORMAL, a busy
// timeout) and SQLite's default autocheckpoint.
type app struct {
	path string
	db   *sql.DB
}

func openApp(path string) (*app, error) {
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(wal)&_pragma=synchronous(normal)")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
		db.Close()
		return nil, fmt.Errorf("create table in %s: %w", path, err)
	}
	return &app{path: path, db: db}, nil
}

func (a *app) close() error { return a.db.Close() }

// newMarker returns 24 bytes that occur nowhere else: a fixed prefix and
// 16 random bytes. Written as a blob, they land verbatim in one page.
func newMarker() []byte {
	m := make([]byte, 24)
	copy(m, "lsbench!")
	_, _ = rand.Read(m[8:])
	return m
}

// insert commits one row holding v and returns when the commit returned.
func (a *app) insert(v []byte) (time.Time, error) {
	if _, err := a.db.Exec("INSERT INTO t (v) VALUES (?)", v); err != nil {
		return time.Time{}, fmt.Errorf("insert into %s: %w", a.path, err)
	}
	return time.Now(), nil
}

// bulk commits one transaction of about size bytes of random data (rows
// of 4000 bytes: incompressible, one overflow page each at 4 KiB pages)
// plus the marker row.
func (a *app) bulk(size int64, marker []byte) (time.Time, error) {
	tx, err := a.db.Begin()
	if err != nil {
		return time.Time{}, err
	}
	defer tx.Rollback()
	rows := max(size/4000, 1)
	if _, err := tx.Exec(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < ?)
		INSERT INTO t (v) SELECT randomblob(4000) FROM c`, rows); err != nil {
		return time.Time{}, fmt.Errorf("bulk insert into %s: %w", a.path, err)
	}
	if marker != nil {
		if _, err := tx.Exec("INSERT INTO t (v) VALUES (?)", marker); err != nil {
			return time.Time{}, err
		}
	}
	if err := tx.Commit(); err != nil {
		return time.Time{}, fmt.Errorf("commit bulk transaction in %s: %w", a.path, err)
	}
	return time.Now(), nil
}

// createBig writes a database of about size bytes quickly: rollback
// journal and no syncs while filling, then WAL mode, as an existing
// production database would be found.
func createBig(path string, size int64) error {
	db, err := sql.Open("sqlite", path+"?_pragma=journal_mode(delete)&_pragma=synchronous(off)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	const chunk = 64 << 20
	for done := int64(0); done < size; done += chunk {
		n := min(chunk, size-done) / 4000
		if _, err := db.Exec(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < ?)
			INSERT INTO t (v) SELECT randomblob(4000) FROM c`, max(n, 1)); err != nil {
			return fmt.Errorf("fill %s: %w", path, err)
		}
	}
	if _, err := db.Exec("PRAGMA journal_mode = wal"); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// lastValue returns the value of the newest row, to check a restore.
func lastValue(path string) ([]byte, error) {
	db, err := sql.Open("sqlite", path+"?mode=ro")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var v []byte
	if err := db.QueryRow("SELECT v FROM t ORDER BY id DESC LIMIT 1").Scan(&v); err != nil {
		return nil, fmt.Errorf("read newest row of %s: %w", path, err)
	}
	return v, nil
}

// walSampler records the largest size the WAL reaches while it runs.
type walSampler struct {
	max    atomic.Int64
	cancel context.CancelFunc
	done   chan struct{}
}

func sampleWAL(walPath string, every time.Duration) *walSampler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &walSampler{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if fi, err := os.Stat(walPath); err == nil && fi.Size() > s.max.Load() {
				s.max.Store(fi.Size())
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *walSampler) stop() int64 {
	s.cancel()
	<-s.done
	return s.max.Load()
}
