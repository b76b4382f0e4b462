// Command writer is a tiny application for trying replication: it writes
// one row every interval to a SQLite database for a while, then exits.
//
//	go run ./cmd/litestream replicate -exec "go run ./examples/writer -db demo.db" demo.db file://$PWD/demo-replica
package main

import (
	"database/sql"
	"flag"
	"fmt"
	"log"
	"time"

	_ "modernc.org/sqlite"
)

func main() {
	path := flag.String("db", "demo.db", "database to write")
	duration := flag.Duration("duration", 5*time.Second, "how long to write")
	interval := flag.Duration("interval", 100*time.Millisecond, "time between writes")
	flag.Parse()

	db, err := sql.Open("sqlite", *path+"?_pragma=journal_mode(wal)&_pragma=busy_timeout(5000)")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, at TEXT NOT NULL)"); err != nil {
		log.Fatal(err)
	}
	n := 0
	for end := time.Now().Add(*duration); time.Now().Before(end); n++ {
		if _, err := db.Exec("INSERT INTO events (at) VALUES (?)", time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
			log.Fatal(err)
		}
		time.Sleep(*interval)
	}
	var total int
	if err := db.QueryRow("SELECT COUNT(*) FROM events").Scan(&total); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("writer: wrote %d rows; %s now holds %d\n", n, *path, total)
}
