package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"
)

// InfoCommand shows the running daemon's version, PID and uptime.
type InfoCommand struct {
	stdout, stderr io.Writer
}

// Run executes the command.
func (c *InfoCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("litestream-info", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	cf := registerControlFlags(fs, 10)
	fs.Usage = func() { fmt.Fprint(c.stderr, infoUsage) }
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
	info, err := client.Info(ctx)
	if err != nil {
		return commandFailed("info", err)
	}
	if *cf.json {
		return printJSON(c.stdout, info)
	}
	fmt.Fprintf(c.stdout, "Litestream %s\nPID: %d\nUptime: %s\nStarted at: %s\nDatabases: %d\n",
		info.Version, info.PID, time.Duration(info.UptimeSeconds)*time.Second,
		info.StartedAt.Format(time.RFC3339), info.DatabaseCount)
	return nil
}

const infoUsage = `The info command shows the running daemon's version, PID and uptime.

Usage:

	litestream info [arguments]

Arguments:

	-socket PATH
	    Control socket of the daemon (default /var/run/litestream.sock).
	-timeout SECONDS
	    How long to wait for the daemon (default 10).
	-json
	    Print JSON: version, pid, uptime_seconds, started_at, database_count.
`
