// Package file implements a replica in a local directory, laid out as
// <root>/ltx/<level>/<min>-<max>.ltx exactly as Litestream v0.5 does.
package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
)

// ReplicaClientType is the backend name used in config and URLs.
const ReplicaClientType = "file"

// ReplicaClient stores LTX files under a local directory.
type ReplicaClient struct {
	root string
	fs   litestream.FS

	// FileMode and DirMode are used for new files and directories; the
	// CLI sets them from the database file so replicas get the same
	// permissions as the data they hold.
	FileMode os.FileMode
	DirMode  os.FileMode
}

var _ litestream.ReplicaClient = (*ReplicaClient)(nil)

// NewReplicaClient returns a client rooted at dir on the real filesystem.
func NewReplicaClient(dir string) *ReplicaClient {
	return NewReplicaClientFS(dir, litestream.OSFS)
}

// NewReplicaClientFS returns a client that does all file access through
// fsys, so tests can inject faults.
func NewReplicaClientFS(dir string, fsys litestream.FS) *ReplicaClient {
	return &ReplicaClient{root: dir, fs: fsys, FileMode: 0o600, DirMode: 0o700}
}

// Type returns "file".
func (c *ReplicaClient) Type() string { return ReplicaClientType }

// Path returns the replica's root directory.
func (c *ReplicaClient) Path() string { return c.root }

func (c *ReplicaClient) levelDir(level int) string {
	return filepath.FromSlash(litestream.LTXLevelDir(c.root, level))
}

func (c *ReplicaClient) filePath(level int, minTXID, maxTXID ltx.TXID) string {
	return filepath.FromSlash(litestream.LTXFilePath(c.root, level, minTXID, maxTXID))
}

// LTXFiles lists a level. The file's mtime is its creation time: the
// writer sets it to the LTX header timestamp, so it is exact either way.
func (c *ReplicaClient) LTXFiles(ctx context.Context, level int, seek ltx.TXID, useMetadata bool) (ltx.FileIterator, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	entries, err := c.fs.ReadDir(c.levelDir(level))
	if errors.Is(err, fs.ErrNotExist) {
		return ltx.NewFileInfoSliceIterator(nil), nil
	} else if err != nil {
		return nil, fmt.Errorf("file replica: list %s: %w", c.levelDir(level), err)
	}
	infos := make([]*ltx.FileInfo, 0, len(entries))
	for _, e := range entries {
		minTXID, maxTXID, err := ltx.ParseFilename(e.Name())
		if err != nil || e.IsDir() || minTXID < seek {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted by retention while we listed
		} else if err != nil {
			return nil, fmt.Errorf("file replica: stat %s: %w", e.Name(), err)
		}
		infos = append(infos, &ltx.FileInfo{
			Level:     level,
			MinTXID:   minTXID,
			MaxTXID:   maxTXID,
			Size:      fi.Size(),
			CreatedAt: fi.ModTime().UTC(),
		})
	}
	sort.Slice(infos, func(i, j int) bool {
		if infos[i].MinTXID != infos[j].MinTXID {
			return infos[i].MinTXID < infos[j].MinTXID
		}
		return infos[i].MaxTXID < infos[j].MaxTXID
	})
	return ltx.NewFileInfoSliceIterator(infos), nil
}

// OpenLTXFile opens a file at offset; size 0 reads to the end.
func (c *ReplicaClient) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := c.filePath(level, minTXID, maxTXID)
	f, err := c.fs.OpenFile(p, os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("file replica: open: %w", err)
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("file replica: seek %s: %w", p, err)
		}
	}
	if size > 0 {
		return struct {
			io.Reader
			io.Closer
		}{io.LimitReader(f, size), f}, nil
	}
	return f, nil
}

// WriteLTXFile writes atomically (temp file, fsync, rename, fsync dir) and
// sets the file's mtime to the LTX header timestamp.
func (c *ReplicaClient) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	hdr, r, err := ltx.PeekHeader(r)
	if err != nil {
		return nil, fmt.Errorf("file replica: read header of level %d file %s: %w", level, ltx.FormatFilename(minTXID, maxTXID), err)
	}
	if err := c.fs.MkdirAll(c.levelDir(level), c.DirMode); err != nil {
		return nil, fmt.Errorf("file replica: %w", err)
	}
	p := c.filePath(level, minTXID, maxTXID)
	var n int64
	if err := litestream.WriteFileAtomic(c.fs, p, c.FileMode, func(w io.Writer) error {
		n, err = io.Copy(w, contextReader{ctx, r})
		return err
	}); err != nil {
		return nil, fmt.Errorf("file replica: write %s: %w", p, err)
	}
	createdAt := time.UnixMilli(hdr.Timestamp).UTC()
	if err := c.fs.Chtimes(p, createdAt, createdAt); err != nil {
		return nil, fmt.Errorf("file replica: set mtime of %s: %w", p, err)
	}
	return &ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Size: n, CreatedAt: createdAt}, nil
}

// DeleteLTXFiles removes files; missing ones are ignored.
func (c *ReplicaClient) DeleteLTXFiles(ctx context.Context, a []*ltx.FileInfo) error {
	for _, info := range a {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := c.filePath(info.Level, info.MinTXID, info.MaxTXID)
		if err := c.fs.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("file replica: delete: %w", err)
		}
	}
	return nil
}

// DeleteAll removes the replica's ltx tree.
func (c *ReplicaClient) DeleteAll(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.fs.RemoveAll(filepath.Join(c.root, "ltx")); err != nil {
		return fmt.Errorf("file replica: delete all: %w", err)
	}
	return nil
}

// contextReader stops a long copy when ctx is cancelled.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (r contextReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
