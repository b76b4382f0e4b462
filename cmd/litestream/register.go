package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"

	"github.com/sqlitebackup/litestream/server"
)

// RegisterCommand adds a database to the running daemon. The daemon's
// config file is not changed: the database is not replicated after a
// restart unless it is added there too.
type RegisterCommand struct {
	stdout, stderr io.Writer
}

// registerOutput is the JSON of `register -json`.
type registerOutput struct {
	Status  string `json:"status"`
	DBPath  string `json:"db_path"`
	Replica string `json:"replica"`
	Socket  string `json:"socket"`
}

// Run executes the command.
func (c *RegisterCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("litestream-register", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	cf := registerControlFlags(fs, 30)
	replica := fs.String("replica", "", "replica URL")
	fs.Usage = func() { fmt.Fprint(c.stderr, registerUsage) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	path, err := controlDBPath(fs.Args(), "register -replica REPLICA_URL")
	if err != nil {
		return err
	}
	if *replica == "" {
		return errors.New("replica URL required\nTry: litestream register -replica s3://bucket/db DB_PATH")
	}
	client, err := cf.client()
	if err != nil {
		return err
	}
	resp, err := client.Register(ctx, server.RegisterRequest{Path: path, ReplicaURL: *replica})
	if err != nil {
		return commandFailed("register", err)
	}
	out := registerOutput{Status: resp.Status, DBPath: resp.Path, Replica: redactedURL(*replica), Socket: *cf.socket}
	if *cf.json {
		return printJSON(c.stdout, out)
	}
	fmt.Fprintf(c.stdout, "status: %s\ndb_path: %s\nreplica: %s\nsocket: %s\n", out.Status, out.DBPath, out.Replica, out.Socket)
	return nil
}

// redactedURL hides a password in a replica URL before it is printed.
func redactedURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

const registerUsage = `The register command adds a database to the running daemon, with the
replica settings a config entry with only path and replica url would get
(top-level replica keys of the daemon's config apply). The config file is
not changed: add the database there too to keep it after a restart.

Usage:

	litestream register [arguments] -replica REPLICA_URL DB_PATH

Arguments:

	-replica URL
	    Replica URL, e.g. s3://bucket/db or file:///backups/db (required).
	-socket PATH
	    Control socket of the daemon (default /var/run/litestream.sock).
	-timeout SECONDS
	    How long to wait for the daemon (default 30).
	-json
	    Print JSON: status, db_path, replica, socket.
`
