package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/superfly/ltx"
)

// StartCommand resumes replicating a database stopped with `stop`.
type StartCommand struct {
	stdout, stderr io.Writer
}

// stateOutput is the JSON of `start -json` and `stop -json`.
type stateOutput struct {
	Status string   `json:"status"`
	DBPath string   `json:"db_path"`
	State  string   `json:"state"` // running or stopped
	TXID   ltx.TXID `json:"txid"`
	Socket string   `json:"socket"`
}

func (o stateOutput) print(w io.Writer, asJSON bool) error {
	if asJSON {
		return printJSON(w, o)
	}
	_, err := fmt.Fprintf(w, "status: %s\ndb_path: %s\nstate: %s\ntxid: %s\nsocket: %s\n", o.Status, o.DBPath, o.State, o.TXID, o.Socket)
	return err
}

// Run executes the command.
func (c *StartCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("litestream-start", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	cf := registerControlFlags(fs, 30)
	fs.Usage = func() { fmt.Fprint(c.stderr, startUsage) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	path, err := controlDBPath(fs.Args(), "start")
	if err != nil {
		return err
	}
	client, err := cf.client()
	if err != nil {
		return err
	}
	resp, err := client.Start(ctx, path)
	if err != nil {
		return commandFailed("start", err)
	}
	return stateOutput{Status: resp.Status, DBPath: resp.Path, State: "running", TXID: resp.TXID, Socket: *cf.socket}.print(c.stdout, *cf.json)
}

const startUsage = `The start command makes the running daemon resume replicating a
database that was stopped with "litestream stop".

Usage:

	litestream start [arguments] DB_PATH

Arguments:

	-socket PATH
	    Control socket of the daemon (default /var/run/litestream.sock).
	-timeout SECONDS
	    How long to wait for the daemon (default 30).
	-json
	    Print JSON: status, db_path, state, txid, socket.
`
