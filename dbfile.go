package litestream

import (
	"fmt"
	"os"
	"sync"
	"syscall"
)

// Descriptors of database files are shared within the process and kept
// open while the file exists. Closing any descriptor of a file drops every
// POSIX lock the process holds on it, and SQLite holds a shared lock on a
// WAL-mode database for as long as a connection is open: an application
// that embeds this package would lose its locks each time we closed our
// descriptor (on Close, or after reading the header), and another process
// could then take the database for its own, delete the WAL, or change the
// journal mode under it. SQLite keeps its own descriptors open for the
// same reason. A descriptor is closed once its file has no name left
// (deleted or replaced), when no other process can open it to lock.
var dbFiles = struct {
	sync.Mutex
	m map[fileID][]*os.File
}{m: map[fileID][]*os.File{}}

type fileID struct{ dev, ino uint64 }

func idOf(fi os.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{uint64(st.Dev), uint64(st.Ino)}, true
}

// keptFile is a shared database file descriptor; Close leaves it open.
type keptFile struct{ *os.File }

func (keptFile) Close() error { return nil }

// openDBFile returns a read-only descriptor of the database file at path.
// Callers may Close it; that does not close the shared descriptor.
func openDBFile(path string) (File, error) {
	f, kept, err := lookupDBFile(path)
	if err != nil || kept {
		return f, err
	}
	return keepDBFile(f.(*os.File)), nil
}

// lookupDBFile returns the shared descriptor of path (kept) or, if there
// is none yet, a new one that the caller must pass to keepDBFile or close.
func lookupDBFile(path string) (f File, kept bool, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, false, err
	}
	if fi.IsDir() {
		return nil, false, fmt.Errorf("database path %s is a directory", path)
	}
	dbFiles.Lock()
	if id, ok := idOf(fi); ok && len(dbFiles.m[id]) > 0 {
		f := dbFiles.m[id][0]
		dbFiles.Unlock()
		return keptFile{f}, true, nil
	}
	dbFiles.Unlock()
	osf, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	return osf, false, nil
}

// keepDBFile shares f from now on. A second descriptor of the same file
// (opened concurrently, or after the file was replaced between a stat and
// the open) is kept too: closing it would drop the locks.
func keepDBFile(f *os.File) File {
	fi, err := f.Stat()
	if err != nil {
		return f // cannot identify it: the caller owns it
	}
	id, ok := idOf(fi)
	if !ok {
		return f
	}
	dbFiles.Lock()
	defer dbFiles.Unlock()
	pruneDBFiles()
	dbFiles.m[id] = append(dbFiles.m[id], f)
	return keptFile{f}
}

// pruneDBFiles closes the descriptors of files that no longer have a
// name. dbFiles is locked.
func pruneDBFiles() {
	for id, fs := range dbFiles.m {
		fi, err := fs[0].Stat()
		if st, ok := fi.Sys().(*syscall.Stat_t); err == nil && ok && st.Nlink > 0 {
			continue
		}
		for _, f := range fs {
			f.Close()
		}
		delete(dbFiles.m, id)
	}
}

// CheckDBFile returns an error unless path is a regular file that is
// empty or starts with the SQLite header. It reads through the shared
// descriptor, so it never drops a lock (see dbFiles).
func CheckDBFile(path string) error {
	f, kept, err := lookupDBFile(path)
	if err != nil {
		return fmt.Errorf("open database %s: %w", path, err)
	}
	var hdr [len(sqliteHeader)]byte
	n, _ := f.ReadAt(hdr[:], 0)
	if n > 0 && string(hdr[:n]) != sqliteHeader {
		if !kept {
			f.Close() // not a database: no SQLite lock to lose
		}
		return fmt.Errorf("%s: %w (bad file header)", path, ErrNotSQLite)
	}
	if !kept {
		keepDBFile(f.(*os.File))
	}
	return nil // an empty file is a new database to SQLite
}
