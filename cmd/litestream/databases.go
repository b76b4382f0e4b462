package main

import (
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
)

// DatabasesCommand lists the databases in the config file, with `dir:`
// entries expanded to the databases found under them.
type DatabasesCommand struct {
	stdout, stderr io.Writer
}

// databaseJSON is one row of "databases -json": upstream's fields plus
// where the database's local state lives.
type databaseJSON struct {
	Path     string `json:"path"`
	Replica  string `json:"replica"`
	MetaPath string `json:"meta_path"`
}

// Run executes the command.
func (c *DatabasesCommand) Run(args []string) error {
	fs := flag.NewFlagSet("litestream-databases", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	configPath, noExpandEnv := registerConfigFlags(fs)
	jsonOut := fs.Bool("json", false, "print JSON")
	fs.Usage = func() { fmt.Fprint(c.stderr, databasesUsage) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("too many arguments: %q", fs.Args())
	}
	dbcs, err := loadDatabases(*configPath, *noExpandEnv)
	if err != nil {
		return err
	}
	rows := make([]databaseJSON, 0, len(dbcs))
	for _, dbc := range dbcs {
		rows = append(rows, databaseJSON{Path: dbc.Path, Replica: replicaType(dbc), MetaPath: effectiveMetaPath(dbc)})
	}
	if *jsonOut {
		return writeJSON(c.stdout, rows)
	}
	w := tabwriter.NewWriter(c.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "path\treplica")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\n", r.Path, r.Replica)
	}
	return w.Flush()
}

const databasesUsage = `The databases command lists the databases in the configuration file.
Databases under a dir: entry are listed one by one, as found now.

Usage:

	litestream databases [arguments]

Arguments:

	-config PATH          configuration file
	-no-expand-env        do not expand $VAR in the configuration file
	-json                 print JSON
`
