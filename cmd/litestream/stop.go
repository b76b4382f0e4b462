package main

import (
	"context"
	"flag"
	"fmt"
	"io"
)

// StopCommand makes the running daemon sync a database one last time and
// stop replicating it; it stays registered, so `start` resumes it.
type StopCommand struct {
	stdout, stderr io.Writer
}

// Run executes the command.
func (c *StopCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("litestream-stop", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	cf := registerControlFlags(fs, 30)
	fs.Usage = func() { fmt.Fprint(c.stderr, stopUsage) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	path, err := controlDBPath(fs.Args(), "stop")
	if err != nil {
		return err
	}
	client, err := cf.client()
	if err != nil {
		return err
	}
	resp, err := client.Stop(ctx, path)
	if err != nil {
		return commandFailed("stop", err)
	}
	return stateOutput{Status: resp.Status, DBPath: resp.Path, State: "stopped", TXID: resp.TXID, Socket: *cf.socket}.print(c.stdout, *cf.json)
}

const stopUsage = `The stop command makes the running daemon sync a database one last time
(bounded by -timeout), release it (the application can checkpoint freely)
and stop replicating it. It stays registered: "litestream start" resumes.

Usage:

	litestream stop [arguments] DB_PATH

Arguments:

	-socket PATH
	    Control socket of the daemon (default /var/run/litestream.sock).
	-timeout SECONDS
	    How long the final sync may take (default 30).
	-json
	    Print JSON: status, db_path, state, txid, socket.
`
