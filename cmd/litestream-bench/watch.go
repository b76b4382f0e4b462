package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/superfly/ltx"
)

// replicaWatcher watches a file replica directory tree with inotify. It
// records when each LTX file appears (the tools write <name>.tmp and
// rename it, so a file is complete when its name appears), counts the
// filesystem events in the tree, and finds which file first carries each
// expected marker, by decoding the file's pages off the clock.
type replicaWatcher struct {
	root string
	w    *fsnotify.Watcher
	work chan observed
	quit chan struct{}
	done sync.WaitGroup

	mu       sync.Mutex
	seen     map[string]bool
	files    []observed // in order of appearance
	events   int64      // filesystem events on files in the tree
	pending  map[string]*markerWait
	decodeOK int
	errs     []error
}

// observed is one LTX file as it appeared in the replica.
type observed struct {
	Path  string
	Level int
	At    time.Time
}

type markerWait struct {
	marker []byte
	found  chan time.Time // receives the appearance time of the first file holding it
}

func newReplicaWatcher(root string) (*replicaWatcher, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	w, err := fsnotify.NewBufferedWatcher(4096)
	if err != nil {
		return nil, fmt.Errorf("replica watcher: %w", err)
	}
	rw := &replicaWatcher{root: root, w: w, work: make(chan observed, 1<<16), quit: make(chan struct{}),
		seen: map[string]bool{}, pending: map[string]*markerWait{}}
	if err := rw.addTree(root); err != nil {
		w.Close()
		return nil, err
	}
	rw.done.Add(2)
	go rw.loop()
	go rw.decodeLoop()
	return rw, nil
}

// addTree watches dir and every directory below it, and reports files
// already there (they may have been created before the watch was added).
func (rw *replicaWatcher) addTree(dir string) error {
	if err := rw.w.Add(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("list %s: %w", dir, err)
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			if err := rw.addTree(p); err != nil {
				return err
			}
		} else {
			rw.noteFile(p, time.Now())
		}
	}
	return nil
}

func (rw *replicaWatcher) loop() {
	defer rw.done.Done()
	for {
		select {
		case <-rw.quit:
			return
		case err, ok := <-rw.w.Errors:
			if !ok {
				return
			}
			rw.fail(fmt.Errorf("replica watcher: %w", err))
		case ev, ok := <-rw.w.Events:
			if !ok {
				return
			}
			at := time.Now()
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					if err := rw.addTree(ev.Name); err != nil {
						rw.fail(err)
					}
					continue
				}
			}
			rw.mu.Lock()
			rw.events++
			rw.mu.Unlock()
			if ev.Has(fsnotify.Create) {
				rw.noteFile(ev.Name, at)
			}
		}
	}
}

func (rw *replicaWatcher) fail(err error) {
	rw.mu.Lock()
	rw.errs = append(rw.errs, err)
	rw.mu.Unlock()
}

// noteFile records the first appearance of an LTX file.
func (rw *replicaWatcher) noteFile(path string, at time.Time) {
	if !strings.HasSuffix(path, ".ltx") {
		return
	}
	level, err := strconv.Atoi(filepath.Base(filepath.Dir(path)))
	if err != nil {
		return
	}
	rw.mu.Lock()
	if rw.seen[path] {
		rw.mu.Unlock()
		return
	}
	rw.seen[path] = true
	o := observed{Path: path, Level: level, At: at}
	rw.files = append(rw.files, o)
	rw.mu.Unlock()
	rw.work <- o
}

// expect registers a marker (committed by the caller but possibly not yet
// replicated) and returns a channel that receives the appearance time of
// the first level-0 (or initial snapshot) file holding it. Register
// before committing.
func (rw *replicaWatcher) expect(marker []byte) <-chan time.Time {
	mw := &markerWait{marker: marker, found: make(chan time.Time, 1)}
	rw.mu.Lock()
	rw.pending[string(marker)] = mw
	rw.mu.Unlock()
	return mw.found
}

func (rw *replicaWatcher) decodeLoop() {
	defer rw.done.Done()
	buf := make([]byte, 64<<10)
	for {
		select {
		case <-rw.quit:
			return
		case o := <-rw.work:
			// Level 0, or level 9: this tool's first file of an empty
			// replica (the initial full image) goes there.
			if o.Level != 0 && o.Level != 9 {
				continue
			}
			if err := rw.search(o, buf); err != nil {
				rw.fail(err)
			}
		}
	}
}

// search decodes an L0 file and resolves every pending marker found in
// one of its pages. Files are only decoded while markers are pending.
func (rw *replicaWatcher) search(o observed, buf []byte) error {
	rw.mu.Lock()
	waits := make([]*markerWait, 0, len(rw.pending))
	for _, mw := range rw.pending {
		waits = append(waits, mw)
	}
	rw.mu.Unlock()
	if len(waits) == 0 {
		return nil
	}
	f, err := os.Open(o.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // removed by retention before we got to it
	} else if err != nil {
		return err
	}
	defer f.Close()
	found, err := findMarkers(f, waits, buf)
	if err != nil {
		return fmt.Errorf("decode %s: %w", o.Path, err)
	}
	rw.mu.Lock()
	defer rw.mu.Unlock()
	rw.decodeOK++
	for _, mw := range found {
		delete(rw.pending, string(mw.marker))
		mw.found <- o.At
	}
	return nil
}

// findMarkers returns the waits whose marker occurs in a page of the LTX
// file read from r.
func findMarkers(r io.Reader, waits []*markerWait, buf []byte) ([]*markerWait, error) {
	dec := ltx.NewDecoder(r)
	dec.SetRetainPageIndex(false)
	if err := dec.DecodeHeader(); err != nil {
		return nil, err
	}
	page := buf[:dec.Header().PageSize]
	var found []*markerWait
	for len(found) < len(waits) {
		var ph ltx.PageHeader
		if err := dec.DecodePage(&ph, page); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return found, err
		}
		for _, mw := range waits {
			if bytes.Contains(page, mw.marker) && !containsWait(found, mw) {
				found = append(found, mw)
			}
		}
	}
	return found, nil
}

func containsWait(ws []*markerWait, w *markerWait) bool {
	for _, x := range ws {
		if x == w {
			return true
		}
	}
	return false
}

// counts returns the number of filesystem events so far and the files
// that appeared, per level.
func (rw *replicaWatcher) counts() (events int64, files []observed) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	return rw.events, append([]observed(nil), rw.files...)
}

func (rw *replicaWatcher) err() error {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	return errors.Join(rw.errs...)
}

func (rw *replicaWatcher) close() {
	close(rw.quit)
	rw.w.Close()
	rw.done.Wait()
}

// waitMarker waits for a marker's file, failing after timeout or if the
// child exits.
func waitMarker(ch <-chan time.Time, c *child, timeout time.Duration) (time.Time, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var childDone <-chan struct{}
	if c != nil {
		childDone = c.done
	}
	select {
	case at := <-ch:
		return at, nil
	case <-childDone:
		return time.Time{}, c.exited()
	case <-deadline.C:
		return time.Time{}, fmt.Errorf("marker not in the replica after %s", timeout)
	}
}

// dirSize sums the sizes of the LTX files under root.
func dirSize(root string) (int64, int, error) {
	var total int64
	var n int
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && strings.HasSuffix(p, ".ltx") {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			total += fi.Size()
			n++
		}
		return nil
	})
	return total, n, err
}
