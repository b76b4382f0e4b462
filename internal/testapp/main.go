// Command testapp is the application side of the project's process-level
// tests: it writes to a SQLite database the way a real application would,
// from its own process.
//
//	testapp bigdb -db PATH -mb N      grow a database past N MiB, with rows after the 1 GiB lock page
//	testapp append -db PATH -rows N   insert N rows of random data
//	testapp checkpoint -db PATH       PRAGMA wal_checkpoint(TRUNCATE)
//	testapp ledger -db PATH           commit batches of 10 ledger rows until killed
package main

import (
	"database/sql"
	"flag"
	"fmt"
	"io"
	"os"

	_ "modernc.org/sqlite"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testapp bigdb|append|checkpoint -db PATH ...")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	path := fs.String("db", "", "database path")
	mb := fs.Int("mb", 1100, "bigdb: size in MiB")
	rows := fs.Int("rows", 1000, "append: rows to insert")
	pageSize := fs.Int("page-size", 4096, "bigdb: page size")
	keepWAL := fs.Bool("keep-wal", false, "bigdb: never checkpoint, so the WAL grows past the database size; print ready and stay open until stdin closes")
	fs.Parse(os.Args[2:])
	db, err := sql.Open("sqlite", *path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		fail(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	// page_size must precede journal_mode, which a DSN would run first.
	for _, q := range []string{fmt.Sprintf("PRAGMA page_size = %d", *pageSize), "PRAGMA journal_mode = wal"} {
		if _, err := db.Exec(q); err != nil {
			fail(err)
		}
	}
	switch os.Args[1] {
	case "bigdb":
		err = bigDB(db, *mb, *keepWAL)
		if err == nil && *keepWAL {
			// Closing the last connection would checkpoint the WAL away:
			// hold it open until the test closes our stdin.
			fmt.Println("ready")
			_, _ = io.Copy(io.Discard, os.Stdin)
		}
	case "append":
		err = appendRows(db, *rows)
	case "ledger":
		err = ledger(db)
	case "checkpoint":
		_, err = db.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "testapp:", err)
	os.Exit(1)
}

// bigDB fills the database with 64 MiB zero blobs (cheap for SQLite to
// write) until it passes mb MiB, then adds rows of random data, which land
// on pages after the lock page.
func bigDB(db *sql.DB, mb int, keepWAL bool) error {
	if _, err := db.Exec("CREATE TABLE IF NOT EXISTS filler (id INTEGER PRIMARY KEY, b BLOB)"); err != nil {
		return err
	}
	if keepWAL {
		if _, err := db.Exec("PRAGMA wal_autocheckpoint = 0"); err != nil {
			return err
		}
	}
	for i := 0; i < (mb+63)/64; i++ {
		if _, err := db.Exec("INSERT INTO filler (b) VALUES (zeroblob(64*1024*1024))"); err != nil {
			return err
		}
		if keepWAL {
			continue
		}
		if _, err := db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			return err
		}
	}
	return appendRows(db, 2000)
}

func appendRows(db *sql.DB, n int) error {
	if _, err := db.Exec("CREATE TABLE IF NOT EXISTS data (id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
		return err
	}
	_, err := db.Exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < ?) INSERT INTO data (v) SELECT randomblob(500) FROM n", n)
	return err
}

// ledger commits batches of 10 rows, numbered, one transaction each,
// forever: the crash tests kill it mid-transaction and check that no
// restored state ever holds part of a batch. Payloads are small so that a
// long run (1000 kill cycles) does not grow the database to gigabytes:
// every restart of replicate after the application's own checkpoints
// costs a full image.
func ledger(db *sql.DB) error {
	if _, err := db.Exec("CREATE TABLE IF NOT EXISTS ledger (seq INTEGER PRIMARY KEY, batch INTEGER NOT NULL, payload BLOB)"); err != nil {
		return err
	}
	var batch int64
	if err := db.QueryRow("SELECT COALESCE(MAX(batch), 0) FROM ledger").Scan(&batch); err != nil {
		return err
	}
	for {
		batch++
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		for i := 0; i < 10; i++ {
			if _, err := tx.Exec("INSERT INTO ledger (batch, payload) VALUES (?, randomblob(30))", batch); err != nil {
				tx.Rollback()
				return err
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
}
