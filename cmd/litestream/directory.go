package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/config"
)

// This file turns `dir:` config entries into one database config per
// SQLite file found under the directory, and finds the entry a database
// path belongs to (for restore, ltx, status and reset). Watching a
// directory for changes is in directory_watch.go.

// sqliteMagic is the first 16 bytes of every SQLite database file.
const sqliteMagic = "SQLite format 3\x00"

// metaSuffix ends the name of every meta directory.
const metaSuffix = "-litestream"

// dirSpec is a `dir:` entry with its paths cleaned and made absolute.
type dirSpec struct {
	entry    *config.DBConfig
	dir      string
	metaDir  string // meta-dir: <metaDir>/<rel>-litestream
	metaPath string // meta-path: <metaPath>/<rel dir>/.<file>-litestream
}

func newDirSpec(entry *config.DBConfig) (*dirSpec, error) {
	if entry.Pattern == "" {
		return nil, fmt.Errorf("dir %s: pattern is required", entry.Dir)
	}
	if _, err := filepath.Match(entry.Pattern, ""); err != nil {
		return nil, fmt.Errorf("dir %s: invalid pattern %q: %w", entry.Dir, entry.Pattern, err)
	}
	d := &dirSpec{entry: entry}
	var err error
	for _, p := range []struct {
		dst *string
		src string
	}{{&d.dir, entry.Dir}, {&d.metaDir, entry.MetaDir}, {&d.metaPath, entry.MetaPath}} {
		if p.src == "" {
			continue
		}
		if *p.dst, err = config.CleanDBPath(p.src); err != nil {
			return nil, fmt.Errorf("dir %s: %w", entry.Dir, err)
		}
	}
	return d, nil
}

// rel returns p relative to the directory, or false if p is outside it.
func (d *dirSpec) rel(p string) (string, bool) {
	r, err := filepath.Rel(d.dir, p)
	if err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return "", false
	}
	return r, true
}

// inScope reports whether databases directly inside directory p belong
// to this entry: the directory itself, or with recursive any directory
// below it except meta directories.
func (d *dirSpec) inScope(p string) bool {
	r, ok := d.rel(p)
	switch {
	case !ok:
		return false
	case r == ".":
		return true
	case !d.entry.Recursive:
		return false
	}
	for _, name := range strings.Split(r, string(filepath.Separator)) {
		if isMetaDirName(name) {
			return false
		}
	}
	return !isUnder(p, d.metaDir) && !isUnder(p, d.metaPath)
}

// covers reports whether a database at p would belong to this entry.
func (d *dirSpec) covers(p string) bool {
	base := filepath.Base(p)
	if isSidecarName(base) || !d.inScope(filepath.Dir(p)) {
		return false
	}
	ok, _ := filepath.Match(d.entry.Pattern, base)
	return ok
}

// scan returns the SQLite files the entry covers, sorted.
func (d *dirSpec) scan() ([]string, error) {
	return d.scanFrom(d.dir, nil)
}

// scanFrom walks root (a directory in scope) and returns the databases
// under it; visitDir, if set, is called for every directory in scope.
func (d *dirSpec) scanFrom(root string, visitDir func(string)) ([]string, error) {
	var found []string
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if p != root && errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walk
			}
			return err
		}
		if e.IsDir() {
			if !d.inScope(p) {
				return filepath.SkipDir
			}
			if visitDir != nil {
				visitDir(p)
			}
			return nil
		}
		if e.Type().IsRegular() && d.covers(p) && isSQLiteFile(p) {
			found = append(found, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan dir %s: %w", d.dir, err)
	}
	sort.Strings(found)
	return found, nil
}

// dbConfig returns the config of the database at p: the entry's settings
// with its own path, meta path and replica below the entry's replica.
func (d *dirSpec) dbConfig(p string) (*config.DBConfig, error) {
	rel, ok := d.rel(p)
	if !ok {
		return nil, fmt.Errorf("%s is not under dir %s", p, d.dir)
	}
	rs, err := d.entry.ReplicaSettings()
	if err != nil {
		return nil, fmt.Errorf("dir %s: %w", d.dir, err)
	}
	if rs, err = replicaBelow(rs, rel); err != nil {
		return nil, fmt.Errorf("dir %s: %w", d.dir, err)
	}
	dbc := *d.entry
	dbc.Path, dbc.Dir, dbc.Pattern = p, "", ""
	dbc.Recursive, dbc.Watch, dbc.MetaDir = false, false, ""
	dbc.Replica, dbc.Replicas = rs, nil
	switch {
	case d.metaDir != "":
		dbc.MetaPath = filepath.Join(d.metaDir, rel+metaSuffix)
	case d.metaPath != "":
		dbc.MetaPath = filepath.Join(d.metaPath, filepath.Dir(rel), "."+filepath.Base(rel)+metaSuffix)
	}
	return &dbc, nil
}

// replicaBelow returns a copy of rs whose replica root is rel below the
// original one: appended to the URL's path when a URL is set, else to
// `path:`. Every backend takes its root from one of the two.
func replicaBelow(rs *config.ReplicaSettings, rel string) (*config.ReplicaSettings, error) {
	cp := *rs
	rel = filepath.ToSlash(rel)
	if cp.URL == "" {
		cp.Path = path.Join(cp.Path, rel)
		return &cp, nil
	}
	u, err := config.ParseReplicaURL(cp.URL)
	if err != nil {
		return nil, err
	}
	u.Path, u.RawPath = path.Join("/", u.Path, rel), ""
	cp.URL = u.String()
	return &cp, nil
}

// effectiveMetaPath is the meta directory a DB built from dbc will use.
func effectiveMetaPath(dbc *config.DBConfig) string {
	if dbc.MetaPath != "" {
		return filepath.Clean(dbc.MetaPath)
	}
	dir, name := filepath.Split(dbc.Path)
	return filepath.Join(dir, "."+name+metaSuffix)
}

// expandMode says how strict expandDBConfigs is about `dir:` entries.
type expandMode int

const (
	// expandReplicate fails on a directory without databases unless it
	// is watched, as replicate does.
	expandReplicate expandMode = iota
	// expandList lists what exists, for the reporting commands.
	expandList
)

// expandDBConfigs returns one config per database: `path:` entries as they
// are and every database found under each `dir:` entry. Two entries
// naming the same database or the same meta directory are an error.
func expandDBConfigs(cfg *config.Config, mode expandMode) ([]*config.DBConfig, error) {
	var out []*config.DBConfig
	seen := newDBSet()
	for i, entry := range cfg.DBs {
		if entry.Dir == "" {
			if err := seen.add(entry, i); err != nil {
				return nil, err
			}
			out = append(out, entry)
			continue
		}
		dbcs, err := expandDir(entry, mode)
		if err != nil {
			return nil, fmt.Errorf("dbs[%d]: %w", i, err)
		}
		for _, dbc := range dbcs {
			if err := seen.add(dbc, i); err != nil {
				return nil, err
			}
		}
		out = append(out, dbcs...)
	}
	return out, nil
}

func expandDir(entry *config.DBConfig, mode expandMode) ([]*config.DBConfig, error) {
	d, err := newDirSpec(entry)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(d.dir); err != nil {
		return nil, fmt.Errorf("dir: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("dir %s is not a directory", d.dir)
	}
	paths, err := d.scan()
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 && !entry.Watch && mode == expandReplicate {
		return nil, fmt.Errorf("dir %s: no SQLite databases found matching %q", d.dir, entry.Pattern)
	}
	dbcs := make([]*config.DBConfig, 0, len(paths))
	for _, p := range paths {
		dbc, err := d.dbConfig(p)
		if err != nil {
			return nil, err
		}
		dbcs = append(dbcs, dbc)
	}
	return dbcs, nil
}

// dbSet detects two entries for one database or one meta directory.
type dbSet struct {
	paths map[string]int // database path -> dbs index
	metas map[string]string
}

func newDBSet() *dbSet {
	return &dbSet{paths: map[string]int{}, metas: map[string]string{}}
}

func (s *dbSet) add(dbc *config.DBConfig, index int) error {
	if j, ok := s.paths[dbc.Path]; ok {
		return fmt.Errorf("database %s is matched by both dbs[%d] and dbs[%d]", dbc.Path, j, index)
	}
	meta := effectiveMetaPath(dbc)
	if other, ok := s.metas[meta]; ok {
		return fmt.Errorf("databases %s and %s would share the meta directory %s", other, dbc.Path, meta)
	}
	s.paths[dbc.Path], s.metas[meta] = index, dbc.Path
	return nil
}

func (s *dbSet) remove(dbc *config.DBConfig) {
	delete(s.paths, dbc.Path)
	delete(s.metas, effectiveMetaPath(dbc))
}

// findDBConfig returns the config of the database at dbPath (absolute):
// its `path:` entry, or one derived from the `dir:` entry that covers it.
// The database file need not exist, so a lost database can be restored.
func findDBConfig(cfg *config.Config, dbPath string) (*config.DBConfig, error) {
	for _, entry := range cfg.DBs {
		if entry.Dir == "" && entry.Path == dbPath {
			return entry, nil
		}
	}
	for i, entry := range cfg.DBs {
		if entry.Dir == "" {
			continue
		}
		d, err := newDirSpec(entry)
		if err != nil {
			return nil, fmt.Errorf("dbs[%d]: %w", i, err)
		}
		if d.covers(dbPath) {
			return d.dbConfig(dbPath)
		}
	}
	return nil, fmt.Errorf("database %s is not in the config file", dbPath)
}

// isSQLiteFile reports whether p is a file that starts with the SQLite
// header. An empty file is not (yet) a database.
func isSQLiteFile(p string) bool {
	fi, err := os.Stat(p)
	// CheckDBFile reads through the engine's shared descriptor: closing a
	// descriptor of our own would drop the SQLite locks of the databases
	// this process replicates.
	return err == nil && fi.Mode().IsRegular() && fi.Size() >= int64(len(sqliteMagic)) && litestream.CheckDBFile(p) == nil
}

// isSidecarName reports whether a file name belongs to SQLite's own
// files next to a database rather than to a database.
func isSidecarName(name string) bool {
	for _, s := range []string{"-wal", "-shm", "-journal"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// isMetaDirName reports whether a directory name is a default meta
// directory (".<db>-litestream").
func isMetaDirName(name string) bool {
	return strings.HasPrefix(name, ".") && strings.HasSuffix(name, metaSuffix)
}

// isUnder reports whether p is dir or inside it; false for dir "".
func isUnder(p, dir string) bool {
	if dir == "" {
		return false
	}
	return p == dir || strings.HasPrefix(p, dir+string(filepath.Separator))
}
