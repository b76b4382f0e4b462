package litestream

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/pierrec/lz4/v4"
)

// Restoring backups written by Litestream v0.3 (read-only).
//
// A v0.3 replica holds generations, each a snapshot of the database file
// followed by the WAL files SQLite wrote after it, copied in segments:
//
//	<root>/generations/<16 hex generation>/snapshots/<index %08x>.snapshot.lz4
//	<root>/generations/<generation>/wal/<index %08x>_<offset %08x>.wal.lz4
//
// Both are LZ4 frames of raw bytes: the database file, and the bytes of
// WAL file <index> from <offset> on. A snapshot taken at index S is
// restored by applying WAL files S, S+1, ... in order; each WAL file is
// the concatenation of its segments (offsets 0, then each segment starting
// where the previous one ended). Offsets of WAL files past 4 GiB have
// more than 8 hex digits.
//
// Restore picks the v0.3 backup when the replica has no LTX backup or the
// v0.3 backup reaches a later time (see chooseV3).

// ReplicaClientV3 is implemented by replica clients that can read a v0.3
// layout. Open methods return the stored bytes (LZ4 frames); decoding is
// done here, so a backend only lists and reads objects. Listing a replica
// without v0.3 data returns empty slices, not an error.
type ReplicaClientV3 interface {
	// GenerationsV3 lists the generation IDs (16 lower-case hex digits).
	GenerationsV3(ctx context.Context) ([]string, error)
	// SnapshotsV3 lists a generation's snapshots; CreatedAt is the time
	// the object was written (file mtime, object LastModified).
	SnapshotsV3(ctx context.Context, generation string) ([]V3Snapshot, error)
	// WALSegmentsV3 lists a generation's WAL segments.
	WALSegmentsV3(ctx context.Context, generation string) ([]V3WALSegment, error)
	// OpenSnapshotV3 opens a snapshot's stored (compressed) bytes; a
	// missing snapshot is an error wrapping os.ErrNotExist.
	OpenSnapshotV3(ctx context.Context, generation string, index int) (io.ReadCloser, error)
	// OpenWALSegmentV3 opens a WAL segment's stored (compressed) bytes.
	OpenWALSegmentV3(ctx context.Context, generation string, index int, offset int64) (io.ReadCloser, error)
}

// V3Snapshot describes a v0.3 snapshot.
type V3Snapshot struct {
	Generation string
	Index      int
	Size       int64 // stored (compressed) size
	CreatedAt  time.Time
}

// V3WALSegment describes a v0.3 WAL segment.
type V3WALSegment struct {
	Generation string
	Index      int
	Offset     int64
	Size       int64 // stored (compressed) size
	CreatedAt  time.Time
}

// V3GenerationsDir returns <root>/generations.
func V3GenerationsDir(root string) string { return path.Join(root, "generations") }

// V3SnapshotsDir returns <root>/generations/<generation>/snapshots.
func V3SnapshotsDir(root, generation string) string {
	return path.Join(V3GenerationsDir(root), generation, "snapshots")
}

// V3WALDir returns <root>/generations/<generation>/wal.
func V3WALDir(root, generation string) string {
	return path.Join(V3GenerationsDir(root), generation, "wal")
}

// V3SnapshotPath returns the path of a snapshot.
func V3SnapshotPath(root, generation string, index int) string {
	return path.Join(V3SnapshotsDir(root, generation), fmt.Sprintf("%08x.snapshot.lz4", index))
}

// V3WALSegmentPath returns the path of a WAL segment as v0.3 names it.
// Readers that do not find it should also try V3WALSegmentPathWide.
func V3WALSegmentPath(root, generation string, index int, offset int64) string {
	return path.Join(V3WALDir(root, generation), fmt.Sprintf("%08x_%08x.wal.lz4", index, offset))
}

// V3WALSegmentPathWide returns the path of a WAL segment whose offset is
// padded to 16 digits, a spelling some writers use.
func V3WALSegmentPathWide(root, generation string, index int, offset int64) string {
	return path.Join(V3WALDir(root, generation), fmt.Sprintf("%08x_%016x.wal.lz4", index, offset))
}

var (
	v3GenerationRe = regexp.MustCompile(`^[0-9a-f]{16}$`)
	v3SnapshotRe   = regexp.MustCompile(`^([0-9a-f]{8})\.snapshot\.lz4$`)
	v3WALSegmentRe = regexp.MustCompile(`^([0-9a-f]{8})_([0-9a-f]{8,16})\.wal\.lz4$`)
)

// IsV3Generation reports whether name is a v0.3 generation ID.
func IsV3Generation(name string) bool { return v3GenerationRe.MatchString(name) }

// ParseV3SnapshotName returns the index of a snapshot file name.
func ParseV3SnapshotName(name string) (int, error) {
	m := v3SnapshotRe.FindStringSubmatch(name)
	if m == nil {
		return 0, fmt.Errorf("invalid v0.3 snapshot name %q", name)
	}
	index, err := strconv.ParseUint(m[1], 16, 31)
	if err != nil {
		return 0, fmt.Errorf("invalid v0.3 snapshot name %q: %w", name, err)
	}
	return int(index), nil
}

// ParseV3WALSegmentName returns the index and offset of a WAL segment
// file name.
func ParseV3WALSegmentName(name string) (int, int64, error) {
	m := v3WALSegmentRe.FindStringSubmatch(name)
	if m == nil {
		return 0, 0, fmt.Errorf("invalid v0.3 wal segment name %q", name)
	}
	index, err := strconv.ParseUint(m[1], 16, 31)
	if err != nil {
		return 0, 0, fmt.Errorf("invalid v0.3 wal segment name %q: %w", name, err)
	}
	offset, err := strconv.ParseUint(m[2], 16, 63)
	if err != nil {
		return 0, 0, fmt.Errorf("invalid v0.3 wal segment name %q: %w", name, err)
	}
	return int(index), int64(offset), nil
}

// SortV3WALSegments orders segments by index, then offset.
func SortV3WALSegments(a []V3WALSegment) {
	sort.Slice(a, func(i, j int) bool {
		if a[i].Index != a[j].Index {
			return a[i].Index < a[j].Index
		}
		return a[i].Offset < a[j].Offset
	})
}

// asV3 returns the v0.3 reader behind client, looking through wrappers
// such as the metrics instrumentation.
func asV3(client ReplicaClient) ReplicaClientV3 {
	for client != nil {
		if c, ok := client.(ReplicaClientV3); ok {
			return c
		}
		u, ok := client.(interface{ Unwrap() ReplicaClient })
		if !ok {
			return nil
		}
		client = u.Unwrap()
	}
	return nil
}

// v3Plan is a v0.3 restore: a snapshot and the WAL segments after it.
type v3Plan struct {
	snapshot V3Snapshot
	segments []V3WALSegment // by index then offset, starting at the snapshot's index
	end      time.Time      // creation time of the newest file used
}

func (p *v3Plan) String() string {
	s := fmt.Sprintf("v0.3 generation %s snapshot %08x", p.snapshot.Generation, p.snapshot.Index)
	if n := len(p.segments); n > 0 {
		last := p.segments[n-1]
		s += fmt.Sprintf(" + %d wal segments up to %08x_%08x", n, last.Index, last.Offset)
	}
	return s
}

// planV3 picks the v0.3 state to restore: the latest (timestamp zero), or
// the last one whose files were all written at or before timestamp. It
// returns nil if the replica has no usable v0.3 backup.
func planV3(ctx context.Context, c ReplicaClientV3, timestamp time.Time) (*v3Plan, error) {
	gens, err := c.GenerationsV3(ctx)
	if err != nil {
		return nil, fmt.Errorf("list v0.3 generations: %w", err)
	}
	var best *v3Plan
	for _, gen := range gens {
		snaps, err := c.SnapshotsV3(ctx, gen)
		if err != nil {
			return nil, fmt.Errorf("list v0.3 snapshots of generation %s: %w", gen, err)
		}
		var snap *V3Snapshot
		for i := range snaps {
			s := &snaps[i]
			if !timestamp.IsZero() && s.CreatedAt.After(timestamp) {
				continue
			}
			if snap == nil || s.Index > snap.Index {
				snap = s
			}
		}
		if snap == nil {
			continue
		}
		segs, err := c.WALSegmentsV3(ctx, gen)
		if err != nil {
			return nil, fmt.Errorf("list v0.3 wal segments of generation %s: %w", gen, err)
		}
		SortV3WALSegments(segs)
		p := &v3Plan{snapshot: *snap, end: snap.CreatedAt}
		for _, seg := range segs {
			if seg.Index < snap.Index {
				continue
			}
			if !timestamp.IsZero() && seg.CreatedAt.After(timestamp) {
				break // later segments build on this one
			}
			p.segments = append(p.segments, seg)
			p.end = maxTime(p.end, seg.CreatedAt)
		}
		if best == nil || p.end.After(best.end) {
			best = p
		}
	}
	return best, nil
}

// chooseV3 returns the v0.3 plan when a restore to target should come
// from the v0.3 backup: the replica implements ReplicaClientV3, the target
// is not a TXID (v0.3 has none), and either no LTX file can serve the
// target or the v0.3 backup reaches a later point in time.
func chooseV3(ctx context.Context, client ReplicaClient, target RestoreTarget) (*v3Plan, error) {
	c := asV3(client)
	if c == nil || target.TXID != 0 {
		return nil, nil
	}
	plan, err := planV3(ctx, c, target.Timestamp)
	if err != nil || plan == nil {
		return nil, err
	}
	ltxEnd, err := ltxReach(ctx, client, target)
	if err != nil {
		return nil, err
	}
	if plan.end.After(ltxEnd) {
		return plan, nil
	}
	return nil, nil
}

// ltxReach returns the creation time of the newest LTX file a restore to
// target would use; zero if the LTX files cannot serve it.
func ltxReach(ctx context.Context, client ReplicaClient, target RestoreTarget) (time.Time, error) {
	if target.Timestamp.IsZero() {
		var latest time.Time
		for level := 0; level <= SnapshotLevel; level++ {
			infos, err := LTXFileInfos(ctx, client, level, 0, false)
			if err != nil {
				return time.Time{}, err
			}
			for _, info := range infos {
				latest = maxTime(latest, info.CreatedAt)
			}
		}
		return latest, nil
	}
	plan, err := CalcRestorePlan(ctx, client, target)
	if errors.Is(err, ErrNoBackup) || errors.Is(err, ErrTxNotAvailable) {
		return time.Time{}, nil
	} else if err != nil {
		return time.Time{}, err
	}
	var latest time.Time
	for _, info := range plan {
		latest = maxTime(latest, info.CreatedAt)
	}
	return latest, nil
}

// restoreV3IfNewer restores from the v0.3 backup when chooseV3 prefers
// it, and returns nil (having written nothing) otherwise.
func restoreV3IfNewer(ctx context.Context, client ReplicaClient, opt RestoreOptions, fsys FS) (*RestoreResult, error) {
	plan, err := chooseV3(ctx, client, opt.Target)
	if err != nil || plan == nil {
		return nil, err
	}
	return restoreV3(ctx, asV3(client), plan, opt.OutputPath, fsys)
}

// restoreV3 writes the plan's database to <out>.tmp (the snapshot, then
// every WAL file applied in order) and renames it into place.
func restoreV3(ctx context.Context, c ReplicaClientV3, plan *v3Plan, out string, fsys FS) (*RestoreResult, error) {
	if err := fsys.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return nil, err
	}
	walPath := out + TempSuffix + "-wal"
	defer fsys.Remove(walPath)
	res := &RestoreResult{Files: 1 + len(plan.segments)}
	err := WriteFileAtomic(fsys, out, 0o644, func(w io.Writer) error {
		if err := copyV3Snapshot(ctx, c, plan.snapshot, w); err != nil {
			return err
		}
		// WAL frames are applied in place, which needs reads as well.
		db, err := fsys.OpenFile(w.(File).Name(), os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer db.Close()
		if res.PageSize, err = v3PageSize(db); err != nil {
			return err
		}
		res.Commit, err = dbPages(db, res.PageSize)
		if err != nil {
			return err
		}
		groups, err := groupByIndex(plan.segments, plan.snapshot.Index)
		if err != nil {
			return err
		}
		for _, segs := range groups {
			commit, err := applyV3WAL(ctx, c, segs, db, walPath, res.PageSize, fsys)
			if err != nil {
				return err
			}
			res.Commit = commit
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", plan, err)
	}
	return res, nil
}

func copyV3Snapshot(ctx context.Context, c ReplicaClientV3, snap V3Snapshot, w io.Writer) error {
	rc, err := c.OpenSnapshotV3(ctx, snap.Generation, snap.Index)
	if err != nil {
		return fmt.Errorf("open v0.3 snapshot %08x: %w", snap.Index, err)
	}
	defer rc.Close()
	if _, err := io.Copy(w, lz4.NewReader(bufio.NewReader(rc))); err != nil {
		return fmt.Errorf("decompress v0.3 snapshot %08x: %w", snap.Index, err)
	}
	return nil
}

// v3PageSize reads the page size from a database header.
func v3PageSize(db io.ReaderAt) (uint32, error) {
	var hdr [100]byte
	if _, err := db.ReadAt(hdr[:], 0); err != nil {
		return 0, fmt.Errorf("v0.3 snapshot is not a database: %w", err)
	}
	if string(hdr[:16]) != sqliteHeader {
		return 0, errors.New("v0.3 snapshot is not a SQLite database")
	}
	pageSize := uint32(binary.BigEndian.Uint16(hdr[16:]))
	if pageSize == 1 {
		pageSize = 65536
	}
	return pageSize, nil
}

func dbPages(f File, pageSize uint32) (uint32, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return uint32(fi.Size() / int64(pageSize)), nil
}

// groupByIndex splits segments into WAL files. Every index from first to
// the last one present must have segments: a missing WAL file would
// silently lose its changes.
func groupByIndex(segs []V3WALSegment, first int) ([][]V3WALSegment, error) {
	var groups [][]V3WALSegment
	next := first
	for _, seg := range segs {
		if n := len(groups); n > 0 && groups[n-1][0].Index == seg.Index {
			groups[n-1] = append(groups[n-1], seg)
			continue
		}
		if seg.Index != next {
			return nil, fmt.Errorf("v0.3 wal %s/%08x is missing (the next wal is %08x)", seg.Generation, next, seg.Index)
		}
		groups = append(groups, []V3WALSegment{seg})
		next++
	}
	return groups, nil
}

// applyV3WAL assembles one WAL file from its segments in walPath,
// validates it as SQLite would (header, salts, frame checksums), and
// copies the newest committed version of every page into db, sizing db
// to the last commit: what a checkpoint does. Every frame must belong to
// a committed transaction, so a damaged segment is an error, not a
// silently shorter restore.
func applyV3WAL(ctx context.Context, c ReplicaClientV3, segs []V3WALSegment, db File, walPath string, pageSize uint32, fsys FS) (uint32, error) {
	index := segs[0].Index
	name := fmt.Sprintf("v0.3 wal %s/%08x", segs[0].Generation, index)
	wal, err := fsys.OpenFile(walPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	defer wal.Close()
	var size int64
	for _, seg := range segs {
		if seg.Offset != size {
			return 0, fmt.Errorf("%s: segment at offset %d does not follow the previous one, which ends at %d (missing segment)", name, seg.Offset, size)
		}
		n, err := copyV3Segment(ctx, c, seg, wal)
		if err != nil {
			return 0, fmt.Errorf("%s: segment at offset %d: %w", name, seg.Offset, err)
		}
		size += n
	}
	hdr, err := readWALHeader(wal)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	if hdr.pageSize != pageSize {
		return 0, fmt.Errorf("%s: page size %d, database page size %d", name, hdr.pageSize, pageSize)
	}
	seg, err := scanWAL(wal, size, hdr, WALHeaderSize, hdr.checksum, 0)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	if seg.end != size {
		return 0, fmt.Errorf("%s: only %d of %d bytes hold valid committed frames (damaged or truncated segment)", name, seg.end, size)
	}
	if seg.empty() {
		return dbPages(db, pageSize)
	}
	buf := make([]byte, pageSize)
	for pgno, off := range seg.pages {
		if _, err := wal.ReadAt(buf, off+WALFrameHeaderSize); err != nil {
			return 0, fmt.Errorf("%s: read frame at %d: %w", name, off, err)
		}
		if _, err := db.WriteAt(buf, int64(pgno-1)*int64(pageSize)); err != nil {
			return 0, fmt.Errorf("%s: write page %d: %w", name, pgno, err)
		}
	}
	if err := db.Truncate(int64(seg.commit) * int64(pageSize)); err != nil {
		return 0, err
	}
	return seg.commit, nil
}

func copyV3Segment(ctx context.Context, c ReplicaClientV3, seg V3WALSegment, w io.WriterAt) (int64, error) {
	rc, err := c.OpenWALSegmentV3(ctx, seg.Generation, seg.Index, seg.Offset)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := io.Copy(io.NewOffsetWriter(w, seg.Offset), lz4.NewReader(bufio.NewReader(rc)))
	if err != nil {
		return n, fmt.Errorf("decompress: %w", err)
	}
	return n, nil
}
