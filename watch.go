package litestream

import (
	"path/filepath"
	"sync"

	"github.com/fsnotify/fsnotify"
)

// fileWatcher shares one inotify instance among every DB in the process:
// the kernel limits instances per user (128 by default), and a process
// may replicate hundreds of databases. It watches directories and routes
// events for a file name to that file's subscribers.
type fileWatcher struct {
	mu      sync.Mutex
	w       *fsnotify.Watcher
	subs    map[string]map[chan struct{}]struct{} // file path -> channels
	dirRefs map[string]int
}

var sharedWatcher = &fileWatcher{
	subs:    make(map[string]map[chan struct{}]struct{}),
	dirRefs: make(map[string]int),
}

// watchFile sends on ch (without blocking) whenever path is created,
// written, renamed or removed. It returns a function that stops watching.
// If inotify is unavailable it does nothing, and callers' stat polling
// takes over.
func watchFile(path string, ch chan struct{}) (unwatch func(), ok bool) {
	return sharedWatcher.add(filepath.Clean(path), ch)
}

func (fw *fileWatcher) add(path string, ch chan struct{}) (func(), bool) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.w == nil {
		w, err := fsnotify.NewWatcher()
		if err != nil {
			return func() {}, false
		}
		fw.w = w
		go fw.run(w)
	}
	dir := filepath.Dir(path)
	if fw.dirRefs[dir] == 0 {
		if err := fw.w.Add(dir); err != nil {
			return func() {}, false
		}
	}
	fw.dirRefs[dir]++
	if fw.subs[path] == nil {
		fw.subs[path] = make(map[chan struct{}]struct{})
	}
	fw.subs[path][ch] = struct{}{}
	return func() { fw.remove(path, dir, ch) }, true
}

func (fw *fileWatcher) remove(path, dir string, ch chan struct{}) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	delete(fw.subs[path], ch)
	if len(fw.subs[path]) == 0 {
		delete(fw.subs, path)
	}
	if fw.dirRefs[dir]--; fw.dirRefs[dir] <= 0 {
		delete(fw.dirRefs, dir)
		_ = fw.w.Remove(dir)
	}
}

func (fw *fileWatcher) run(w *fsnotify.Watcher) {
	for {
		select {
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			fw.notify(filepath.Clean(ev.Name))
		case _, ok := <-w.Errors:
			if !ok {
				return
			}
			// Overflow or similar: wake everyone; a spurious sync is cheap.
			fw.notifyAll()
		}
	}
}

func (fw *fileWatcher) notify(path string) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	for ch := range fw.subs[path] {
		kick(ch)
	}
}

func (fw *fileWatcher) notifyAll() {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	for _, m := range fw.subs {
		for ch := range m {
			kick(ch)
		}
	}
}

// kick sends on a 1-buffered channel without blocking.
func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
