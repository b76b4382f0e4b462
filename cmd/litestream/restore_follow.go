package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/sqlitebackup/litestream"
)

// checkFollow rejects flags that make no sense with -f: follow mode always
// tracks the latest state and writes the output.
func (f *restoreFlags) checkFollow() error {
	if !f.follow {
		return nil
	}
	switch {
	case f.txid != "":
		return errors.New("cannot use follow mode with -txid")
	case f.timestamp != "":
		return errors.New("cannot use follow mode with -timestamp")
	case f.dryRun:
		return errors.New("cannot use follow mode with -dry-run")
	case f.followInterval <= 0:
		return fmt.Errorf("invalid -follow-interval %s: must be positive", f.followInterval)
	}
	return nil
}

// follow runs restore -f: restore (or resume from the <out>-txid sidecar)
// and keep applying new files until SIGINT or SIGTERM, which exit 0.
func (c *RestoreCommand) follow(ctx context.Context, client litestream.ReplicaClient, out string, f *restoreFlags) error {
	if fi, err := os.Stat(out); err == nil {
		_, sidecarErr := os.Stat(litestream.TXIDFilePath(out))
		switch {
		case f.ifDBNotExists:
			fmt.Fprintln(c.stderr, "database already exists, skipping")
			return nil
		case f.force:
			for _, suffix := range []string{"", "-wal", "-shm", "-journal", "-txid"} {
				if err := os.Remove(out + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("remove existing output: %w", err)
				}
			}
		case fi.Size() == 0 && errors.Is(sidecarErr, os.ErrNotExist):
			if err := os.Remove(out); err != nil {
				return fmt.Errorf("remove empty output: %w", err)
			}
		}
		// Otherwise the output is resumed from its sidecar.
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := litestream.Follow(ctx, client, litestream.FollowOptions{
		OutputPath:     out,
		Interval:       f.followInterval,
		IntegrityCheck: f.integrity,
		Logger:         slog.New(slog.NewTextHandler(c.stderr, nil)),
	})
	if f.ifReplicaExists && errors.Is(err, litestream.ErrNoBackup) {
		fmt.Fprintln(c.stderr, "no matching backups found")
		return nil
	}
	return err
}
