package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/superfly/ltx"
)

// UnregisterCommand makes the running daemon stop replicating a database
// and forget it, after a final sync bounded by -timeout.
type UnregisterCommand struct {
	stdout, stderr io.Writer
}

// unregisterOutput is the JSON of `unregister -json`.
type unregisterOutput struct {
	Status    string    `json:"status"` // unregistered, already_unregistered or dry_run
	DBPath    string    `json:"db_path"`
	FinalTXID *ltx.TXID `json:"final_txid,omitempty"`
	Socket    string    `json:"socket"`
}

// Run executes the command.
func (c *UnregisterCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("litestream-unregister", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	cf := registerControlFlags(fs, 30)
	dryRun := fs.Bool("dry-run", false, "print what would be done, send nothing")
	fs.Usage = func() { fmt.Fprint(c.stderr, unregisterUsage) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	path, err := controlDBPath(fs.Args(), "unregister")
	if err != nil {
		return err
	}
	client, err := cf.client()
	if err != nil {
		return err
	}
	out := unregisterOutput{Status: "dry_run", DBPath: path, Socket: *cf.socket}
	if !*dryRun {
		resp, err := client.Unregister(ctx, path)
		if err != nil {
			return commandFailed("unregister", err)
		}
		out.Status, out.DBPath, out.FinalTXID = resp.Status, resp.Path, &resp.TXID
	}
	if *cf.json {
		return printJSON(c.stdout, out)
	}
	if *dryRun {
		fmt.Fprintf(c.stdout, "dry run: would unregister %s (final sync, then stop replicating) via %s\n", out.DBPath, out.Socket)
		return nil
	}
	fmt.Fprintf(c.stdout, "status: %s\ndb_path: %s\nfinal_txid: %s\nsocket: %s\n", out.Status, out.DBPath, out.FinalTXID, out.Socket)
	return nil
}

const unregisterUsage = `The unregister command makes the running daemon sync a database one
last time, stop replicating it and forget it. The config file is not
changed: a database listed there is replicated again after a restart.

Usage:

	litestream unregister [arguments] DB_PATH

Arguments:

	-dry-run
	    Print what would be done; send nothing to the daemon.
	-socket PATH
	    Control socket of the daemon (default /var/run/litestream.sock).
	-timeout SECONDS
	    How long the final sync may take (default 30).
	-json
	    Print JSON: status, db_path, final_txid, socket.
`
