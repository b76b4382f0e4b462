package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/config"
)

// VerifyCommand checks a replica's health.
type VerifyCommand struct {
	stdout, stderr io.Writer
}

// errVerifyFailed makes the command exit non-zero after printing its report.
var errVerifyFailed = errors.New("verify found problems")

// Run executes the command.
func (c *VerifyCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("litestream-verify", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	configPath, noExpandEnv := registerConfigFlags(fs)
	jsonOut := fs.Bool("json", false, "print JSON")
	full := fs.Bool("full", false, "also restore to a temporary file and run PRAGMA integrity_check")
	fs.Usage = func() { fmt.Fprint(c.stderr, verifyUsage) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := needOneArg(fs.Args(), "database path or replica URL", "litestream verify -full file:///var/backups/app"); err != nil {
		return err
	}
	arg := fs.Arg(0)
	client, err := replicaClientFor(arg, *configPath, *noExpandEnv)
	if err != nil {
		return err
	}
	opt := litestream.VerifyOptions{Full: *full}
	if !config.IsURL(arg) {
		if opt.DBPath, err = config.CleanDBPath(arg); err != nil {
			return err
		}
	}
	rep, err := litestream.Verify(ctx, client, opt)
	if err != nil {
		return err
	}
	if *jsonOut {
		out := map[string]any{
			"ok": rep.OK(), "files": rep.Files, "bytes": rep.Bytes, "latest_txid": rep.LatestTXID.String(),
			"plan_files": rep.PlanFiles, "integrity_check": rep.IntegrityCheck, "live_comparison": rep.LiveComparison,
			"problems": rep.Problems,
		}
		if err := writeJSON(c.stdout, out); err != nil {
			return err
		}
	} else {
		c.printText(rep)
	}
	if !rep.OK() {
		return fmt.Errorf("%w: %d", errVerifyFailed, len(rep.Problems))
	}
	return nil
}

func (c *VerifyCommand) printText(rep *litestream.VerifyReport) {
	var levels []string
	for level, n := range rep.LevelFiles {
		if n > 0 {
			levels = append(levels, fmt.Sprintf("L%d=%d", level, n))
		}
	}
	fmt.Fprintf(c.stdout, "files: %d (%s), %s\n", rep.Files, strings.Join(levels, " "), humanBytes(rep.Bytes))
	if rep.LatestTXID != 0 {
		fmt.Fprintf(c.stdout, "latest txid: %s (restore plan: %d files)\n", rep.LatestTXID, rep.PlanFiles)
	}
	if rep.IntegrityCheck != "" {
		fmt.Fprintf(c.stdout, "integrity check: %s\n", rep.IntegrityCheck)
	}
	if rep.LiveComparison != "" {
		fmt.Fprintf(c.stdout, "live database: %s\n", rep.LiveComparison)
	}
	if rep.OK() {
		fmt.Fprintln(c.stdout, "ok")
		return
	}
	fmt.Fprintf(c.stdout, "%d problem(s):\n", len(rep.Problems))
	for _, p := range rep.Problems {
		fmt.Fprintf(c.stdout, "  - %s\n", p)
	}
}

const verifyUsage = `The verify command checks a replica: the TXID chain of every level, every
file's header and checksum, and that the latest state can be restored.
It exits non-zero if it finds a problem.

Usage:

	litestream verify [arguments] DB_PATH|REPLICA_URL

Arguments:

	-config PATH      configuration file (DB_PATH form)
	-no-expand-env    do not expand $VAR in the configuration file
	-full             also restore the latest state to a temporary file, run
	                  PRAGMA integrity_check, and compare with the live database
	-json             print JSON
`
