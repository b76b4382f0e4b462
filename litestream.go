// Package litestream replicates SQLite databases by turning every committed
// change in the write-ahead log into an immutable LTX file, shipping those
// files to a replica, and restoring a database from them to any point in
// time.
//
// The data flow is: WAL -> level-0 LTX files in the local meta directory
// (DB) -> the same files in the replica (Replica + ReplicaClient) ->
// compaction into higher levels -> restore (Restore). See
// docs/ARCHITECTURE.md for the whole picture.
//
// Lock order, everywhere: store -> db -> checkpoint -> replica. A goroutine
// holding a later lock never takes an earlier one.
package litestream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"time"

	"github.com/superfly/ltx"
)

// SnapshotLevel is the level that holds full-database snapshot files.
const SnapshotLevel = 9

// MaxCompactionLevel is the highest level a compaction may write to.
const MaxCompactionLevel = 8

// Default settings, the same as Litestream v0.5.
const (
	DefaultMonitorInterval        = 1 * time.Second
	DefaultCheckpointInterval     = 1 * time.Minute
	DefaultSyncInterval           = 1 * time.Second
	DefaultBusyTimeout            = 1 * time.Second
	DefaultMinCheckpointPageCount = 1000             // pages
	DefaultTruncatePageN          = 121359           // pages
	DefaultMaxSyncWALBytes        = 64 * 1024 * 1024 // WAL bytes per level-0 file
	DefaultShutdownSyncTimeout    = 30 * time.Second
	DefaultShutdownSyncInterval   = 500 * time.Millisecond
)

// Errors shared by the engine and the replica clients.
var (
	// ErrNoBackup means the replica holds no file that can serve a restore.
	ErrNoBackup = errors.New("no matching backup files available")
	// ErrTxNotAvailable means the requested TXID or timestamp cannot be
	// reached with the files in the replica.
	ErrTxNotAvailable = errors.New("transaction not available")
	// ErrDBClosed is returned by operations on a closed DB.
	ErrDBClosed = errors.New("database closed")
)

// ReplicaClient is the storage seam: one implementation per backend (file,
// s3, gs, abs, sftp, nats, webdav, ...). The replicatest package holds the
// conformance suite every implementation must pass; docs/REPLICA_CLIENT.md
// states the contract in full. In short:
//
//   - Files are addressed by (level, minTXID, maxTXID) and are immutable.
//   - LTXFiles lists one level in ascending (minTXID, maxTXID) order,
//     returning every file whose minTXID >= seek. It may page lazily.
//   - CreatedAt of a listed file is the LTX header timestamp when
//     useMetadata is true; it may be approximate otherwise.
//   - OpenLTXFile returns an error wrapping os.ErrNotExist for a missing
//     file. size 0 means "to the end".
//   - WriteLTXFile makes the file visible atomically under its final name
//     and records the header timestamp as its creation time.
//   - Every method honours ctx cancellation.
type ReplicaClient interface {
	// Type returns the backend name, e.g. "file" or "s3".
	Type() string

	// LTXFiles returns an iterator over the files of a level with
	// minTXID >= seek, in ascending order.
	LTXFiles(ctx context.Context, level int, seek ltx.TXID, useMetadata bool) (ltx.FileIterator, error)

	// OpenLTXFile opens a file for reading from offset; size 0 reads to
	// the end.
	OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error)

	// WriteLTXFile stores a complete LTX file read from r.
	WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error)

	// DeleteLTXFiles removes the given files; missing files are not an
	// error.
	DeleteLTXFiles(ctx context.Context, a []*ltx.FileInfo) error

	// DeleteAll removes every file of the replica.
	DeleteAll(ctx context.Context) error
}

// LTXLevelDir returns the level directory under root using the layout
// shared by every backend except s3 and oss: <root>/ltx/<level>.
func LTXLevelDir(root string, level int) string {
	return path.Join(root, "ltx", strconv.Itoa(level))
}

// LTXFilePath returns <root>/ltx/<level>/<min>-<max>.ltx.
func LTXFilePath(root string, level int, minTXID, maxTXID ltx.TXID) string {
	return path.Join(LTXLevelDir(root, level), ltx.FormatFilename(minTXID, maxTXID))
}

// FileError describes a problem with one replica or meta-directory file.
// The message always names the file so a user can find it.
type FileError struct {
	Op      string // what was being done, e.g. "restore", "upload"
	Level   int
	MinTXID ltx.TXID
	MaxTXID ltx.TXID
	Err     error
}

func (e *FileError) Error() string {
	return fmt.Sprintf("%s: level %d file %s: %v", e.Op, e.Level, ltx.FormatFilename(e.MinTXID, e.MaxTXID), e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

// listAll drains an iterator into a slice and closes it.
func listAll(itr ltx.FileIterator) ([]*ltx.FileInfo, error) {
	defer itr.Close()
	var a []*ltx.FileInfo
	for itr.Next() {
		a = append(a, itr.Item())
	}
	return a, itr.Err()
}

// LTXFileInfos lists one level of a replica into a slice.
func LTXFileInfos(ctx context.Context, c ReplicaClient, level int, seek ltx.TXID, useMetadata bool) ([]*ltx.FileInfo, error) {
	itr, err := c.LTXFiles(ctx, level, seek, useMetadata)
	if err != nil {
		return nil, fmt.Errorf("list level %d: %w", level, err)
	}
	a, err := listAll(itr)
	if err != nil {
		return nil, fmt.Errorf("list level %d: %w", level, err)
	}
	return a, nil
}
