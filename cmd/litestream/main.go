// Command litestream replicates SQLite databases and restores them. It is
// a drop-in replacement for Litestream v0.5's CLI: same verbs, flags and
// configuration file. This package holds only flag parsing, config and
// wiring; the engine lives in the root package.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/sqlitebackup/litestream/config"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = ""

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run executes a command and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	copyAWSCredentialsFromEnv()
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return 1
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "replicate":
		err = (&ReplicateCommand{stdout: stdout, stderr: stderr}).Run(ctx, rest)
	case "restore":
		err = (&RestoreCommand{stdout: stdout, stderr: stderr}).Run(ctx, rest)
	case "version":
		err = (&VersionCommand{stdout: stdout}).Run(rest)
	case "ltx", "wal":
		if cmd == "wal" {
			fmt.Fprintln(stderr, `"wal" is deprecated: use "ltx"`)
		}
		err = (&LTXCommand{stdout: stdout, stderr: stderr}).Run(ctx, rest)
	case "databases":
		err = (&DatabasesCommand{stdout: stdout, stderr: stderr}).Run(rest)
	case "status":
		err = (&StatusCommand{stdout: stdout, stderr: stderr}).Run(ctx, rest)
	case "reset":
		err = (&ResetCommand{stdout: stdout, stderr: stderr}).Run(rest)
	case "info":
		err = (&InfoCommand{stdout: stdout, stderr: stderr}).Run(ctx, rest)
	case "list":
		err = (&ListCommand{stdout: stdout, stderr: stderr}).Run(ctx, rest)
	case "sync":
		err = (&SyncCommand{stdout: stdout, stderr: stderr}).Run(ctx, rest)
	case "register":
		err = (&RegisterCommand{stdout: stdout, stderr: stderr}).Run(ctx, rest)
	case "unregister":
		err = (&UnregisterCommand{stdout: stdout, stderr: stderr}).Run(ctx, rest)
	case "start":
		err = (&StartCommand{stdout: stdout, stderr: stderr}).Run(ctx, rest)
	case "stop":
		err = (&StopCommand{stdout: stdout, stderr: stderr}).Run(ctx, rest)
	case "verify":
		err = (&VerifyCommand{stdout: stdout, stderr: stderr}).Run(ctx, rest)
	default:
		if strings.HasPrefix(cmd, "-") {
			fmt.Fprint(stdout, usage)
			return 1
		}
		err = fmt.Errorf("litestream %s: unknown command", cmd)
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	default:
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
}

// copyAWSCredentialsFromEnv lets LITESTREAM_* credentials stand in for
// unset AWS_* ones, as upstream does.
func copyAWSCredentialsFromEnv() {
	for from, to := range map[string]string{
		"LITESTREAM_ACCESS_KEY_ID":     "AWS_ACCESS_KEY_ID",
		"LITESTREAM_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY",
	} {
		if v := os.Getenv(from); v != "" && os.Getenv(to) == "" {
			os.Setenv(to, v)
		}
	}
}

// newLogger builds the process logger from config, $LOG_LEVEL and the
// -log-level flag, in increasing priority.
func newLogger(cfg config.LoggingConfig, flagLevel string, stdout, stderr io.Writer) (*slog.Logger, error) {
	level := cfg.Level
	if v := os.Getenv("LOG_LEVEL"); v != "" {
		level = v
	}
	if flagLevel != "" {
		level = flagLevel
	}
	lvl, err := config.ParseLogLevel(level)
	if err != nil {
		return nil, err
	}
	w := stdout
	if cfg.Stderr {
		w = stderr
	}
	opts := &slog.HandlerOptions{Level: lvl, AddSource: cfg.Source, ReplaceAttr: replaceLevel}
	switch strings.ToLower(cfg.Type) {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "pretty":
		return slog.New(slog.NewTextHandler(w, prettyOptions(opts, w))), nil
	}
	return nil, fmt.Errorf("invalid logging.type %q", cfg.Type)
}

// registerConfigFlags adds -config and -no-expand-env.
func registerConfigFlags(fs *flag.FlagSet) (configPath *string, noExpandEnv *bool) {
	return fs.String("config", "", "config file (default $LITESTREAM_CONFIG or "+config.DefaultPath+")"),
		fs.Bool("no-expand-env", false, "do not expand $VAR in the config file")
}

// loadConfig reads the config named by the flag, env or default path.
func loadConfig(configPath string, noExpandEnv bool) (*config.Config, error) {
	p, err := config.ResolvePath(configPath)
	if err != nil {
		return nil, err
	}
	return config.Load(p, !noExpandEnv)
}

const usage = `litestream replicates SQLite databases to a replica and restores them.

Usage:

	litestream <command> [arguments]

The commands are:

	databases    lists the databases in the configuration file
	info         shows the running daemon's version, PID and uptime (*)
	list         lists the running daemon's databases (*)
	ltx          lists the LTX files in a replica
	register     adds a database to the running daemon (*)
	replicate    runs a server to replicate databases
	reset        removes a database's local LTX files (replicate stopped)
	restore      recovers a database from a replica
	start        resumes replicating a stopped database (*)
	status       shows each database's local and replica state
	stop         syncs a database one last time and stops replicating it (*)
	sync         syncs a database now; -wait until it is in the replica (*)
	unregister   stops replicating a database and forgets it (*)
	verify       checks a replica's chain, checksums and restorability
	version      prints the binary version
	help         prints this help

(*) talks to "litestream replicate" over its control socket
    (config: socket: {enabled: true}).

Run "litestream <command> -h" for a command's flags.
`
