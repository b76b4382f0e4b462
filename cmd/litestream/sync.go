package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream/server"
)

// SyncCommand makes the running daemon sync a database now; with -wait
// it returns only once the replica holds every change committed before
// the call.
type SyncCommand struct {
	stdout, stderr io.Writer
}

// syncOutput is the JSON of `sync -json`.
type syncOutput struct {
	DBPath      string    `json:"db_path"`
	TXID        ltx.TXID  `json:"txid"`
	ReplicaTXID *ltx.TXID `json:"replica_txid,omitempty"` // with -wait
	DurationMS  int64     `json:"duration_ms"`
}

// Run executes the command.
func (c *SyncCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("litestream-sync", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	cf := registerControlFlags(fs, 30)
	wait := fs.Bool("wait", false, "return once the replica holds the new TXID")
	fs.Usage = func() { fmt.Fprint(c.stderr, syncUsage) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	path, err := controlDBPath(fs.Args(), "sync")
	if err != nil {
		return err
	}
	client, err := cf.client()
	if err != nil {
		return err
	}
	start := time.Now()
	resp, err := client.Sync(ctx, server.SyncRequest{Path: path, Wait: *wait})
	if err != nil {
		return commandFailed("sync", err)
	}
	out := syncOutput{DBPath: resp.Path, TXID: resp.TXID, DurationMS: time.Since(start).Milliseconds()}
	if *wait {
		out.ReplicaTXID = &resp.ReplicatedTXID
	}
	if *cf.json {
		return printJSON(c.stdout, out)
	}
	fmt.Fprintf(c.stdout, "db_path: %s\ntxid: %s\n", out.DBPath, out.TXID)
	if out.ReplicaTXID != nil {
		fmt.Fprintf(c.stdout, "replica_txid: %s\n", out.ReplicaTXID)
	}
	fmt.Fprintf(c.stdout, "duration_ms: %d\n", out.DurationMS)
	return nil
}

const syncUsage = `The sync command makes the running daemon copy a database's new WAL
frames into a level-0 LTX file now.

Usage:

	litestream sync [arguments] DB_PATH

Arguments:

	-wait
	    Also wait until the replica holds that TXID: when the command
	    returns, every change committed before it is in the replica.
	-socket PATH
	    Control socket of the daemon (default /var/run/litestream.sock).
	-timeout SECONDS
	    How long the daemon may take (default 30).
	-json
	    Print JSON: db_path, txid, replica_txid (with -wait), duration_ms.
`
