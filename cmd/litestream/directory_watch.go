package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/sqlitebackup/litestream/config"
)

// dirWatchDelay is how long the watcher gathers events before acting on
// them, so a database being created is checked once its header is written.
var dirWatchDelay = 250 * time.Millisecond

// dirWatcher starts replicating databases that appear under watched `dir:`
// entries and stops (with a final sync) those that disappear. One
// fsnotify watcher serves every entry; one goroutine handles its events,
// so the maps below need no lock.
type dirWatcher struct {
	logger *slog.Logger
	specs  []*dirSpec
	start  func(*config.DBConfig) error // build, open and add a database
	stop   func(path string) error      // final sync, close and remove it

	w       *fsnotify.Watcher
	watched map[string]bool     // directories with a watch
	dbs     map[string]*dirSpec // replicating databases; nil spec: not ours to stop
	known   *dbSet              // paths and meta directories in use
	pending map[string]struct{} // paths changed since the last pass

	cancel context.CancelFunc
	done   chan struct{}
}

// newDirWatcher watches every `watch: true` entry of cfg. running lists
// the configs of the databases already replicating. It returns nil if no
// entry is watched.
func newDirWatcher(cfg *config.Config, running []*config.DBConfig, logger *slog.Logger,
	start func(*config.DBConfig) error, stop func(string) error) (*dirWatcher, error) {
	dw := &dirWatcher{
		logger: logger, start: start, stop: stop,
		watched: map[string]bool{}, dbs: map[string]*dirSpec{},
		known: newDBSet(), pending: map[string]struct{}{},
	}
	for _, entry := range cfg.DBs {
		if entry.Dir != "" && entry.Watch {
			d, err := newDirSpec(entry)
			if err != nil {
				return nil, err
			}
			dw.specs = append(dw.specs, d)
		}
	}
	if len(dw.specs) == 0 {
		return nil, nil
	}
	pathEntries := map[string]bool{}
	for _, entry := range cfg.DBs {
		if entry.Dir == "" {
			pathEntries[entry.Path] = true
		}
	}
	for _, dbc := range running {
		_ = dw.known.add(dbc, 0)
		if pathEntries[dbc.Path] {
			dw.dbs[dbc.Path] = nil // a `path:` entry keeps waiting for its file
		} else {
			dw.dbs[dbc.Path] = dw.watchingSpec(dbc.Path)
		}
	}
	var err error
	if dw.w, err = fsnotify.NewWatcher(); err != nil {
		return nil, fmt.Errorf("watch directories: %w", err)
	}
	return dw, nil
}

// watchingSpec returns the watched entry a database path belongs to.
func (dw *dirWatcher) watchingSpec(p string) *dirSpec {
	for _, d := range dw.specs {
		if d.covers(p) {
			return d
		}
	}
	return nil
}

// Run adds the watches, rescans every watched directory (catching
// databases created since the first scan) and handles events in the
// background until Close.
func (dw *dirWatcher) Run() {
	for _, d := range dw.specs {
		dw.reconcile(d.dir)
		dw.logger.Info("watching directory", "dir", d.dir, "pattern", d.entry.Pattern, "recursive", d.entry.Recursive)
	}
	ctx, cancel := context.WithCancel(context.Background())
	dw.cancel, dw.done = cancel, make(chan struct{})
	go dw.loop(ctx)
}

// Close stops watching. Databases keep replicating; the store closes them.
func (dw *dirWatcher) Close() {
	if dw.cancel != nil {
		dw.cancel()
		<-dw.done
	}
	dw.w.Close()
}

func (dw *dirWatcher) loop(ctx context.Context) {
	defer close(dw.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case ev, ok := <-dw.w.Events:
			if !ok {
				return
			}
			if dw.note(ev) && len(dw.pending) == 1 {
				timer.Reset(dirWatchDelay)
			}
		case err, ok := <-dw.w.Errors:
			if !ok {
				return
			}
			dw.onError(err)
			if len(dw.pending) > 0 {
				timer.Reset(dirWatchDelay)
			}
		case <-timer.C:
			dw.flush()
		}
	}
}

// note records an event worth acting on and reports whether it did.
func (dw *dirWatcher) note(ev fsnotify.Event) bool {
	p := filepath.Clean(ev.Name)
	switch {
	case ev.Op == fsnotify.Chmod, isSidecarName(filepath.Base(p)):
		return false
	case !ev.Has(fsnotify.Create) && !ev.Has(fsnotify.Remove) && !ev.Has(fsnotify.Rename):
		// A write matters only while a new file may still become a
		// database; writes to replicating databases are the engine's.
		if _, ok := dw.dbs[p]; ok || dw.watchingSpec(p) == nil {
			return false
		}
	}
	if _, ok := dw.pending[p]; ok {
		return false
	}
	dw.pending[p] = struct{}{}
	return true
}

// onError rescans everything after lost events; other errors are logged.
func (dw *dirWatcher) onError(err error) {
	if !errors.Is(err, fsnotify.ErrEventOverflow) {
		dw.logger.Error("directory watch", "error", err)
		return
	}
	dw.logger.Warn("directory watch lost events; rescanning")
	for _, d := range dw.specs {
		dw.pending[d.dir] = struct{}{}
	}
}

// flush handles the pending paths: gone ones first, so a database moved
// to a new name stops under the old name before it starts under the new.
func (dw *dirWatcher) flush() {
	var gone, present []string
	for p := range dw.pending {
		if _, err := os.Lstat(p); err != nil {
			gone = append(gone, p)
		} else {
			present = append(present, p)
		}
	}
	clear(dw.pending)
	sort.Strings(gone)
	sort.Strings(present)
	for _, p := range append(gone, present...) {
		dw.reconcile(p)
	}
}

// reconcile brings replication in line with what exists at p: databases
// at or under p that are gone stop; a directory at p is watched and
// scanned; a database file at p starts.
func (dw *dirWatcher) reconcile(p string) {
	dw.stopGone(p)
	fi, err := os.Stat(p)
	switch {
	case err != nil:
		dw.unwatch(p)
	case fi.IsDir():
		dw.watchTree(p)
	case fi.Mode().IsRegular():
		if d := dw.watchingSpec(p); d != nil && isSQLiteFile(p) {
			dw.startDB(d, p)
		}
	}
}

// stopGone stops the watched databases at or under p whose file is gone.
func (dw *dirWatcher) stopGone(p string) {
	var gone []string
	for dbPath, d := range dw.dbs {
		if d == nil || !isUnder(dbPath, p) {
			continue
		}
		if fi, err := os.Stat(dbPath); err != nil || !fi.Mode().IsRegular() {
			gone = append(gone, dbPath)
		}
	}
	sort.Strings(gone)
	for _, dbPath := range gone {
		dw.stopDB(dbPath)
	}
}

// unwatch drops the watches at or under a directory that is gone (a
// renamed directory keeps its inotify watch under the old name).
func (dw *dirWatcher) unwatch(p string) {
	for dir := range dw.watched {
		if isUnder(dir, p) {
			_ = dw.w.Remove(dir) // already gone with a deleted directory
			delete(dw.watched, dir)
		}
	}
}

// watchTree watches every in-scope directory under p and starts the
// databases in them. Watching before listing closes the race with files
// created meanwhile: they either show up in the listing or cause an event.
func (dw *dirWatcher) watchTree(p string) {
	for _, d := range dw.specs {
		if _, ok := d.rel(p); !ok || !d.inScope(p) {
			continue
		}
		paths, err := d.scanFrom(p, dw.watch)
		if err != nil {
			dw.logger.Error("directory watch", "dir", d.dir, "error", err)
		}
		for _, dbPath := range paths {
			if _, ok := dw.dbs[dbPath]; !ok {
				dw.startDB(d, dbPath)
			}
		}
	}
}

func (dw *dirWatcher) watch(dir string) {
	if dw.watched[dir] {
		return
	}
	if err := dw.w.Add(dir); err != nil {
		dw.logger.Error("directory watch", "dir", dir, "error", err)
		return
	}
	dw.watched[dir] = true
}

func (dw *dirWatcher) startDB(d *dirSpec, p string) {
	if _, ok := dw.dbs[p]; ok {
		return
	}
	dbc, err := d.dbConfig(p)
	if err == nil {
		err = dw.known.add(dbc, 0)
	}
	if err != nil {
		dw.logger.Error("cannot replicate new database", "db", p, "error", err)
		return
	}
	if err := dw.start(dbc); err != nil {
		dw.known.remove(dbc)
		dw.logger.Error("cannot replicate new database", "db", p, "error", err)
		return
	}
	dw.dbs[p] = d
}

func (dw *dirWatcher) stopDB(p string) {
	d := dw.dbs[p]
	delete(dw.dbs, p)
	if dbc, err := d.dbConfig(p); err == nil {
		dw.known.remove(dbc)
	}
	if err := dw.stop(p); err != nil {
		dw.logger.Error("final sync of removed database", "db", p, "error", err)
		return
	}
	dw.logger.Info("stopped replicating removed database", "db", p)
}
