package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sqlitebackup/litestream/config"
)

// ResetCommand removes a database's local LTX files so the next sync
// writes a full image of it. It must run while replicate is stopped:
// a running daemon keeps its position in memory.
type ResetCommand struct {
	stdout, stderr io.Writer
}

// Run executes the command.
func (c *ResetCommand) Run(args []string) error {
	flags := flag.NewFlagSet("litestream-reset", flag.ContinueOnError)
	flags.SetOutput(c.stderr)
	configPath, noExpandEnv := registerConfigFlags(flags)
	dryRun := flags.Bool("dry-run", false, "list what would be removed, remove nothing")
	flags.Usage = func() { fmt.Fprint(c.stderr, resetUsage) }
	if err := flags.Parse(args); err != nil {
		return err
	}
	if err := needOneArg(flags.Args(), "database path", "litestream reset /path/to/db"); err != nil {
		return err
	}
	dbPath, err := config.CleanDBPath(flags.Arg(0))
	if err != nil {
		return err
	}
	if fi, err := os.Stat(dbPath); err != nil {
		return fmt.Errorf("database %s does not exist: %w", dbPath, err)
	} else if fi.IsDir() {
		return fmt.Errorf("database path %s is a directory", dbPath)
	}
	metaPath, err := resetMetaPath(dbPath, *configPath, *noExpandEnv)
	if err != nil {
		return err
	}
	ltxDir := filepath.Join(metaPath, "ltx")
	files, err := listFiles(ltxDir)
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(c.stdout, "No local state to reset for %s (%s does not exist)\n", dbPath, ltxDir)
		return nil
	} else if err != nil {
		return err
	}
	if *dryRun {
		fmt.Fprintf(c.stdout, "Would remove %d files in %s:\n", len(files), ltxDir)
		for _, f := range files {
			fmt.Fprintln(c.stdout, f)
		}
		return nil
	}
	if err := os.RemoveAll(ltxDir); err != nil {
		return fmt.Errorf("reset %s: %w", dbPath, err)
	}
	fmt.Fprintf(c.stdout, "Reset %s: removed %d files in %s; the next sync writes a full image\n", dbPath, len(files), ltxDir)
	return nil
}

// resetMetaPath finds the database's meta directory. With -config (or a
// config file at the default location) the database's entry decides;
// without a config file, the default beside the database is used, as
// upstream does.
func resetMetaPath(dbPath, configPath string, noExpandEnv bool) (string, error) {
	defaultMeta := effectiveMetaPath(&config.DBConfig{Path: dbPath})
	p, err := config.ResolvePath(configPath)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(p); configPath == "" && errors.Is(err, fs.ErrNotExist) {
		return defaultMeta, nil
	}
	cfg, err := config.Load(p, !noExpandEnv)
	if err != nil {
		return "", err
	}
	dbc, err := findDBConfig(cfg, dbPath)
	if err != nil {
		if configPath == "" {
			return defaultMeta, nil // not in the default config: its default meta directory
		}
		return "", err
	}
	return effectiveMetaPath(dbc), nil
}

// listFiles returns the regular files under root, in lexical order.
func listFiles(root string) ([]string, error) {
	if _, err := os.Stat(root); err != nil {
		return nil, err
	}
	var files []string
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", root, err)
	}
	return files, nil
}

const resetUsage = `The reset command removes a database's local LTX files (the ltx
directory in its meta directory), so the next sync writes a full image of
the database. Use it when local state is damaged or the replica was
replaced. Run it only while "litestream replicate" is stopped.

Usage:

	litestream reset [arguments] DB_PATH

Arguments:

	-config PATH          configuration file, to find the meta directory
	                      (default $LITESTREAM_CONFIG or /etc/litestream.yml
	                      if it exists, else the default meta directory)
	-no-expand-env        do not expand $VAR in the configuration file
	-dry-run              list the files that would be removed
`
