package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
)

// LTXCommand lists the LTX files in a replica.
type LTXCommand struct {
	stdout, stderr io.Writer
}

// ltxFileJSON is one row of "ltx -json", with upstream's field names.
type ltxFileJSON struct {
	Level     int      `json:"level"`
	MinTXID   ltx.TXID `json:"min_txid"`
	MaxTXID   ltx.TXID `json:"max_txid"`
	Size      int64    `json:"size"`
	Timestamp string   `json:"timestamp"`
}

// Run executes the command.
func (c *LTXCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("litestream-ltx", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	configPath, noExpandEnv := registerConfigFlags(fs)
	levelArg := fs.String("level", "0", "level to list: 0-9 or all")
	jsonOut := fs.Bool("json", false, "print JSON")
	fs.Usage = func() { fmt.Fprint(c.stderr, ltxUsage) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := needOneArg(fs.Args(), "database path or replica URL", "litestream ltx /path/to/db"); err != nil {
		return err
	}
	levels, err := parseLevels(*levelArg)
	if err != nil {
		return err
	}
	client, err := replicaClientFor(fs.Arg(0), *configPath, *noExpandEnv)
	if err != nil {
		return err
	}
	var files []*ltx.FileInfo
	for _, level := range levels {
		infos, err := litestream.LTXFileInfos(ctx, client, level, 0, true)
		if err != nil {
			return fmt.Errorf("%s replica: %w", client.Type(), err)
		}
		files = append(files, infos...)
	}
	if *jsonOut {
		rows := make([]ltxFileJSON, 0, len(files))
		for _, f := range files {
			rows = append(rows, ltxFileJSON{f.Level, f.MinTXID, f.MaxTXID, f.Size, f.CreatedAt.UTC().Format(time.RFC3339Nano)})
		}
		return writeJSON(c.stdout, rows)
	}
	w := tabwriter.NewWriter(c.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "level\tmin_txid\tmax_txid\tsize\tcreated")
	for _, f := range files {
		fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%s\n", f.Level, f.MinTXID, f.MaxTXID, f.Size, f.CreatedAt.UTC().Format(time.RFC3339))
	}
	return w.Flush()
}

// parseLevels reads -level: one level 0-9, or "all".
func parseLevels(s string) ([]int, error) {
	if s == "all" {
		levels := make([]int, litestream.SnapshotLevel+1)
		for i := range levels {
			levels[i] = i
		}
		return levels, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > litestream.SnapshotLevel {
		return nil, fmt.Errorf("invalid -level %q (expected 0-%d or all)", s, litestream.SnapshotLevel)
	}
	return []int{n}, nil
}

const ltxUsage = `The ltx command lists the LTX files in a replica.

Usage:

	litestream ltx [arguments] DB_PATH
	litestream ltx [arguments] REPLICA_URL

Arguments:

	-config PATH          configuration file (DB_PATH form)
	-no-expand-env        do not expand $VAR in the configuration file
	-level N|all          level to list, 0-9 or all (default 0)
	-json                 print JSON; TXIDs are 16-digit hex strings
`
