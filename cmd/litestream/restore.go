package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/config"
	"github.com/sqlitebackup/litestream/progress"
)

// RestoreCommand rebuilds a database from a replica.
type RestoreCommand struct {
	stdout, stderr io.Writer
}

type restoreFlags struct {
	configPath, output, txid, timestamp, integrity string
	noExpandEnv, ifDBNotExists, ifReplicaExists    bool
	force, dryRun, jsonOut, follow                 bool
	parallelism                                    int
	followInterval                                 time.Duration
}

// Run executes the command.
func (c *RestoreCommand) Run(ctx context.Context, args []string) error {
	var f restoreFlags
	fs := flag.NewFlagSet("litestream-restore", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	configPath, noExpandEnv := registerConfigFlags(fs)
	fs.StringVar(&f.output, "o", "", "output path (default: the database path)")
	fs.StringVar(&f.txid, "txid", "", "restore up to this TXID (16 hex digits)")
	fs.StringVar(&f.timestamp, "timestamp", "", "restore the state at this RFC 3339 time")
	fs.BoolVar(&f.ifDBNotExists, "if-db-not-exists", false, "do nothing if the output exists")
	fs.BoolVar(&f.ifReplicaExists, "if-replica-exists", false, "do nothing if the replica has no backup")
	fs.BoolVar(&f.force, "force", false, "overwrite an existing output and its -wal/-shm files")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print the restore plan only")
	fs.BoolVar(&f.jsonOut, "json", false, "print JSON")
	fs.BoolVar(&f.follow, "f", false, "follow mode: keep applying new files")
	fs.DurationVar(&f.followInterval, "follow-interval", time.Second, "follow mode poll interval")
	fs.IntVar(&f.parallelism, "parallelism", 8, "accepted for compatibility")
	fs.StringVar(&f.integrity, "integrity-check", "none", "none, quick or full")
	fs.Usage = func() { fmt.Fprint(c.stderr, restoreUsage) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	f.configPath, f.noExpandEnv = *configPath, *noExpandEnv
	if fs.NArg() != 1 {
		return errors.New("database path or replica URL required\nTry: litestream restore -o OUT.db file:///path/to/replica")
	}
	if err := checkNoTrailingFlags(fs.Args()); err != nil {
		return err
	}
	target, err := f.target()
	if err != nil {
		return err
	}
	if err := f.checkFollow(); err != nil {
		return err
	}
	switch f.integrity {
	case "none", "quick", "full":
	default:
		return fmt.Errorf("invalid -integrity-check %q (expected none, quick or full)", f.integrity)
	}
	client, outPath, err := c.resolve(fs.Arg(0), &f)
	if err != nil {
		return err
	}
	if f.follow {
		return c.follow(ctx, client, outPath, &f)
	}
	return c.restore(ctx, client, outPath, target, &f)
}

func (f *restoreFlags) target() (litestream.RestoreTarget, error) {
	var t litestream.RestoreTarget
	if f.txid != "" && f.timestamp != "" {
		return t, errors.New("cannot specify both -txid and -timestamp")
	}
	if f.txid != "" {
		id, err := ltx.ParseTXID(f.txid)
		if err != nil || id == 0 {
			return t, fmt.Errorf("invalid txid format %q: expected 16 hex digits, e.g. 000000000000002a", f.txid)
		}
		t.TXID = id
	}
	if f.timestamp != "" {
		ts, err := time.Parse(time.RFC3339Nano, f.timestamp)
		if err != nil {
			return t, fmt.Errorf("invalid -timestamp %q: expected RFC 3339, e.g. 2026-11-25T10:00:00Z", f.timestamp)
		}
		t.Timestamp = ts
	}
	return t, nil
}

// resolve returns the replica client and output path for a URL or a
// database path from the config.
func (c *RestoreCommand) resolve(arg string, f *restoreFlags) (litestream.ReplicaClient, string, error) {
	if config.IsURL(arg) {
		if f.configPath != "" {
			return nil, "", errors.New("cannot specify a replica URL and -config together")
		}
		if f.output == "" {
			return nil, "", errors.New("output path required with a replica URL\nTry: litestream restore -o OUT.db " + arg)
		}
		client, err := config.NewReplicaClient(&config.ReplicaSettings{URL: arg})
		return client, f.output, err
	}
	cfg, err := loadConfig(f.configPath, f.noExpandEnv)
	if err != nil {
		return nil, "", err
	}
	dbPath, err := config.CleanDBPath(arg)
	if err != nil {
		return nil, "", err
	}
	dbc, err := findDBConfig(cfg, dbPath) // a `path:` entry or a database under a `dir:` entry
	if err != nil {
		return nil, "", err
	}
	rs, err := dbc.ReplicaSettings()
	if err != nil {
		return nil, "", err
	}
	client, err := config.NewReplicaClient(rs)
	if err != nil {
		return nil, "", err
	}
	out := f.output
	if out == "" {
		out = dbPath
	}
	return client, out, nil
}

func (c *RestoreCommand) restore(ctx context.Context, client litestream.ReplicaClient, out string, target litestream.RestoreTarget, f *restoreFlags) error {
	if f.dryRun {
		plan, err := litestream.CalcRestorePlan(ctx, client, target)
		if err != nil {
			return err
		}
		return c.printPlan(client, out, plan, f.jsonOut)
	}
	if fi, err := os.Stat(out); err == nil {
		switch {
		case f.ifDBNotExists:
			fmt.Fprintln(c.stderr, "database already exists, skipping")
			return nil
		case f.force:
			for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
				if err := os.Remove(out + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("remove existing output: %w", err)
				}
			}
		case fi.Size() == 0:
			if err := os.Remove(out); err != nil {
				return fmt.Errorf("remove empty output: %w", err)
			}
		default:
			return fmt.Errorf("output %s already exists (use -force to overwrite)", out)
		}
	}
	start := time.Now()
	stderrFile, _ := c.stderr.(*os.File)
	bars := progress.LinesForFile(stderrFile, f.jsonOut) // nil unless stderr is a terminal
	res, err := litestream.Restore(ctx, client, litestream.RestoreOptions{
		OutputPath: out, Target: target, IntegrityCheck: f.integrity, OnProgress: progressHook(bars, ""),
	})
	bars.Close()
	if f.ifReplicaExists && errors.Is(err, litestream.ErrNoBackup) {
		fmt.Fprintln(c.stderr, "no matching backups found")
		return nil
	} else if err != nil {
		return err
	}
	if f.jsonOut {
		return writeJSON(c.stdout, map[string]any{
			"db_path": out, "replica": client.Type(), "txid": res.TXID.String(),
			"duration_ms": time.Since(start).Milliseconds(), "integrity_check": f.integrity,
		})
	}
	fmt.Fprintf(c.stderr, "restored %s to TXID %s from %d files in %s\n", out, res.TXID, res.Files, time.Since(start).Round(time.Millisecond))
	return nil
}

func (c *RestoreCommand) printPlan(client litestream.ReplicaClient, out string, plan []*ltx.FileInfo, jsonOut bool) error {
	if jsonOut {
		files := make([]map[string]any, len(plan))
		for i, info := range plan {
			files[i] = map[string]any{"level": info.Level, "name": ltx.FormatFilename(info.MinTXID, info.MaxTXID),
				"min_txid": info.MinTXID.String(), "max_txid": info.MaxTXID.String(), "size": info.Size,
				"timestamp": info.CreatedAt.UTC().Format(time.RFC3339Nano)}
		}
		return writeJSON(c.stdout, map[string]any{"source": client.Type(), "target_path": out, "replica": client.Type(),
			"min_txid": plan[0].MinTXID.String(), "max_txid": plan[len(plan)-1].MaxTXID.String(), "files": files})
	}
	fmt.Fprintf(c.stdout, "target: %s\nreplica: %s\ntxid range: %s-%s\n\n", out, client.Type(), plan[0].MinTXID, plan[len(plan)-1].MaxTXID)
	w := tabwriter.NewWriter(c.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "level\tfile\tmin_txid\tmax_txid\tsize\ttimestamp")
	for _, info := range plan {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%d\t%s\n", info.Level, ltx.FormatFilename(info.MinTXID, info.MaxTXID),
			info.MinTXID, info.MaxTXID, info.Size, info.CreatedAt.UTC().Format(time.RFC3339))
	}
	return w.Flush()
}

// progressHook draws the engine's progress events on bars, labelled
// prefix + operation; nil (no counting at all) when bars is nil.
func progressHook(bars *progress.Lines, prefix string) func(litestream.ProgressEvent) {
	if bars == nil {
		return nil
	}
	return func(e litestream.ProgressEvent) {
		bars.Report(progress.Event{Label: prefix + e.Op, Bytes: e.Bytes, TotalBytes: e.TotalBytes,
			Pages: e.Pages, TotalPages: e.TotalPages, Finished: e.Finished})
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

const restoreUsage = `The restore command recovers a database from a replica.

Usage:

	litestream restore [arguments] DB_PATH
	litestream restore [arguments] REPLICA_URL

Arguments:

	-config PATH          configuration file (DB_PATH form)
	-no-expand-env        do not expand $VAR in the configuration file
	-o PATH               output path (required with REPLICA_URL)
	-txid TXID            restore up to this TXID (16 hex digits)
	-timestamp TIME       restore the state at this RFC 3339 time
	-if-db-not-exists     exit successfully if the output already exists
	-if-replica-exists    exit successfully if the replica has no backup
	-force                overwrite an existing output and its -wal/-shm files
	-dry-run              print the restore plan without restoring
	-json                 print JSON
	-integrity-check MODE none, quick or full (default none)
	-f                    follow mode: after the restore keep applying new
	                      changes; resumes from OUT-txid if OUT exists;
	                      readers of OUT always see a consistent state
	-follow-interval D    follow mode poll interval (default 1s)
`
