package litestream_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/file"
)

// Example embeds replication in an application: open a DB, attach a
// replica, wait until a write is safe in the replica, close with a final
// sync, then restore from the replica.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "litestream-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	dbPath := filepath.Join(dir, "app.db")

	// The application's own connection.
	app, err := sql.Open("sqlite", dbPath+"?_pragma=journal_mode(wal)&_pragma=busy_timeout(5000)")
	if err != nil {
		log.Fatal(err)
	}
	defer app.Close()
	if _, err := app.Exec("CREATE TABLE notes (body TEXT)"); err != nil {
		log.Fatal(err)
	}

	// Replicate it to a directory.
	db := litestream.NewDB(dbPath)
	client := file.NewReplicaClient(filepath.Join(dir, "replica"))
	litestream.NewReplica(db, client)
	if err := db.Open(); err != nil {
		log.Fatal(err)
	}

	if _, err := app.Exec("INSERT INTO notes VALUES ('hello, replica')"); err != nil {
		log.Fatal(err)
	}
	// Returns once the insert is in the replica.
	if err := db.SyncAndWait(ctx); err != nil {
		log.Fatal(err)
	}
	if err := db.Close(ctx); err != nil {
		log.Fatal(err)
	}

	// Restore the latest state to a new file.
	out := filepath.Join(dir, "restored.db")
	res, err := litestream.Restore(ctx, client, litestream.RestoreOptions{OutputPath: out, IntegrityCheck: "full"})
	if err != nil {
		log.Fatal(err)
	}
	restored, err := sql.Open("sqlite", out)
	if err != nil {
		log.Fatal(err)
	}
	defer restored.Close()
	var body string
	if err := restored.QueryRow("SELECT body FROM notes").Scan(&body); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("restored TXID %s: %s\n", res.TXID, body)
	// Output: restored TXID 0000000000000001: hello, replica
}
