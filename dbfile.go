package litestream

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Descriptors of database files are shared within the process, and one is
// closed only when nothing in the process holds a POSIX lock on the file.
// Closing any descriptor of a file drops every POSIX lock the process
// holds on it, and SQLite holds a shared lock on a WAL-mode database for
// as long as a connection is open: an application that embeds this
// package would lose its locks whenever we closed our descriptor (on
// Close, or after reading the header), and another process could then
// take the database for its own, delete the WAL or change the journal
// mode under it. SQLite parks its own descriptors for the same reason.
// A parked descriptor is closed later, once the locks are gone or the file
// has no name left.
var dbFiles = struct {
	sync.Mutex
	m map[fileID]*sharedFile
}{m: map[fileID]*sharedFile{}}

type fileID struct{ dev, ino uint64 }

type sharedFile struct {
	fds  []*os.File // more than one only if opened concurrently; all kept
	refs int
}

func idOf(fi os.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{uint64(st.Dev), uint64(st.Ino)}, true
}

// dbFileRef is a reference to a shared descriptor; Close releases it.
type dbFileRef struct {
	*os.File
	id   fileID
	once sync.Once
}

func (r *dbFileRef) Close() error {
	r.once.Do(func() { releaseDBFile(r.id) })
	return nil
}

// openDBFile returns a read-only reference to the shared descriptor of the
// database file at path.
func openDBFile(path string) (File, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("database path %s is a directory", path)
	}
	dbFiles.Lock()
	defer dbFiles.Unlock()
	pruneDBFiles()
	if id, ok := idOf(fi); ok {
		if sf := dbFiles.m[id]; sf != nil {
			sf.refs++
			return &dbFileRef{File: sf.fds[0], id: id}, nil
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if fi, err = f.Stat(); err != nil {
		return f, nil // cannot identify it: the caller owns it
	}
	id, ok := idOf(fi)
	if !ok {
		return f, nil
	}
	// The file may have been replaced between the two stats and the new
	// one be known already: keep both descriptors, close neither.
	sf := dbFiles.m[id]
	if sf == nil {
		sf = &sharedFile{}
		dbFiles.m[id] = sf
	}
	sf.fds = append(sf.fds, f)
	sf.refs++
	return &dbFileRef{File: f, id: id}, nil
}

func releaseDBFile(id fileID) {
	dbFiles.Lock()
	defer dbFiles.Unlock()
	if sf := dbFiles.m[id]; sf != nil {
		sf.refs--
	}
	pruneDBFiles()
}

// pruneDBFiles closes the unreferenced descriptors whose file no longer
// has a name or carries no lock of this process. dbFiles is locked.
func pruneDBFiles() {
	var locked map[fileID]bool
	known, read := false, false
	for id, sf := range dbFiles.m {
		if sf.refs > 0 {
			continue
		}
		if !read {
			locked, known = lockedFiles()
			read = true
		}
		fi, err := sf.fds[0].Stat()
		named := true
		if err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				named = st.Nlink > 0
			}
		}
		if named && (!known || locked[id]) {
			continue // parked: closing would drop those locks
		}
		for _, f := range sf.fds {
			f.Close()
		}
		delete(dbFiles.m, id)
	}
}

// lockedFiles returns the files on which this process holds POSIX locks,
// from /proc/locks; known is false where that cannot be read, and then
// every file counts as locked: a descriptor left open is harmless, a
// dropped lock is not.
func lockedFiles() (locked map[fileID]bool, known bool) {
	all := map[fileID]bool{}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return nil, false
	}
	defer f.Close()
	pid := strconv.Itoa(os.Getpid())
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "1: POSIX  ADVISORY  READ 1234 fd:01:5678 1073741826 1073742335"
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] != "POSIX" || fields[4] != pid {
			continue
		}
		parts := strings.Split(fields[5], ":")
		if len(parts) != 3 {
			continue
		}
		major, err1 := strconv.ParseUint(parts[0], 16, 32)
		minor, err2 := strconv.ParseUint(parts[1], 16, 32)
		ino, err3 := strconv.ParseUint(parts[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		all[fileID{uint64(unix.Mkdev(uint32(major), uint32(minor))), ino}] = true
	}
	if sc.Err() != nil {
		return nil, false
	}
	return all, true
}

// CheckDBFile returns an error unless path is a regular file that is
// empty or starts with the SQLite header. It reads through the shared
// descriptor, so it never drops a lock (see dbFiles).
func CheckDBFile(path string) error {
	f, err := openDBFile(path)
	if err != nil {
		return fmt.Errorf("open database %s: %w", path, err)
	}
	defer f.Close()
	var hdr [len(sqliteHeader)]byte
	if n, _ := f.ReadAt(hdr[:], 0); n > 0 && string(hdr[:n]) != sqliteHeader {
		return fmt.Errorf("%s: %w (bad file header)", path, ErrNotSQLite)
	}
	return nil // an empty file is a new database to SQLite
}
