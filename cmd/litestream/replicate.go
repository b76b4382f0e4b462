package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/config"
	"github.com/sqlitebackup/litestream/file"
	"github.com/sqlitebackup/litestream/progress"
)

// ReplicateCommand runs the replication daemon.
type ReplicateCommand struct {
	stdout, stderr io.Writer
	logger         *slog.Logger
	cfg            *config.Config
	dbcs           []*config.DBConfig // one per database, `dir:` entries expanded
	dbs            []*litestream.DB
	store          *litestream.Store
	watcher        *dirWatcher     // nil unless a `dir:` entry has watch: true
	leases         *leaseWatcher   // set while the daemon runs
	bars           *progress.Lines // -once progress on a terminal; nil otherwise
}

// Run executes the command.
func (c *ReplicateCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("litestream-replicate", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	configPath, noExpandEnv := registerConfigFlags(fs)
	execCmd := fs.String("exec", "", "run this command and stop replicating when it exits")
	logLevel := fs.String("log-level", "", "log level: trace, debug, info, warn or error")
	once := fs.Bool("once", false, "sync every database once and exit")
	forceSnapshot := fs.Bool("force-snapshot", false, "with -once: also write a snapshot")
	enforceRetention := fs.Bool("enforce-retention", false, "with -once: also apply retention")
	restoreIfMissing := fs.Bool("restore-if-db-not-exists", false, "restore missing databases from their replica first")
	fs.Usage = func() { fmt.Fprint(c.stderr, replicateUsage) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkNoTrailingFlags(fs.Args()); err != nil {
		return err
	}
	if (*forceSnapshot || *enforceRetention) && !*once {
		return errors.New("-force-snapshot and -enforce-retention require -once")
	}
	if *once && *execCmd != "" {
		return errors.New("-once cannot be used with -exec")
	}

	var err error
	switch fs.NArg() {
	case 0:
		if c.cfg, err = loadConfig(*configPath, *noExpandEnv); err != nil {
			return err
		}
	case 1:
		return fmt.Errorf("must specify at least one replica URL for %s\nTry: litestream replicate DB_PATH REPLICA_URL", fs.Arg(0))
	case 2:
		if *configPath != "" {
			return errors.New("cannot specify a replica URL and -config together")
		}
		if c.cfg, err = adHocConfig(fs.Arg(0), fs.Arg(1)); err != nil {
			return err
		}
	default:
		return errors.New("multiple replicas on a single database are no longer supported")
	}
	if *execCmd == "" {
		*execCmd = c.cfg.Exec
	}
	logStdout, logStderr := c.stdout, c.stderr
	if *once {
		c.bars, logStdout, logStderr = c.onceProgress()
	}
	if c.logger, err = newLogger(c.cfg.Logging, *logLevel, logStdout, logStderr); err != nil {
		return err
	}
	c.logger.Info("litestream", "version", versionString())

	if c.dbcs, err = expandDBConfigs(c.cfg, expandReplicate); err != nil {
		return err
	}
	for _, dbc := range c.dbcs {
		db, err := newDB(dbc, c.cfg, c.logger)
		if err != nil {
			return fmt.Errorf("database %s: %w", dbc.Path, err)
		}
		if *restoreIfMissing || dbc.RestoreIfDBNotExists {
			if err := restoreIfNotExists(ctx, db, c.logger); err != nil {
				return err
			}
		}
		c.dbs = append(c.dbs, db)
	}
	if len(c.dbs) == 0 && !hasWatchedDir(c.cfg) {
		c.logger.Error("no databases specified in configuration")
	}

	c.store = newStore(c.cfg, c.dbs, c.logger)
	if *once {
		return c.runOnce(ctx, *forceSnapshot, *enforceRetention)
	}
	return c.runDaemon(ctx, *execCmd)
}

// checkNoTrailingFlags rejects "-flag" after positional arguments, which
// Go's flag package would otherwise treat as a positional argument.
func checkNoTrailingFlags(args []string) error {
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			return fmt.Errorf("flag %s must come before the database path", a)
		}
	}
	return nil
}

// adHocConfig builds the config of "replicate DB_PATH REPLICA_URL".
func adHocConfig(dbPath, replicaURL string) (*config.Config, error) {
	if _, err := config.ParseReplicaURL(replicaURL); err != nil {
		return nil, err
	}
	p, err := config.CleanDBPath(dbPath)
	if err != nil {
		return nil, err
	}
	return &config.Config{DBs: []*config.DBConfig{{Path: p, Replica: &config.ReplicaSettings{URL: replicaURL}}}}, nil
}

// newStore applies the store-wide config: levels, snapshots, retention.
func newStore(cfg *config.Config, dbs []*litestream.DB, logger *slog.Logger) *litestream.Store {
	s := litestream.NewStore(dbs)
	s.Logger = logger
	if cfg.Levels != nil {
		s.CompactionIntervals = nil
		for _, l := range cfg.Levels {
			s.CompactionIntervals = append(s.CompactionIntervals, l.Interval.D())
		}
	}
	snapshot := cfg.Snapshot
	for _, dbc := range cfg.DBs { // per-database snapshot keys apply store-wide, as upstream
		if dbc.Snapshot != nil {
			if snapshot.Interval == nil {
				snapshot.Interval = dbc.Snapshot.Interval
			}
			if snapshot.Retention == nil {
				snapshot.Retention = dbc.Snapshot.Retention
			}
		}
	}
	if d := snapshot.Interval; d != nil {
		s.SnapshotInterval = d.D()
	}
	if d := snapshot.Retention; d != nil {
		s.SnapshotRetention = d.D()
	}
	if d := cfg.L0Retention; d != nil {
		s.L0Retention = d.D()
	}
	if d := cfg.L0RetentionCheckInterval; d != nil {
		s.L0RetentionCheckInterval = d.D()
	}
	if e := cfg.Retention.Enabled; e != nil {
		s.RetentionEnabled = *e
		if !*e {
			logger.Warn("retention disabled: replica files are never deleted; use bucket lifecycle rules")
		}
	}
	if d := cfg.Validation.Interval; d != nil {
		s.ValidationInterval = d.D()
	}
	if d := cfg.Verify.Interval; d != nil {
		s.VerifyInterval = d.D()
	}
	return s
}

// newDB builds a DB and its replica from config.
func newDB(dbc *config.DBConfig, cfg *config.Config, logger *slog.Logger) (*litestream.DB, error) {
	if err := checkDBPath(dbc.Path); err != nil {
		return nil, err
	}
	db := litestream.NewDB(dbc.Path)
	db.Logger = logger
	if dbc.MetaPath != "" {
		db.SetMetaPath(dbc.MetaPath)
	}
	if d := dbc.MonitorInterval; d != nil {
		db.MonitorInterval = d.D()
	}
	if d := dbc.CheckpointInterval; d != nil {
		db.CheckpointInterval = d.D()
	}
	if d := dbc.BusyTimeout; d != nil {
		db.BusyTimeout = d.D()
	}
	if n := dbc.MinCheckpointPageN; n != nil {
		db.MinCheckpointPageN = *n
	}
	if n := dbc.TruncatePageN; n != nil && *n > 0 {
		db.TruncatePageN = *n
	}
	if n := dbc.MaxSyncWALBytes; n != nil {
		db.MaxSyncWALBytes = *n
	}
	rs, err := dbc.ReplicaSettings()
	if err != nil {
		return nil, err
	}
	client, err := config.NewReplicaClient(rs)
	if err != nil {
		return nil, err
	}
	if fc, ok := unwrapClient(client).(*file.ReplicaClient); ok {
		matchDBPermissions(fc, dbc.Path)
	}
	r := litestream.NewReplica(db, client)
	r.Logger = logger
	if d := rs.SyncInterval; d != nil {
		r.SyncInterval = d.D()
	}
	applyLeaseSettings(r, rs.Lease)
	return db, nil
}

// checkDBPath fails early on a path that can never hold a database: a
// missing or unreadable parent directory, a directory, or a file that is
// not SQLite. A missing file is fine: replication starts when it appears.
func checkDBPath(path string) error {
	dir := filepath.Dir(path)
	if _, err := os.ReadDir(dir); err != nil {
		return fmt.Errorf("database directory: %w", err)
	}
	if err := litestream.CheckDBFile(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// matchDBPermissions gives replica files the database file's mode, so a
// backup is no more readable than the data it holds.
func matchDBPermissions(c *file.ReplicaClient, dbPath string) {
	if fi, err := os.Stat(dbPath); err == nil {
		c.FileMode = fi.Mode().Perm()
		c.DirMode = fi.Mode().Perm() | 0o100 | (fi.Mode().Perm()&0o040)>>3 | (fi.Mode().Perm()&0o004)>>2
	}
}

func restoreIfNotExists(ctx context.Context, db *litestream.DB, logger *slog.Logger) error {
	if _, err := os.Stat(db.Path()); err == nil {
		return nil
	}
	_, err := litestream.Restore(ctx, db.Replica.Client, litestream.RestoreOptions{OutputPath: db.Path(), IntegrityCheck: "quick"})
	if errors.Is(err, litestream.ErrNoBackup) {
		logger.Info("no backup to restore; starting fresh", "db", db.Path())
		return nil
	} else if err != nil {
		return fmt.Errorf("restore %s: %w", db.Path(), err)
	}
	logger.Info("restored database from replica", "db", db.Path())
	return nil
}

func (c *ReplicateCommand) shutdownTimeout() time.Duration {
	if d := c.cfg.ShutdownSyncTimeout; d != nil {
		return d.D()
	}
	return litestream.DefaultShutdownSyncTimeout
}

// runOnce syncs every database and its replica once, optionally writing
// a snapshot and applying retention, with no background work.
func (c *ReplicateCommand) runOnce(ctx context.Context, forceSnapshot, enforceRetention bool) error {
	defer c.bars.Close()
	var errs []error
	for _, db := range c.dbs {
		db.OnProgress = progressHook(c.bars, filepath.Base(db.Path())+" ")
		if err := c.syncOnce(ctx, db, forceSnapshot, enforceRetention); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", db.Path(), err))
		}
		if err := db.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: close: %w", db.Path(), err))
		}
	}
	return errors.Join(errs...)
}

func (c *ReplicateCommand) syncOnce(ctx context.Context, db *litestream.DB, forceSnapshot, enforceRetention bool) error {
	if err := db.Sync(ctx); err != nil {
		return err
	}
	if err := db.Replica.Sync(ctx); err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	if forceSnapshot {
		info, err := db.Replica.Snapshot(ctx)
		if err != nil {
			return err
		}
		if info != nil {
			c.logger.Info("snapshot written", "db", db.Path(), "max_txid", info.MaxTXID.String())
		}
	}
	if enforceRetention {
		return c.store.EnforceAllRetention(ctx, db.Replica)
	}
	return nil
}

// onceProgress returns the progress bars of -once, drawn on the terminal
// the log goes to (none when it is not a terminal or the log is JSON), and
// the writers for the logger: log lines pass through the bars so they
// never tear a bar's line.
func (c *ReplicateCommand) onceProgress() (bars *progress.Lines, stdout, stderr io.Writer) {
	stdout, stderr = c.stdout, c.stderr
	logOut := &stdout
	if c.cfg.Logging.Stderr {
		logOut = &stderr
	}
	f, _ := (*logOut).(*os.File)
	logType := strings.ToLower(c.cfg.Logging.Type)
	if bars = progress.LinesForFile(f, logType == "json"); bars != nil {
		*logOut = bars
	}
	return bars, stdout, stderr
}

// runDaemon replicates until a signal arrives or the -exec child exits,
// then closes every database with a final sync.
func (c *ReplicateCommand) runDaemon(ctx context.Context, execCmd string) error {
	c.leases = newLeaseWatcher() // lease.wait: false ends the run
	defer c.leases.Stop()
	if err := c.store.Open(); err != nil {
		return err
	}
	for _, db := range c.dbs {
		c.leases.watch(db)
		c.logger.Info("replicating", "db", db.Path(), "replica", db.Replica.Client.Type())
	}
	ops := c.startOps() // metrics, control socket, heartbeat (daemon_ops.go)
	defer ops.stop()
	var err error
	if c.watcher, err = newDirWatcher(c.cfg, c.dbcs, c.logger, c.addDB, c.removeDB); err != nil {
		c.close(ctx, nil)
		return err
	} else if c.watcher != nil {
		c.watcher.Run()
	}

	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)

	var child *exec.Cmd
	childDone := make(chan error, 1)
	if execCmd != "" {
		if child, err = startChild(execCmd, c.stdout, c.stderr); err != nil {
			c.close(ctx, signals)
			return err
		}
		go func() { childDone <- child.Wait() }()
	}

	var runErr error
	select {
	case sig := <-signals:
		c.logger.Info("signal received, shutting down", "signal", sig.String())
		if child != nil {
			_ = child.Process.Signal(sig)
			runErr = <-childDone
		}
	case runErr = <-childDone:
		c.logger.Info("subprocess exited, shutting down")
	case runErr = <-c.leases.Err():
		c.logger.Error("replica lease unavailable and lease wait is off; shutting down", "error", runErr)
		if child != nil {
			_ = child.Process.Signal(syscall.SIGTERM)
			<-childDone
		}
	case <-ctx.Done():
	}
	ops.stop() // no control requests while the final syncs run
	if err := c.close(ctx, signals); err != nil {
		return err
	}
	return runErr
}

// addDB starts replicating a database found by the directory watcher,
// unless it already replicates (e.g. registered over the control socket).
func (c *ReplicateCommand) addDB(dbc *config.DBConfig) error {
	for _, db := range c.store.DBs() {
		if db.Path() == dbc.Path {
			return nil
		}
	}
	db, err := newDB(dbc, c.cfg, c.logger)
	if err != nil {
		return err
	}
	if err := c.store.AddDB(db); err != nil {
		return err
	}
	c.leases.watch(db)
	c.logger.Info("replicating", "db", db.Path(), "replica", db.Replica.Client.Type())
	return nil
}

// removeDB stops replicating a database that was removed, after a final
// sync bounded by shutdown-sync-timeout.
func (c *ReplicateCommand) removeDB(path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), max(c.shutdownTimeout(), time.Millisecond))
	defer cancel()
	return c.store.RemoveDB(ctx, path)
}

func hasWatchedDir(cfg *config.Config) bool {
	for _, dbc := range cfg.DBs {
		if dbc.Dir != "" && dbc.Watch {
			return true
		}
	}
	return false
}

// close stops the directory watcher, then runs the final syncs, bounded
// by shutdown-sync-timeout; a second signal abandons them.
func (c *ReplicateCommand) close(ctx context.Context, signals <-chan os.Signal) error {
	if c.watcher != nil {
		c.watcher.Close()
	}
	// The final sync outlives the run context (cancelled like a signal by
	// callers embedding the command); only the timeout bounds it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(c.shutdownTimeout(), time.Millisecond))
	defer cancel()
	go func() {
		select {
		case <-signals:
			c.logger.Warn("second signal: abandoning final sync")
			cancel()
		case <-ctx.Done():
		}
	}()
	return c.store.Close(ctx)
}

// startChild runs cmdline (split like a shell would, without expansion)
// with our environment and output.
func startChild(cmdline string, stdout, stderr io.Writer) (*exec.Cmd, error) {
	argv, err := splitCommandLine(cmdline)
	if err != nil {
		return nil, fmt.Errorf("-exec: %w", err)
	}
	if len(argv) == 0 {
		return nil, errors.New("-exec: empty command")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("-exec: start %s: %w", argv[0], err)
	}
	return cmd, nil
}

// splitCommandLine splits on spaces, honouring single and double quotes
// and backslash escapes.
func splitCommandLine(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inArg, quote, escape := false, rune(0), false
	for _, r := range s {
		switch {
		case escape:
			cur.WriteRune(r)
			escape = false
		case r == '\\' && quote != '\'':
			escape, inArg = true, true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inArg = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if quote != 0 || escape {
		return nil, fmt.Errorf("unterminated quote or escape in %q", s)
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args, nil
}

const replicateUsage = `The replicate command runs a server to replicate databases.

Usage:

	litestream replicate [arguments]
	litestream replicate [arguments] DB_PATH REPLICA_URL

Arguments:

	-config PATH
	    Configuration file (default $LITESTREAM_CONFIG or /etc/litestream.yml).
	-no-expand-env
	    Do not expand $VAR references in the configuration file.
	-exec CMD
	    Run CMD as a subprocess; replication stops when it exits.
	-log-level LEVEL
	    trace, debug, info, warn or error.
	-once
	    Sync every database and its replica once, then exit.
	-restore-if-db-not-exists
	    Restore databases that do not exist from their replica first.
`

// wrapper is a client layered over another, like encryption or metrics.
type wrapper interface {
	Unwrap() litestream.ReplicaClient
}

// unwrapClient returns the backend under wrappers such as encryption.
func unwrapClient(c litestream.ReplicaClient) litestream.ReplicaClient {
	for {
		u, ok := c.(wrapper)
		if !ok {
			return c
		}
		c = u.Unwrap()
	}
}
