package litestream

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path/filepath"
	"sync"
	"time"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream/ltxfile"
)

// RestoreTarget selects the state to restore: the latest (zero value), a
// TXID, or the last state whose files were all created at or before a
// timestamp.
type RestoreTarget struct {
	TXID      ltx.TXID
	Timestamp time.Time
}

func (t RestoreTarget) maxTXID() ltx.TXID {
	if t.TXID != 0 {
		return t.TXID
	}
	return ltx.TXID(math.MaxUint64)
}

func (t RestoreTarget) admits(info *ltx.FileInfo) bool {
	return info.MaxTXID <= t.maxTXID() && (t.Timestamp.IsZero() || !info.CreatedAt.After(t.Timestamp))
}

// CalcRestorePlan returns the shortest chain of files that rebuilds the
// database at target: the newest usable snapshot, then, repeatedly, the
// file from any level that extends the chain furthest. Greedy furthest
// reach gives the fewest files for contiguous ranges.
func CalcRestorePlan(ctx context.Context, client ReplicaClient, target RestoreTarget) ([]*ltx.FileInfo, error) {
	useMetadata := !target.Timestamp.IsZero()
	levels := make([][]*ltx.FileInfo, SnapshotLevel+1)
	var total int
	var earliest, latest time.Time
	var maxTXID ltx.TXID
	for level := 0; level <= SnapshotLevel; level++ {
		infos, err := LTXFileInfos(ctx, client, level, 0, useMetadata)
		if err != nil {
			return nil, err
		}
		levels[level] = infos
		total += len(infos)
		for _, info := range infos {
			if earliest.IsZero() || info.CreatedAt.Before(earliest) {
				earliest = info.CreatedAt
			}
			latest = maxTime(latest, info.CreatedAt)
			maxTXID = max(maxTXID, info.MaxTXID)
		}
	}
	if total == 0 {
		return nil, ErrNoBackup
	}
	if !target.Timestamp.IsZero() && target.Timestamp.Before(earliest) {
		return nil, fmt.Errorf("%w: timestamp %s is before the first backup (%s)", ErrTxNotAvailable,
			target.Timestamp.UTC().Format(time.RFC3339Nano), earliest.UTC().Format(time.RFC3339Nano))
	}
	if target.TXID > maxTXID {
		return nil, fmt.Errorf("%w: TXID %s is beyond the replica's last TXID %s", ErrTxNotAvailable, target.TXID, maxTXID)
	}

	var plan []*ltx.FileInfo
	var cur ltx.TXID
	for _, info := range levels[SnapshotLevel] {
		if info.MinTXID == 1 && target.admits(info) && info.MaxTXID >= cur {
			if len(plan) == 0 || info.MaxTXID > plan[0].MaxTXID {
				plan = []*ltx.FileInfo{info}
				cur = info.MaxTXID
			}
		}
	}
	for cur < target.maxTXID() {
		var best *ltx.FileInfo
		for level := MaxCompactionLevel; level >= 0; level-- {
			for _, info := range levels[level] {
				if info.MinTXID > cur+1 || info.MaxTXID <= cur || !target.admits(info) {
					continue
				}
				if best == nil || info.MaxTXID > best.MaxTXID || (info.MaxTXID == best.MaxTXID && info.MinTXID < best.MinTXID) {
					best = info
				}
			}
		}
		if best == nil {
			break
		}
		plan = append(plan, best)
		cur = best.MaxTXID
	}

	switch {
	case len(plan) == 0:
		return nil, fmt.Errorf("%w: no file starts the chain at TXID 1 (no snapshot)", ErrNoBackup)
	case target.TXID != 0 && cur != target.TXID:
		return nil, fmt.Errorf("%w: TXID %s is not reachable; the chain of files ends at %s", ErrTxNotAvailable, target.TXID, cur)
	case target.TXID == 0 && target.Timestamp.IsZero() && cur < maxTXID:
		return nil, fmt.Errorf("replica has a gap: no file covers TXID %s (the chain ends at %s, the replica reaches %s); %s",
			cur+1, cur, maxTXID, describeNextFile(levels, cur))
	}
	return plan, nil
}

func describeNextFile(levels [][]*ltx.FileInfo, cur ltx.TXID) string {
	var next *ltx.FileInfo
	for _, infos := range levels {
		for _, info := range infos {
			if info.MaxTXID > cur && (next == nil || info.MinTXID < next.MinTXID) {
				next = info
			}
		}
	}
	if next == nil {
		return "no later file"
	}
	return fmt.Sprintf("next file is level %d %s", next.Level, ltx.FormatFilename(next.MinTXID, next.MaxTXID))
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// RestoreOptions configure Restore.
type RestoreOptions struct {
	OutputPath     string
	Target         RestoreTarget
	IntegrityCheck string // "", "none", "quick" or "full"
	FS             FS

	// Progress, if set, is called every few hundred pages with the pages
	// written and the database size in pages, and once at the end.
	Progress func(written int64, total uint32)

	// OnProgress, if set, receives op "restore" events: bytes read from
	// the replica out of the plan's total size, and pages written out of
	// the database size.
	OnProgress func(ProgressEvent)
}

// RestoreResult describes what Restore produced.
type RestoreResult struct {
	TXID     ltx.TXID
	PageSize uint32
	Commit   uint32
	Files    int
}

// Restore rebuilds the database at opt.Target into opt.OutputPath. Pages
// stream from the replica straight into <output>.tmp, each final page
// written once; the file is verified, fsynced and renamed into place, so
// the output path never holds a partial database. The output must not
// exist (the CLI's -force removes it first).
func Restore(ctx context.Context, client ReplicaClient, opt RestoreOptions) (*RestoreResult, error) {
	res, err := restore(ctx, client, opt)
	result := "ok"
	if err != nil {
		result = "error"
	}
	restoreCounter.WithLabelValues(result).Inc()
	return res, err
}

func restore(ctx context.Context, client ReplicaClient, opt RestoreOptions) (*RestoreResult, error) {
	fsys := opt.FS
	if fsys == nil {
		fsys = OSFS
	}
	if opt.OutputPath == "" {
		return nil, errors.New("restore: output path required")
	}
	// A leftover -wal or -journal would be replayed by SQLite over the
	// restored pages, so it blocks a restore as much as the file itself.
	for _, p := range []string{opt.OutputPath, opt.OutputPath + "-wal", opt.OutputPath + "-journal"} {
		if _, err := fsys.Stat(p); err == nil {
			return nil, fmt.Errorf("restore: output %s already exists", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("restore: %w", err)
		}
	}
	res, err := restoreV3IfNewer(ctx, client, opt, fsys) // nil unless v0.3 data serves the target better (v3.go)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if res == nil {
		plan, err := CalcRestorePlan(ctx, client, opt.Target)
		if err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		if res, err = restorePlan(ctx, client, plan, opt, fsys); err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
	}
	if err := IntegrityCheck(ctx, opt.OutputPath, opt.IntegrityCheck); err != nil {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			_ = fsys.Remove(opt.OutputPath + suffix)
		}
		return nil, fmt.Errorf("restore: %w", err)
	}
	return res, nil
}

func restorePlan(ctx context.Context, client ReplicaClient, plan []*ltx.FileInfo, opt RestoreOptions, fsys FS) (_ *RestoreResult, err error) {
	outputPath := opt.OutputPath
	if err := fsys.MkdirAll(filepath.Dir(outputPath), 0o755); err != nil {
		return nil, err
	}
	op := startProgress(opt.OnProgress, "restore", totalSize(plan), 0)
	defer op.finish()
	inputs := op.countInputs(ltxInputs(plan, func(info *ltx.FileInfo) (io.ReadCloser, error) { return openResumable(ctx, client, info) }))
	pages := func(written int64, total uint32) {
		if opt.Progress != nil {
			opt.Progress(written, total)
		}
		op.setPages(written, int64(total))
	}
	var res *ltxfile.Result
	err = WriteFileAtomic(fsys, outputPath, 0o644, func(w io.Writer) error {
		f := w.(File)
		if res, err = ltxfile.ApplyWithProgress(ltxfile.Runs(f), inputs, pages); err != nil {
			return err
		}
		return f.Truncate(int64(res.Commit) * int64(res.PageSize))
	})
	if err != nil {
		return nil, err
	}
	return &RestoreResult{TXID: res.MaxTXID, PageSize: res.PageSize, Commit: res.Commit, Files: len(plan)}, nil
}

// IntegrityCheck runs PRAGMA quick_check ("quick") or integrity_check
// ("full") on the database at path; "" and "none" do nothing.
func IntegrityCheck(ctx context.Context, path, mode string) error {
	var pragma string
	switch mode {
	case "", "none":
		return nil
	case "quick":
		pragma = "PRAGMA quick_check"
	case "full":
		pragma = "PRAGMA integrity_check"
	default:
		return fmt.Errorf("invalid integrity check mode %q (expected none, quick or full)", mode)
	}
	db, err := sql.Open("sqlite", path+"?mode=ro")
	if err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	defer db.Close()
	var result string
	if err := db.QueryRowContext(ctx, pragma).Scan(&result); err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	if result != "ok" {
		return fmt.Errorf("integrity check failed: %s", result)
	}
	return nil
}

// ProgressEvent tells how far a long operation has got: writing a level-0
// file ("level-0", or "full image"), uploading level-0 files ("upload"),
// uploading a full image as a snapshot ("snapshot upload"), compacting
// ("snapshot", "compaction") or restoring ("restore"). Counts are totals
// so far; a total is zero when unknown. Bytes are what the operation
// reads: database pages for a level-0 file, LTX files otherwise. The last
// event of an operation has Finished set, also when it failed.
type ProgressEvent struct {
	Op                string
	Bytes, TotalBytes int64
	Pages, TotalPages int64
	Finished          bool
}

// An operation sends an event after every progressBytes bytes or
// progressPages pages, so events stay cheap.
const (
	progressBytes = 1 << 20
	progressPages = 256
)

// progressOp reports one operation to a hook. A nil *progressOp (no hook)
// does nothing, so callers need no checks.
type progressOp struct {
	fn       func(ProgressEvent)
	mu       sync.Mutex
	ev       ProgressEvent
	reported ProgressEvent // as of the last event
}

// startProgress sends op's first event; it returns nil when fn is nil.
func startProgress(fn func(ProgressEvent), op string, totalBytes, totalPages int64) *progressOp {
	if fn == nil {
		return nil
	}
	p := &progressOp{fn: fn, ev: ProgressEvent{Op: op, TotalBytes: totalBytes, TotalPages: totalPages}}
	fn(p.ev)
	return p
}

// emit sends an event if the operation moved on enough; p.mu held.
func (p *progressOp) emit() {
	if p.ev.Finished {
		return // a reader still draining after the operation ended
	}
	if p.ev.Bytes-p.reported.Bytes >= progressBytes || p.ev.Pages-p.reported.Pages >= progressPages {
		p.reported = p.ev
		p.fn(p.ev)
	}
}

func (p *progressOp) addBytes(n int64) {
	if p == nil || n <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ev.Bytes += n
	p.emit()
}

// addPages counts n pages read, holding size bytes.
func (p *progressOp) addPages(n, size int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ev.Pages += n
	p.ev.Bytes += size
	p.emit()
}

func (p *progressOp) setPages(done, total int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ev.Pages, p.ev.TotalPages = done, total
	p.emit()
}

// finish sends the last event; later calls do nothing.
func (p *progressOp) finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.ev.Finished {
		p.ev.Finished = true
		p.fn(p.ev)
	}
}

// reader counts what r reads as progress.
func (p *progressOp) reader(r io.Reader) io.Reader {
	if p == nil {
		return r
	}
	return &countingReader{r: r, add: p.addBytes}
}

// countInputs counts the bytes read from inputs. A file read more than
// once (its header first, then in full) counts up to the furthest offset
// any of its readers reached, so the sum ends at the files' total size.
func (p *progressOp) countInputs(inputs []ltxfile.Input) []ltxfile.Input {
	if p == nil {
		return inputs
	}
	for i := range inputs {
		open, furthest := inputs[i].Open, new(int64)
		inputs[i].Open = func() (io.ReadCloser, error) {
			rc, err := open()
			if err != nil {
				return nil, err
			}
			var n int64
			return readCloser{&countingReader{r: rc, add: func(k int64) {
				n += k
				p.mu.Lock()
				ahead := n - *furthest
				*furthest = max(*furthest, n)
				p.mu.Unlock()
				p.addBytes(ahead)
			}}, rc}, nil
		}
	}
	return inputs
}

type countingReader struct {
	r   io.Reader
	add func(int64)
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.add(int64(n))
	return n, err
}

type readCloser struct {
	io.Reader
	io.Closer
}

// totalSize is the sum of the files' sizes.
func totalSize(infos []*ltx.FileInfo) int64 {
	var n int64
	for _, info := range infos {
		n += info.Size
	}
	return n
}
