package litestream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"time"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream/ltxfile"
)

// levelState caches what a replica level holds, so that scheduled runs
// with nothing to do make no requests at all.
type levelState struct {
	known   bool
	maxTXID ltx.TXID
}

// levelMax returns the highest TXID in a replica level, listing the level
// only the first time.
func (r *Replica) levelMax(ctx context.Context, level int) (ltx.TXID, error) {
	r.mu.Lock()
	st := r.levels[level]
	r.mu.Unlock()
	if st.known {
		return st.maxTXID, nil
	}
	infos, err := LTXFileInfos(ctx, r.Client, level, 0, false)
	if err != nil {
		return 0, err
	}
	var maxTXID ltx.TXID
	for _, info := range infos {
		maxTXID = max(maxTXID, info.MaxTXID)
	}
	r.noteLevelMax(level, maxTXID)
	return maxTXID, nil
}

func (r *Replica) noteLevelMax(level int, txid ltx.TXID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st := &r.levels[level]; !st.known || txid > st.maxTXID {
		*st = levelState{known: true, maxTXID: txid}
	}
}

// forgetLevels drops the cache, e.g. after an error, so the next run
// lists the replica again.
func (r *Replica) forgetLevels() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.levels = [SnapshotLevel + 1]levelState{}
}

// uploadedTXID returns the replica's level-0 position, reading it from
// the replica if this process has not uploaded anything yet.
func (r *Replica) uploadedTXID(ctx context.Context) (ltx.TXID, error) {
	r.mu.Lock()
	known, pos := r.posKnown, r.pos
	r.mu.Unlock()
	if known {
		return pos, nil
	}
	return r.levelMax(ctx, 0)
}

// openLTX opens a replica file, from the local meta directory when it is a
// level-0 file we still have (cheaper than a download), else remotely.
func (r *Replica) openLTX(ctx context.Context, info *ltx.FileInfo) (io.ReadCloser, error) {
	if info.Level == 0 {
		if f, err := r.db.openLocalLTX(info.MinTXID, info.MaxTXID); err == nil {
			return f, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return openResumable(ctx, r.Client, info)
}

// compactionInputs returns what one compaction of a prefix of infos
// (replica files, oldest first) reads, and how many of infos that prefix
// holds. Level-0 files are read locally when possible: the file itself,
// or, for a file that merged several local files into one upload, those
// local files, which merge to the same pages. The prefix is the longest
// one whose inputs fit in one merge (ltxfile.MaxCompactInputs), always at
// least one file.
func (r *Replica) compactionInputs(ctx context.Context, infos []*ltx.FileInfo) ([]ltxfile.Input, int, error) {
	var local []*ltx.FileInfo
	if hasLevel0(infos) {
		var err error
		if local, err = r.db.localLTXFiles(); err != nil {
			return nil, 0, err
		}
	}
	var expanded []*ltx.FileInfo
	n := 0
	for ; n < len(infos); n++ {
		files := []*ltx.FileInfo{infos[n]}
		if pieces := localPieces(local, infos[n]); len(pieces) > 1 {
			files = pieces
		}
		if n > 0 && len(expanded)+len(files) > ltxfile.MaxCompactInputs {
			break
		}
		expanded = append(expanded, files...)
	}
	if len(expanded) > ltxfile.MaxCompactInputs { // one file with too many pieces
		return r.inputs(ctx, infos[:1]), 1, nil
	}
	return r.inputs(ctx, expanded), n, nil
}

func hasLevel0(infos []*ltx.FileInfo) bool {
	for _, info := range infos {
		if info.Level == 0 {
			return true
		}
	}
	return false
}

// localPieces returns the local level-0 files (local is ascending) that
// exactly cover the TXIDs of the replica's level-0 file info, or nil.
func localPieces(local []*ltx.FileInfo, info *ltx.FileInfo) []*ltx.FileInfo {
	if info.Level != 0 || info.MinTXID == info.MaxTXID {
		return nil
	}
	i := sort.Search(len(local), func(i int) bool { return local[i].MinTXID >= info.MinTXID })
	next := info.MinTXID
	for j := i; j < len(local); j++ {
		if local[j].MinTXID != next || local[j].MaxTXID > info.MaxTXID {
			return nil
		}
		if local[j].MaxTXID == info.MaxTXID {
			return local[i : j+1]
		}
		next = local[j].MaxTXID + 1
	}
	return nil
}

// inputs opens each file locally-first (openLTX). Local pieces are listed
// with Level 0 and their own TXIDs, so they open from the meta directory.
func (r *Replica) inputs(ctx context.Context, infos []*ltx.FileInfo) []ltxfile.Input {
	return ltxInputs(infos, func(info *ltx.FileInfo) (io.ReadCloser, error) { return r.openLTX(ctx, info) })
}

// ltxInputs names each file for error messages and opens it with open.
func ltxInputs(infos []*ltx.FileInfo, open func(*ltx.FileInfo) (io.ReadCloser, error)) []ltxfile.Input {
	inputs := make([]ltxfile.Input, len(infos))
	for i, info := range infos {
		inputs[i] = ltxfile.Input{
			Name: fmt.Sprintf("level %d file %s", info.Level, ltx.FormatFilename(info.MinTXID, info.MaxTXID)),
			Open: func() (io.ReadCloser, error) { return open(info) },
		}
	}
	return inputs
}

// writeCompacted merges infos, read through inputs (compactionInputs),
// into one file of level dst in the replica, streaming: pages flow from
// the inputs through the merge into the upload.
func (r *Replica) writeCompacted(ctx context.Context, dst int, infos []*ltx.FileInfo, inputs []ltxfile.Input) (*ltx.FileInfo, error) {
	minTXID, maxTXID := infos[0].MinTXID, infos[len(infos)-1].MaxTXID
	op := "compaction"
	if dst == SnapshotLevel {
		minTXID, op = 1, "snapshot"
	}
	progress := startProgress(r.db.OnProgress, op, totalSize(infos), 0)
	defer progress.finish()
	var pages func(done, total int64)
	if progress != nil {
		pages = progress.setPages
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := ltxfile.CompactWithProgress(pw, progress.countInputs(inputs), pages)
		pw.CloseWithError(err)
	}()
	info, err := r.Client.WriteLTXFile(ctx, dst, minTXID, maxTXID, pr)
	pr.CloseWithError(err) // unblocks the merge if the upload failed
	if err != nil {
		return nil, &FileError{Op: "compact", Level: dst, MinTXID: minTXID, MaxTXID: maxTXID, Err: err}
	}
	r.noteLevelMax(dst, maxTXID)
	return info, nil
}

// Compact merges the files of level dst-1 that are newer than level dst
// into new files of level dst (one file unless there are more than
// ltxfile.MaxCompactInputs inputs). It returns the files written; none if
// there was nothing new, in which case it made no request.
func (r *Replica) Compact(ctx context.Context, dst int) ([]*ltx.FileInfo, error) {
	if dst < 1 || dst > MaxCompactionLevel {
		return nil, fmt.Errorf("compact: invalid level %d", dst)
	}
	ctx, leaseDone, err := r.ensureLease(ctx)
	if err != nil {
		return nil, err
	}
	defer leaseDone()
	r.compactMu.Lock()
	defer r.compactMu.Unlock()
	start := time.Now()
	written, err := r.compact(ctx, dst)
	r.observeCompaction(dst, start, len(written), err)
	if err != nil {
		r.forgetLevels()
	}
	return written, err
}

func (r *Replica) observeCompaction(level int, start time.Time, files int, err error) {
	if files == 0 && err == nil {
		return // nothing to do is not a compaction
	}
	l := levelLabel(level)
	compactionCounter.WithLabelValues(r.db.path, l).Add(float64(files))
	compactionSecondsCounter.WithLabelValues(r.db.path, l).Add(time.Since(start).Seconds())
	if err != nil {
		compactionErrorCounter.WithLabelValues(r.db.path, l).Inc()
	}
}

func (r *Replica) compact(ctx context.Context, dst int) ([]*ltx.FileInfo, error) {
	src := dst - 1
	dstMax, err := r.levelMax(ctx, dst)
	if err != nil {
		return nil, err
	}
	srcMax, err := r.levelMax(ctx, src)
	if src == 0 {
		srcMax, err = r.uploadedTXID(ctx)
	}
	if err != nil || srcMax <= dstMax {
		return nil, err
	}
	infos, err := LTXFileInfos(ctx, r.Client, src, dstMax+1, false)
	if err != nil {
		return nil, err
	}
	if err := checkContiguous(infos, dstMax); err != nil {
		return nil, fmt.Errorf("compact level %d into %d: %w", src, dst, err)
	}
	var written []*ltx.FileInfo
	for len(infos) > 0 {
		inputs, n, err := r.compactionInputs(ctx, infos)
		if err != nil {
			return written, err
		}
		info, err := r.writeCompacted(ctx, dst, infos[:n], inputs)
		if err != nil {
			return written, err
		}
		written = append(written, info)
		infos = infos[n:]
	}
	return written, nil
}

// checkContiguous verifies that files continue each other from after
// (the destination's last TXID; 0 when the destination is empty, in which
// case the source may start anywhere).
func checkContiguous(infos []*ltx.FileInfo, after ltx.TXID) error {
	prev := after
	for i, info := range infos {
		if (i > 0 || after > 0) && info.MinTXID != prev+1 {
			return fmt.Errorf("level %d file %s does not follow TXID %s (gap or overlap)",
				info.Level, ltx.FormatFilename(info.MinTXID, info.MaxTXID), prev)
		}
		prev = info.MaxTXID
	}
	return nil
}

// Snapshot writes snapshot 1-<TXID> for the newest TXID in the replica by
// compacting the restore chain: no read of the live database and no lock
// on it. Long chains go through intermediate snapshots. It returns nil if
// the newest snapshot is already current.
func (r *Replica) Snapshot(ctx context.Context) (*ltx.FileInfo, error) {
	ctx, leaseDone, err := r.ensureLease(ctx)
	if err != nil {
		return nil, err
	}
	defer leaseDone()
	r.compactMu.Lock()
	defer r.compactMu.Unlock()
	start := time.Now()
	info, err := r.snapshot(ctx)
	n := 0
	if info != nil {
		n = 1
	}
	r.observeCompaction(SnapshotLevel, start, n, err)
	return info, err
}

func (r *Replica) snapshot(ctx context.Context) (*ltx.FileInfo, error) {
	target, err := r.uploadedTXID(ctx)
	if err != nil || target == 0 {
		return nil, err
	}
	for {
		snapMax, err := r.levelMax(ctx, SnapshotLevel)
		if err != nil || snapMax >= target {
			return nil, err
		}
		plan, err := CalcRestorePlan(ctx, r.Client, RestoreTarget{TXID: target})
		if err != nil {
			r.forgetLevels()
			return nil, fmt.Errorf("snapshot: %w", err)
		}
		inputs, n, err := r.compactionInputs(ctx, plan)
		if err != nil {
			return nil, err
		}
		info, err := r.writeCompacted(ctx, SnapshotLevel, plan[:n], inputs)
		if err != nil || n == len(plan) {
			return info, err
		}
	}
}

// RetentionPolicy says what EnforceRetention keeps.
type RetentionPolicy struct {
	SnapshotRetention time.Duration // keep every restore point this far back
	DeleteRemote      bool          // false: never delete in the replica (retention.enabled: false)
}

// EnforceRetention deletes snapshots and compacted files no restore inside
// the retention window can need. It keeps the newest snapshot, every
// snapshot created inside the window, and the newest snapshot created
// before it (the "floor", from which restores of the window's oldest
// points start); files of levels 1..8 that end before the floor's TXID
// are deleted, keeping at least the newest file of each level.
func (r *Replica) EnforceRetention(ctx context.Context, now time.Time, p RetentionPolicy) error {
	if !p.DeleteRemote || p.SnapshotRetention <= 0 {
		return nil
	}
	ctx, leaseDone, err := r.ensureLease(ctx)
	if err != nil {
		return err
	}
	defer leaseDone()
	r.compactMu.Lock()
	defer r.compactMu.Unlock()
	snaps, err := LTXFileInfos(ctx, r.Client, SnapshotLevel, 0, true)
	if err != nil || len(snaps) == 0 {
		return err
	}
	sort.Slice(snaps, func(i, j int) bool { return snaps[i].MaxTXID < snaps[j].MaxTXID })
	windowStart := now.Add(-p.SnapshotRetention)
	floor := -1
	for i, s := range snaps {
		if !s.CreatedAt.After(windowStart) {
			floor = i
		}
	}
	if floor <= 0 {
		return nil // nothing older than the floor snapshot
	}
	if err := r.Client.DeleteLTXFiles(ctx, snaps[:floor]); err != nil {
		return fmt.Errorf("retention: delete snapshots: %w", err)
	}
	floorTXID := snaps[floor].MaxTXID
	for level := 1; level <= MaxCompactionLevel; level++ {
		infos, err := LTXFileInfos(ctx, r.Client, level, 0, false)
		if err != nil {
			return err
		}
		var doomed []*ltx.FileInfo
		for i, info := range infos {
			if info.MaxTXID < floorTXID && i < len(infos)-1 {
				doomed = append(doomed, info)
			}
		}
		if err := r.Client.DeleteLTXFiles(ctx, doomed); err != nil {
			return fmt.Errorf("retention: delete level %d files: %w", level, err)
		}
	}
	return nil
}

// EnforceL0Retention deletes level-0 files, in the replica and locally,
// once level 1 covers them and they are older than retention. It stops at
// the first file that is too young, so level 0 stays contiguous, and
// always keeps the newest level-0 file (the position to resume from).
func (r *Replica) EnforceL0Retention(ctx context.Context, now time.Time, retention time.Duration, deleteRemote bool) error {
	ctx, leaseDone, err := r.ensureLease(ctx)
	if err != nil {
		return err
	}
	defer leaseDone()
	r.compactMu.Lock()
	defer r.compactMu.Unlock()
	l1Max, err := r.levelMax(ctx, 1)
	if err != nil || l1Max == 0 {
		return err
	}
	r.mu.Lock()
	done := r.l0RetainedThrough
	r.mu.Unlock()
	if l1Max <= done {
		return nil // nothing newly covered since the last run
	}
	infos, err := LTXFileInfos(ctx, r.Client, 0, 0, false)
	if err != nil {
		return err
	}
	var doomed []*ltx.FileInfo
	tooYoung := false
	for i, info := range infos {
		if info.MaxTXID > l1Max || i == len(infos)-1 {
			break // not covered by level 1 yet, or the newest file
		}
		if info.CreatedAt.After(now.Add(-retention)) {
			tooYoung = true // look again next time
			break
		}
		doomed = append(doomed, info)
	}
	r.observeL0Retention(infos, l1Max, now.Add(-retention))
	if deleteRemote {
		if err := r.Client.DeleteLTXFiles(ctx, doomed); err != nil {
			return fmt.Errorf("l0 retention: %w", err)
		}
	}
	if err := r.db.removeLocalLTX(doomed); err != nil {
		return err
	}
	if !tooYoung {
		r.mu.Lock()
		r.l0RetainedThrough = max(r.l0RetainedThrough, l1Max)
		r.mu.Unlock()
	}
	return nil
}

// observeL0Retention sets the per-status gauge of the last scan.
func (r *Replica) observeL0Retention(infos []*ltx.FileInfo, l1Max ltx.TXID, cutoff time.Time) {
	var eligible, notCompacted, tooRecent int
	for _, info := range infos {
		switch {
		case info.MaxTXID > l1Max:
			notCompacted++
		case info.CreatedAt.After(cutoff):
			tooRecent++
		default:
			eligible++
		}
	}
	name := dbLabel(r.db.path)
	l0RetentionGauge.WithLabelValues(name, "eligible").Set(float64(eligible))
	l0RetentionGauge.WithLabelValues(name, "not_compacted").Set(float64(notCompacted))
	l0RetentionGauge.WithLabelValues(name, "too_recent").Set(float64(tooRecent))
}

// removeLocalLTX deletes the local level-0 files that infos (replica
// level-0 files, ascending) cover, never the newest local one. A replica
// file may have merged several local files into one upload, so local
// files are chosen by TXID: every one up to the last TXID of infos. Local
// TXIDs at or below a replica TXID are always files we uploaded (after
// another writer, numbering continues after the replica's TXIDs).
func (db *DB) removeLocalLTX(infos []*ltx.FileInfo) error {
	if len(infos) == 0 {
		return nil
	}
	through := infos[len(infos)-1].MaxTXID
	local, err := db.localLTXFiles()
	if err != nil {
		return err
	}
	db.mu.Lock()
	newest := db.pos.txid
	db.mu.Unlock()
	for _, info := range local {
		if info.MaxTXID > through || info.MaxTXID >= newest {
			break
		}
		if err := db.FS.Remove(db.LTXPath(info.MinTXID, info.MaxTXID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove local level-0 file: %w", err)
		}
	}
	return nil
}

// ValidateLevels checks each level's TXID chain in the replica: files in
// order, no gaps and no overlaps in levels 0..8, snapshots starting at
// TXID 1. It returns one error per problem found.
func ValidateLevels(ctx context.Context, client ReplicaClient) ([]error, error) {
	var problems []error
	for level := 0; level <= SnapshotLevel; level++ {
		infos, err := LTXFileInfos(ctx, client, level, 0, false)
		if err != nil {
			return problems, err
		}
		for i, info := range infos {
			name := ltx.FormatFilename(info.MinTXID, info.MaxTXID)
			switch {
			case info.MinTXID > info.MaxTXID:
				problems = append(problems, fmt.Errorf("level %d file %s: TXIDs out of order", level, name))
			case level == SnapshotLevel && info.MinTXID != 1:
				problems = append(problems, fmt.Errorf("level %d file %s: snapshot does not start at TXID 1", level, name))
			case level < SnapshotLevel && i > 0 && info.MinTXID <= infos[i-1].MaxTXID:
				problems = append(problems, fmt.Errorf("level %d file %s overlaps %s", level, name, ltx.FormatFilename(infos[i-1].MinTXID, infos[i-1].MaxTXID)))
			case level < SnapshotLevel && i > 0 && info.MinTXID > infos[i-1].MaxTXID+1:
				problems = append(problems, fmt.Errorf("level %d: gap between %s and %s", level, ltx.FormatFilename(infos[i-1].MinTXID, infos[i-1].MaxTXID), name))
			}
		}
	}
	return problems, nil
}
