// Package faultfs is a litestream.FS that injects failures — ENOSPC, EIO,
// short writes, failed fsync, failed rename — into chosen operations on
// chosen paths, in the spirit of Pebble's errorfs. Tests wrap the real
// filesystem with it; everything not injected passes through.
package faultfs

import (
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sqlitebackup/litestream"
)

// Op names an operation that can fail.
type Op string

const (
	OpOpen    Op = "open" // OpenFile of any kind
	OpCreate  Op = "create"
	OpWrite   Op = "write"
	OpSync    Op = "sync"
	OpRename  Op = "rename"
	OpRemove  Op = "remove"
	OpMkdir   Op = "mkdir"
	OpReadDir Op = "readdir"
	OpRead    Op = "read"
	OpChtimes Op = "chtimes"
)

// Common errors to inject.
var (
	ENOSPC = &os.PathError{Op: "write", Path: "(injected)", Err: syscall.ENOSPC}
	EIO    = &os.PathError{Op: "io", Path: "(injected)", Err: syscall.EIO}
)

type rule struct {
	op        Op
	substr    string
	err       error
	remaining int  // <0: until cleared
	short     bool // write only part of the buffer, then fail
}

// FS wraps a base FS and fails operations matching its rules.
type FS struct {
	base  litestream.FS
	mu    sync.Mutex
	rules []*rule
	hits  int
}

// New wraps base.
func New(base litestream.FS) *FS { return &FS{base: base} }

// Inject makes the next times operations op on a path containing substr
// fail with err; times < 0 means until Clear.
func (f *FS) Inject(op Op, substr string, err error, times int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, &rule{op: op, substr: substr, err: err, remaining: times})
}

// InjectShortWrite makes writes write half their buffer and fail with EIO.
func (f *FS) InjectShortWrite(substr string, times int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, &rule{op: OpWrite, substr: substr, err: io.ErrShortWrite, remaining: times, short: true})
}

// Clear removes every rule.
func (f *FS) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = nil
}

// Hits returns how many operations failed by injection.
func (f *FS) Hits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits
}

// check returns the rule that fails op on path, consuming one use.
func (f *FS) check(op Op, path string) *rule {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.rules {
		if r.op != op || !strings.Contains(path, r.substr) || r.remaining == 0 {
			continue
		}
		if r.remaining > 0 {
			r.remaining--
		}
		f.hits++
		return r
	}
	return nil
}

func (f *FS) fail(op Op, path string) error {
	if r := f.check(op, path); r != nil {
		return &os.PathError{Op: string(op), Path: path, Err: unwrapPathErr(r.err)}
	}
	return nil
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func (f *FS) OpenFile(name string, flag int, perm os.FileMode) (litestream.File, error) {
	if err := f.fail(OpOpen, name); err != nil {
		return nil, err
	}
	if flag&os.O_CREATE != 0 {
		if err := f.fail(OpCreate, name); err != nil {
			return nil, err
		}
	}
	file, err := f.base.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f, name: name}, nil
}

func (f *FS) Stat(name string) (os.FileInfo, error) { return f.base.Stat(name) }

func (f *FS) Rename(oldpath, newpath string) error {
	if err := f.fail(OpRename, newpath); err != nil {
		return err
	}
	return f.base.Rename(oldpath, newpath)
}

func (f *FS) Remove(name string) error {
	if err := f.fail(OpRemove, name); err != nil {
		return err
	}
	return f.base.Remove(name)
}

func (f *FS) RemoveAll(path string) error {
	if err := f.fail(OpRemove, path); err != nil {
		return err
	}
	return f.base.RemoveAll(path)
}

func (f *FS) MkdirAll(path string, perm os.FileMode) error {
	if err := f.fail(OpMkdir, path); err != nil {
		return err
	}
	return f.base.MkdirAll(path, perm)
}

func (f *FS) ReadDir(name string) ([]os.DirEntry, error) {
	if err := f.fail(OpReadDir, name); err != nil {
		return nil, err
	}
	return f.base.ReadDir(name)
}

func (f *FS) Chtimes(name string, atime, mtime time.Time) error {
	if err := f.fail(OpChtimes, name); err != nil {
		return err
	}
	return f.base.Chtimes(name, atime, mtime)
}

// faultFile fails reads, writes and fsyncs according to the FS's rules.
type faultFile struct {
	litestream.File
	fs   *FS
	name string
}

func (f *faultFile) Write(p []byte) (int, error) {
	if r := f.fs.check(OpWrite, f.name); r != nil {
		if r.short && len(p) > 1 {
			n, _ := f.File.Write(p[:len(p)/2])
			return n, &os.PathError{Op: "write", Path: f.name, Err: io.ErrShortWrite}
		}
		return 0, &os.PathError{Op: "write", Path: f.name, Err: unwrapPathErr(r.err)}
	}
	return f.File.Write(p)
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.fail(OpWrite, f.name); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

func (f *faultFile) Read(p []byte) (int, error) {
	if err := f.fs.fail(OpRead, f.name); err != nil {
		return 0, err
	}
	return f.File.Read(p)
}

func (f *faultFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.fs.fail(OpRead, f.name); err != nil {
		return 0, err
	}
	return f.File.ReadAt(p, off)
}

func (f *faultFile) Sync() error {
	if err := f.fs.fail(OpSync, f.name); err != nil {
		return err
	}
	return f.File.Sync()
}
