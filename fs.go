package litestream

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// FS is the filesystem seam used for every local file the engine writes:
// the meta directory and the file replica backend. Tests substitute an
// implementation that injects faults (ENOSPC, EIO, short writes, failed
// fsync or rename); production uses OSFS.
type FS interface {
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	Stat(name string) (os.FileInfo, error)
	Rename(oldpath, newpath string) error
	Remove(name string) error
	RemoveAll(path string) error
	MkdirAll(path string, perm os.FileMode) error
	ReadDir(name string) ([]os.DirEntry, error)
	Chtimes(name string, atime, mtime time.Time) error
}

// File is the subset of *os.File the engine uses.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.WriterAt
	io.Seeker
	io.Closer
	Name() string
	Stat() (os.FileInfo, error)
	Sync() error
	Truncate(size int64) error
}

// OSFS is the real filesystem.
var OSFS FS = osFS{}

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // *os.PathError already names the file
	}
	return f, nil
}
func (osFS) Stat(name string) (os.FileInfo, error)        { return os.Stat(name) }
func (osFS) Rename(oldpath, newpath string) error         { return os.Rename(oldpath, newpath) }
func (osFS) Remove(name string) error                     { return os.Remove(name) }
func (osFS) RemoveAll(path string) error                  { return os.RemoveAll(path) }
func (osFS) MkdirAll(path string, perm os.FileMode) error { return os.MkdirAll(path, perm) }
func (osFS) ReadDir(name string) ([]os.DirEntry, error)   { return os.ReadDir(name) }
func (osFS) Chtimes(name string, atime, mtime time.Time) error {
	return os.Chtimes(name, atime, mtime)
}

// TempSuffix marks files that are still being written. Listings ignore
// them and opening a meta directory deletes leftovers.
const TempSuffix = ".tmp"

// WriteFileAtomic writes a file so that readers see either nothing or the
// whole file: it writes <path>.tmp, fsyncs it, renames it over path, and
// fsyncs the directory. write receives the temporary file. On any error the
// temporary file is removed and path is untouched.
func WriteFileAtomic(fsys FS, path string, perm os.FileMode, write func(w io.Writer) error) (err error) {
	tmp := path + TempSuffix
	f, err := fsys.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("create temp file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = fsys.Remove(tmp)
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := fsys.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	if err := SyncDir(fsys, filepath.Dir(path)); err != nil {
		return &PublishedError{Path: path, Err: err}
	}
	return nil
}

// PublishedError means a file reached its final name, with its content
// fsynced, but the directory fsync that makes the rename durable failed.
// The file is visible and may already have been read (uploaded), so the
// writer must treat it as written: never write different content under
// the same name.
type PublishedError struct {
	Path string
	Err  error
}

func (e *PublishedError) Error() string {
	return fmt.Sprintf("%s written but not durable: %v", e.Path, e.Err)
}

func (e *PublishedError) Unwrap() error { return e.Err }

// SyncDir fsyncs a directory so a rename or create in it is durable.
func SyncDir(fsys FS, dir string) error {
	d, err := fsys.OpenFile(dir, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("open dir for fsync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}

// removeTempFiles deletes every leftover *.tmp file under dir, which
// belongs to a write that never finished.
func removeTempFiles(fsys FS, dir string) error {
	entries, err := fsys.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			if err := removeTempFiles(fsys, p); err != nil {
				return err
			}
		} else if filepath.Ext(e.Name()) == TempSuffix {
			if err := fsys.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}
