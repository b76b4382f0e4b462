package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/config"
)

// StatusCommand reports each database's local and replica state. It reads
// the meta directory and lists the replica; it needs no running daemon.
type StatusCommand struct {
	stdout, stderr io.Writer
}

// Statuses, as upstream.
const (
	statusOK             = "ok"
	statusNotInitialized = "not initialized"
	statusNoDatabase     = "no database"
	statusError          = "error"
)

// statusJSON is one row of "status -json": upstream's fields (database,
// status, local_txid, wal_size) plus the replica's state. Unknown values
// are null; TXIDs are 16-digit hex strings; wal_size is in bytes.
type statusJSON struct {
	Database    string    `json:"database"`
	Status      string    `json:"status"`
	LocalTXID   *ltx.TXID `json:"local_txid"`
	ReplicaTXID *ltx.TXID `json:"replica_txid"`
	WALSize     int64     `json:"wal_size"`
	LastSyncAt  *string   `json:"last_sync_at"`
	LagSeconds  *float64  `json:"lag_seconds"`
	Replica     string    `json:"replica"`
	Error       string    `json:"error,omitempty"`
}

// statusParallelism bounds concurrent replica listings.
const statusParallelism = 8

// Run executes the command.
func (c *StatusCommand) Run(ctx context.Context, args []string) error {
	flags := flag.NewFlagSet("litestream-status", flag.ContinueOnError)
	flags.SetOutput(c.stderr)
	configPath, noExpandEnv := registerConfigFlags(flags)
	jsonOut := flags.Bool("json", false, "print JSON")
	flags.Usage = func() { fmt.Fprint(c.stderr, statusUsage) }
	if err := flags.Parse(args); err != nil {
		return err
	}
	if err := checkNoTrailingFlags(flags.Args()); err != nil {
		return err
	}
	if flags.NArg() > 1 {
		return errors.New("at most one database path\nTry: litestream status [DB_PATH]")
	}
	dbcs, err := c.databases(*configPath, *noExpandEnv, flags.Arg(0))
	if err != nil {
		return err
	}
	rows := make([]statusJSON, len(dbcs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(statusParallelism)
	for i, dbc := range dbcs {
		g.Go(func() error { rows[i] = dbStatus(gctx, dbc); return nil })
	}
	_ = g.Wait()
	if *jsonOut {
		return writeJSON(c.stdout, rows)
	}
	return printStatus(c.stdout, rows)
}

// databases returns every database in the config, or only the one named.
func (c *StatusCommand) databases(configPath string, noExpandEnv bool, only string) ([]*config.DBConfig, error) {
	cfg, err := loadConfig(configPath, noExpandEnv)
	if err != nil {
		return nil, err
	}
	if only != "" {
		p, err := config.CleanDBPath(only)
		if err != nil {
			return nil, err
		}
		dbc, err := findDBConfig(cfg, p) // also finds a database gone from a dir: entry
		if err != nil {
			return nil, err
		}
		return []*config.DBConfig{dbc}, nil
	}
	return expandDBConfigs(cfg, expandList)
}

// dbStatus gathers one database's row; a failure shows as status error.
func dbStatus(ctx context.Context, dbc *config.DBConfig) statusJSON {
	row := statusJSON{Database: dbc.Path, Replica: replicaType(dbc), Status: statusOK}
	if fi, err := os.Stat(dbc.Path + "-wal"); err == nil {
		row.WALSize = fi.Size()
	}
	fail := func(err error) statusJSON {
		row.Status, row.Error = statusError, err.Error()
		return row
	}
	if err := litestream.CheckDBFile(dbc.Path); errors.Is(err, fs.ErrNotExist) {
		row.Status = statusNoDatabase
	} else if err != nil {
		return fail(err)
	}
	local, err := localLevel0(effectiveMetaPath(dbc))
	if err != nil {
		return fail(err)
	}
	if len(local) == 0 && row.Status == statusOK {
		row.Status = statusNotInitialized
	}
	if n := len(local); n > 0 {
		last := local[n-1]
		row.LocalTXID = &last.MaxTXID
		ts := last.CreatedAt.UTC().Format(time.RFC3339Nano)
		row.LastSyncAt = &ts
	}
	remote, err := replicaMaxTXID(ctx, dbc)
	if err != nil {
		return fail(err)
	}
	if remote > 0 {
		row.ReplicaTXID = &remote
	}
	if len(local) > 0 {
		lag := replicationLag(local, remote).Seconds()
		row.LagSeconds = &lag
	}
	return row
}

// localLevel0 lists the level-0 files in a meta directory, ascending by
// TXID, with their modification times as CreatedAt.
func localLevel0(metaPath string) ([]*ltx.FileInfo, error) {
	dir := filepath.Join(metaPath, "ltx", "0")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("read meta directory: %w", err)
	}
	var infos []*ltx.FileInfo // ReadDir sorts by name, and names sort by TXID
	for _, e := range entries {
		minTXID, maxTXID, err := ltx.ParseFilename(e.Name())
		if err != nil {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed by retention meanwhile
		}
		infos = append(infos, &ltx.FileInfo{Level: 0, MinTXID: minTXID, MaxTXID: maxTXID, Size: fi.Size(), CreatedAt: fi.ModTime()})
	}
	return infos, nil
}

// replicaMaxTXID returns the highest TXID in any level of the replica.
func replicaMaxTXID(ctx context.Context, dbc *config.DBConfig) (ltx.TXID, error) {
	client, err := replicaClientOf(dbc)
	if err != nil {
		return 0, err
	}
	var maxTXID ltx.TXID
	for level := 0; level <= litestream.SnapshotLevel; level++ {
		infos, err := litestream.LTXFileInfos(ctx, client, level, 0, false)
		if err != nil {
			return 0, fmt.Errorf("%s replica: %w", client.Type(), err)
		}
		for _, info := range infos {
			maxTXID = max(maxTXID, info.MaxTXID)
		}
	}
	return maxTXID, nil
}

// replicationLag is how long the oldest local change missing from the
// replica has waited; 0 when the replica has everything.
func replicationLag(local []*ltx.FileInfo, remote ltx.TXID) time.Duration {
	for _, info := range local {
		if info.MaxTXID > remote {
			return max(time.Since(info.CreatedAt), 0)
		}
	}
	return 0
}

func printStatus(w io.Writer, rows []statusJSON) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "database\tstatus\tlocal txid\treplica txid\twal size\tlast sync\tlag")
	for _, r := range rows {
		last, lag := "-", "-"
		if r.LastSyncAt != nil {
			t, _ := time.Parse(time.RFC3339Nano, *r.LastSyncAt)
			last = t.Format(time.RFC3339)
		}
		if r.LagSeconds != nil {
			lag = (time.Duration(*r.LagSeconds * float64(time.Second))).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Database, r.Status, txidOrDash(r.LocalTXID), txidOrDash(r.ReplicaTXID), humanBytes(r.WALSize), last, lag)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	sep := "\n" // errors go below the table, which they would stretch
	for _, r := range rows {
		if r.Error == "" {
			continue
		}
		msg := r.Error
		if !strings.Contains(msg, r.Database) {
			msg = r.Database + ": " + msg
		}
		fmt.Fprintf(w, "%s%s\n", sep, msg)
		sep = ""
	}
	return nil
}

func txidOrDash(t *ltx.TXID) string {
	if t == nil {
		return "-"
	}
	return t.String()
}

const statusUsage = `The status command reports each database's local and replica state:
status (ok, not initialized, no database or error), the last local and
replica TXIDs, the WAL size, the time of the last local sync and how long
the oldest change missing from the replica has waited (lag).

Usage:

	litestream status [arguments] [DB_PATH]

Arguments:

	-config PATH          configuration file
	-no-expand-env        do not expand $VAR in the configuration file
	-json                 print JSON; TXIDs are 16-digit hex strings, wal_size is in bytes
`
