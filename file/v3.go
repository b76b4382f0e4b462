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

	"github.com/sqlitebackup/litestream"
)

// Reading Litestream v0.3 backups (generations/<gen>/snapshots and
// generations/<gen>/wal under the replica directory), for restore.

var _ litestream.ReplicaClientV3 = (*ReplicaClient)(nil)

// GenerationsV3 lists the v0.3 generations, in ascending order.
func (c *ReplicaClient) GenerationsV3(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir := filepath.FromSlash(litestream.V3GenerationsDir(c.root))
	entries, err := c.fs.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("file replica: list %s: %w", dir, err)
	}
	var gens []string
	for _, e := range entries {
		if e.IsDir() && litestream.IsV3Generation(e.Name()) {
			gens = append(gens, e.Name())
		}
	}
	sort.Strings(gens)
	return gens, nil
}

// SnapshotsV3 lists a generation's snapshots by index; CreatedAt is the
// file's mtime.
func (c *ReplicaClient) SnapshotsV3(ctx context.Context, generation string) ([]litestream.V3Snapshot, error) {
	var snaps []litestream.V3Snapshot
	err := c.listV3(ctx, litestream.V3SnapshotsDir(c.root, generation), func(name string, fi os.FileInfo) {
		if index, err := litestream.ParseV3SnapshotName(name); err == nil {
			snaps = append(snaps, litestream.V3Snapshot{Generation: generation, Index: index, Size: fi.Size(), CreatedAt: fi.ModTime().UTC()})
		}
	})
	sort.Slice(snaps, func(i, j int) bool { return snaps[i].Index < snaps[j].Index })
	return snaps, err
}

// WALSegmentsV3 lists a generation's WAL segments by index and offset.
func (c *ReplicaClient) WALSegmentsV3(ctx context.Context, generation string) ([]litestream.V3WALSegment, error) {
	var segs []litestream.V3WALSegment
	err := c.listV3(ctx, litestream.V3WALDir(c.root, generation), func(name string, fi os.FileInfo) {
		if index, offset, err := litestream.ParseV3WALSegmentName(name); err == nil {
			segs = append(segs, litestream.V3WALSegment{Generation: generation, Index: index, Offset: offset, Size: fi.Size(), CreatedAt: fi.ModTime().UTC()})
		}
	})
	litestream.SortV3WALSegments(segs)
	return segs, err
}

// listV3 calls fn for every regular file in dir; a missing dir is empty.
func (c *ReplicaClient) listV3(ctx context.Context, dir string, fn func(name string, fi os.FileInfo)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir = filepath.FromSlash(dir)
	entries, err := c.fs.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("file replica: list %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return fmt.Errorf("file replica: stat %s: %w", filepath.Join(dir, e.Name()), err)
		}
		fn(e.Name(), fi)
	}
	return nil
}

// OpenSnapshotV3 opens a snapshot's stored (LZ4) bytes.
func (c *ReplicaClient) OpenSnapshotV3(ctx context.Context, generation string, index int) (io.ReadCloser, error) {
	return c.openV3(ctx, litestream.V3SnapshotPath(c.root, generation, index))
}

// OpenWALSegmentV3 opens a WAL segment's stored (LZ4) bytes, whichever
// way its offset is padded.
func (c *ReplicaClient) OpenWALSegmentV3(ctx context.Context, generation string, index int, offset int64) (io.ReadCloser, error) {
	rc, err := c.openV3(ctx, litestream.V3WALSegmentPath(c.root, generation, index, offset))
	if errors.Is(err, fs.ErrNotExist) {
		if rc, err2 := c.openV3(ctx, litestream.V3WALSegmentPathWide(c.root, generation, index, offset)); err2 == nil {
			return rc, nil
		}
	}
	return rc, err
}

func (c *ReplicaClient) openV3(ctx context.Context, p string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := c.fs.OpenFile(filepath.FromSlash(p), os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("file replica: open: %w", err)
	}
	return f, nil
}
