package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"
)

// ListCommand lists the databases of the running daemon.
type ListCommand struct {
	stdout, stderr io.Writer
}

// Run executes the command.
func (c *ListCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("litestream-list", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	cf := registerControlFlags(fs, 10)
	fs.Usage = func() { fmt.Fprint(c.stderr, listUsage) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return errors.New("too many arguments")
	}
	client, err := cf.client()
	if err != nil {
		return err
	}
	list, err := client.List(ctx)
	if err != nil {
		return commandFailed("list", err)
	}
	if *cf.json {
		return printJSON(c.stdout, list)
	}
	if len(list.Databases) == 0 {
		fmt.Fprintln(c.stdout, "No databases configured")
		return nil
	}
	for _, db := range list.Databases {
		last := "never"
		if db.LastSyncAt != nil {
			last = db.LastSyncAt.Format(time.RFC3339)
		}
		fmt.Fprintf(c.stdout, "%s [%s] (last sync: %s)\n", db.Path, db.Status, last)
	}
	return nil
}

const listUsage = `The list command lists the databases of the running daemon, with their
state (replicating or stopped) and their last successful replica sync.

Usage:

	litestream list [arguments]

Arguments:

	-socket PATH
	    Control socket of the daemon (default /var/run/litestream.sock).
	-timeout SECONDS
	    How long to wait for the daemon (default 10).
	-json
	    Print JSON: {"databases": [{"path", "status", "last_sync_at"}]}.
`
