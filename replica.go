package litestream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream/ltxfile"
)

// Replica ships a DB's level-0 files to a ReplicaClient in TXID order and
// tracks how far the replica has got.
//
// Uploads are event driven: the first change after a quiet period is sent
// at once, then at most one upload pass per SyncInterval while changes
// keep coming, so the cost under load stays what it is upstream. A pass
// that finds several pending level-0 files sends them as one merged
// level-0 file (uploadRun), so a pass is one upload however many files
// the database wrote meanwhile.
type Replica struct {
	db     *DB
	Client ReplicaClient

	// SyncInterval is the minimum time between upload passes.
	SyncInterval time.Duration
	Logger       *slog.Logger

	// LeaseTTL and LeaseWait configure the single-writer lease taken
	// before any write when the client supports one (lease.go): how long
	// it lasts unrenewed, and whether to wait for another holder's lease
	// (true) or fail (false, LeaseFailed is closed).
	LeaseTTL  time.Duration
	LeaseWait bool
	lease     leaseKeeper

	// passMu serialises upload passes and recoverMu full-image recovery
	// (taken before db.mu). Both give up when the waiter's ctx ends: the
	// upload loop's pass runs without a deadline, and a SyncAndWait bounded
	// by its caller must not wait for a request that never gets an answer.
	passMu    ctxMutex
	recoverMu ctxMutex
	compactMu sync.Mutex // serialises compaction, snapshots and retention

	mu           sync.Mutex // guards the fields below
	pos          ltx.TXID   // highest TXID known to be in the replica
	posKnown     bool
	lastUploadAt time.Time     // last upload pass, successful or not (rate limiting)
	lastSyncAt   time.Time     // last successful upload pass
	advanced     chan struct{} // closed and replaced when pos advances

	levels            [SnapshotLevel + 1]levelState // cached per-level maximum TXIDs
	l0RetainedThrough ltx.TXID                      // level-0 retention has examined files up to here
	failedRunMax      ltx.TXID                      // last TXID of a merged upload that failed; 0 if none

	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{}
}

// NewReplica attaches a replica to db. Call before db.Open.
func NewReplica(db *DB, client ReplicaClient) *Replica {
	r := &Replica{
		db:           db,
		Client:       Instrument(client),
		SyncInterval: DefaultSyncInterval,
		LeaseTTL:     DefaultLeaseTTL,
		LeaseWait:    true,
		Logger:       db.Logger,
		advanced:     make(chan struct{}),
		kick:         make(chan struct{}, 1),
		passMu:       newCtxMutex(),
		recoverMu:    newCtxMutex(),
	}
	db.Replica = r
	return r
}

func (r *Replica) logger() *slog.Logger {
	return r.Logger.With("db", r.db.Path(), "replica", r.Client.Type())
}

// Pos returns the highest TXID known to be in the replica.
func (r *Replica) Pos() ltx.TXID {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pos
}

// LastSyncAt returns when the last upload pass succeeded; zero if none has
// in this process.
func (r *Replica) LastSyncAt() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastSyncAt
}

func (r *Replica) setPos(txid ltx.TXID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pos, r.posKnown = txid, true
	replicaTXIDGauge.WithLabelValues(r.db.path).Set(float64(txid))
	close(r.advanced)
	r.advanced = make(chan struct{})
}

// maxRemoteTXID returns the highest TXID held by any level of the replica.
func (r *Replica) maxRemoteTXID(ctx context.Context) (ltx.TXID, error) {
	var maxTXID ltx.TXID
	for level := 0; level <= SnapshotLevel; level++ {
		infos, err := LTXFileInfos(ctx, r.Client, level, 0, false)
		if err != nil {
			return 0, err
		}
		for _, info := range infos {
			maxTXID = max(maxTXID, info.MaxTXID)
		}
	}
	return maxTXID, nil
}

// Sync uploads every local level-0 file the replica does not have yet,
// contiguous files merged into one upload (uploadRun).
func (r *Replica) Sync(ctx context.Context) error {
	ctx, leaseDone, err := r.ensureLease(ctx)
	if err != nil {
		return err
	}
	defer leaseDone()
	gapAt, err := r.upload(ctx)
	if err != nil || gapAt == 0 {
		return err
	}
	// The replica lacks files we no longer have locally (a fresh or
	// rolled-back replica): restart it from a full image, uploaded as a
	// snapshot so restores can start from it. recoverMu makes concurrent
	// passes recover once; it is taken before db.mu.
	if err := r.recoverMu.lock(ctx, "full-image recovery"); err != nil {
		return err
	}
	defer r.recoverMu.unlock()
	if gapAt, err = r.upload(ctx); err != nil || gapAt == 0 {
		return err // another pass recovered while we waited
	}
	r.logger().Info("replica is missing history; starting it from a full snapshot", "replica_txid", (gapAt - 1).String())
	txid, err := r.db.writeFullImage(ctx)
	if err != nil {
		return fmt.Errorf("full image for replica: %w", err)
	}
	if err := r.uploadSnapshot(ctx, txid, gapAt > 1); err != nil {
		return err
	}
	if gapAt, err = r.upload(ctx); err != nil {
		return err
	} else if gapAt != 0 {
		return fmt.Errorf("replica cannot be continued from local files at TXID %s", gapAt)
	}
	return nil
}

// upload runs one pass. It returns a non-zero TXID if the next file the
// replica needs is missing locally.
func (r *Replica) upload(ctx context.Context) (gapAt ltx.TXID, err error) {
	if err := r.passMu.lock(ctx, "upload pass"); err != nil {
		return 0, err
	}
	defer r.passMu.unlock()

	r.mu.Lock()
	known, pos := r.posKnown, r.pos
	r.mu.Unlock()
	if !known {
		if pos, err = r.maxRemoteTXID(ctx); err != nil {
			return 0, fmt.Errorf("read replica position: %w", err)
		}
		r.setPos(pos)
	}
	infos, err := r.db.localLTXFiles()
	if err != nil {
		return 0, err
	}
	progress := r.startUploadProgress(infos, pos)
	defer progress.finish()
	for len(infos) > 0 {
		if infos[0].MaxTXID <= pos {
			infos = infos[1:]
			continue
		}
		if infos[0].MinTXID != pos+1 {
			return pos + 1, nil
		}
		level, run := 0, r.uploadRun(infos)
		if pos == 0 {
			// The first file of an empty replica is a full image: it goes
			// to the snapshot level only, where restores start, and level
			// 0 continues after it. A copy in level 0 would be compacted
			// into every level above, one more copy of the database each.
			level, run = SnapshotLevel, infos[:1]
		}
		if err := r.uploadFiles(ctx, level, run, progress); err != nil {
			r.mu.Lock()
			r.posKnown = false // re-read the replica before trusting pos again
			r.failedRunMax = run[len(run)-1].MaxTXID
			r.mu.Unlock()
			return 0, err
		}
		pos = run[len(run)-1].MaxTXID
		infos = infos[len(run):]
		r.mu.Lock()
		r.failedRunMax = 0
		r.mu.Unlock()
		r.setPos(pos)
		r.noteLevelMax(level, pos)
	}
	r.mu.Lock()
	r.lastUploadAt = time.Now()
	r.lastSyncAt = r.lastUploadAt
	r.mu.Unlock()
	lastReplicaSyncGauge.WithLabelValues(r.db.path).SetToCurrentTime()
	return 0, nil
}

// startUploadProgress reports the upload of the files after pos; nil if
// there are none.
func (r *Replica) startUploadProgress(infos []*ltx.FileInfo, pos ltx.TXID) *progressOp {
	var size int64
	for _, info := range infos {
		if info.MaxTXID > pos {
			size += info.Size
		}
	}
	if size == 0 {
		return nil
	}
	return startProgress(r.db.OnProgress, "upload", size, 0)
}

// maxMergeBytes bounds the local level-0 files merged into one upload, by
// their total size: one merged upload stays the size of one level-0 file
// written at DefaultMaxSyncWALBytes, so a bulk load is still sent as a
// series of bounded uploads within the pass. Ordinary writes produce a
// few small files per sync-interval and stay far below it.
var maxMergeBytes int64 = DefaultMaxSyncWALBytes

// uploadRun returns the files, from the start of infos (local level-0
// files, the first of them next for the replica), that go to the replica
// as one level-0 file: the contiguous files after the first up to
// maxMergeBytes in total and ltxfile.MaxCompactInputs files, so that
// compaction can read the pieces of any merged file in one merge. After a
// failed upload the next pass sends the same run again (it ends where the
// failed one did): were the failed upload to land after all, it would
// then be the same file under the same name, never an overlapping one.
func (r *Replica) uploadRun(infos []*ltx.FileInfo) []*ltx.FileInfo {
	r.mu.Lock()
	retryMax := r.failedRunMax
	r.mu.Unlock()
	size := infos[0].Size
	n := 1
	for ; n < len(infos) && n < ltxfile.MaxCompactInputs; n++ {
		prev, next := infos[n-1], infos[n]
		if next.MinTXID != prev.MaxTXID+1 || size+next.Size > maxMergeBytes ||
			(retryMax >= infos[0].MinTXID && prev.MaxTXID >= retryMax) {
			break
		}
		size += next.Size
	}
	return infos[:n]
}

// uploadFiles sends run (contiguous local level-0 files) to the replica
// as one file of level: a single file as it is, several merged.
func (r *Replica) uploadFiles(ctx context.Context, level int, run []*ltx.FileInfo, progress *progressOp) error {
	if len(run) == 1 {
		return r.uploadFile(ctx, level, run[0], progress)
	}
	minTXID, maxTXID := run[0].MinTXID, run[len(run)-1].MaxTXID
	pr, pw := io.Pipe()
	go func() {
		_, err := ltxfile.Merge(pw, progress.countInputs(r.db.localInputs(run)))
		pw.CloseWithError(err)
	}()
	_, err := r.Client.WriteLTXFile(ctx, level, minTXID, maxTXID, pr)
	pr.CloseWithError(err) // unblocks the merge if the upload failed
	if err != nil {
		return &FileError{Op: "upload merged", Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Err: err}
	}
	return nil
}

func (r *Replica) uploadFile(ctx context.Context, level int, info *ltx.FileInfo, progress *progressOp) error {
	f, err := r.db.openLocalLTX(info.MinTXID, info.MaxTXID)
	if err != nil {
		return &FileError{Op: "upload", Level: level, MinTXID: info.MinTXID, MaxTXID: info.MaxTXID, Err: err}
	}
	defer f.Close()
	if _, err := r.Client.WriteLTXFile(ctx, level, info.MinTXID, info.MaxTXID, progress.reader(f)); err != nil {
		return &FileError{Op: "upload", Level: level, MinTXID: info.MinTXID, MaxTXID: info.MaxTXID, Err: err}
	}
	return nil
}

// localInputs names and opens local level-0 files for a merge.
func (db *DB) localInputs(infos []*ltx.FileInfo) []ltxfile.Input {
	return ltxInputs(infos, func(info *ltx.FileInfo) (io.ReadCloser, error) {
		return db.openLocalLTX(info.MinTXID, info.MaxTXID)
	})
}

// uploadSnapshot re-encodes the full-image level-0 file txid as snapshot
// 1-txid in the snapshot level. With bridge, it then marks the replica as
// positioned just before txid, so the level-0 file itself is uploaded
// next and the levels below the snapshot stay contiguous; an empty
// replica needs no bridge.
func (r *Replica) uploadSnapshot(ctx context.Context, txid ltx.TXID, bridge bool) error {
	f, err := r.db.openLocalLTX(txid, txid)
	if err != nil {
		return fmt.Errorf("open full image: %w", err)
	}
	defer f.Close()
	var size int64
	if fi, err := f.Stat(); err == nil {
		size = fi.Size()
	}
	progress := startProgress(r.db.OnProgress, "snapshot upload", size, 0)
	defer progress.finish()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(ltxfile.Rebase(pw, progress.reader(f), 1)) }()
	_, err = r.Client.WriteLTXFile(ctx, SnapshotLevel, 1, txid, pr)
	pr.CloseWithError(err)
	if err != nil {
		return &FileError{Op: "upload snapshot", Level: SnapshotLevel, MinTXID: 1, MaxTXID: txid, Err: err}
	}
	r.noteLevelMax(SnapshotLevel, txid)
	if bridge {
		txid--
	}
	r.setPos(txid)
	return nil
}

// WaitFor uploads now and returns once the replica holds txid.
func (r *Replica) WaitFor(ctx context.Context, txid ltx.TXID) error {
	for {
		r.mu.Lock()
		pos, advanced := r.pos, r.advanced
		r.mu.Unlock()
		if pos >= txid {
			return nil
		}
		if err := r.Sync(ctx); err != nil {
			return err
		}
		if r.Pos() >= txid {
			return nil
		}
		select { // another pass may be uploading; look again soon in any case
		case <-ctx.Done():
			return ctx.Err()
		case <-advanced:
		case <-time.After(max(r.SyncInterval, 10*time.Millisecond)):
		}
	}
}

// ctxMutex is a mutex whose waiters give up when their context ends.
type ctxMutex chan struct{}

func newCtxMutex() ctxMutex { return make(ctxMutex, 1) }

// lock takes m, or returns an error wrapping ctx.Err() once ctx ends; what
// names the holder's work for the message.
func (m ctxMutex) lock(ctx context.Context, what string) error {
	select {
	case m <- struct{}{}:
		return nil
	case <-ctx.Done():
		if cause := context.Cause(ctx); cause != ctx.Err() {
			return fmt.Errorf("wait for the %s in progress: %w (%w)", what, ctx.Err(), cause)
		}
		return fmt.Errorf("wait for the %s in progress: %w", what, ctx.Err())
	}
}

func (m ctxMutex) unlock() { <-m }

// start launches the upload loop.
func (r *Replica) start(ctx context.Context) {
	ctx, r.cancel = context.WithCancel(ctx)
	r.wg.Add(1)
	go func() { defer r.wg.Done(); r.monitor(ctx) }()
}

// Stop ends the upload loop and makes a final upload pass, retrying until
// it succeeds or ctx ends.
func (r *Replica) Stop(ctx context.Context) error {
	defer r.releaseLease(ctx)
	if r.cancel != nil {
		r.cancel()
		r.wg.Wait()
	}
	for {
		err := r.Sync(ctx)
		if err == nil {
			return nil
		} else if errors.Is(err, ErrLeaseHeld) {
			return err // another process writes the replica
		}
		r.logger().Warn("final replica sync failed; retrying", "error", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(DefaultShutdownSyncInterval):
		}
	}
}

func (r *Replica) monitor(ctx context.Context) {
	var backoff time.Duration
	var lastErrLog time.Time
	changed := r.db.Changed()
	// Upload whatever is pending from before we started.
	kick(r.kick)
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-r.kick:
		}
		changed = r.db.Changed()
		r.mu.Lock()
		wait := time.Until(r.lastUploadAt.Add(r.SyncInterval + backoff))
		r.mu.Unlock()
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		err := r.Sync(ctx)
		switch {
		case err == nil:
			if backoff > 0 {
				r.logger().Info("replica sync recovered")
			}
			backoff = 0
		case ctx.Err() != nil:
			return
		default:
			backoff = min(max(2*backoff, r.SyncInterval), 5*time.Minute)
			backoff = r.leaseRetryDelay(err, backoff)
			if time.Since(lastErrLog) > 30*time.Second {
				r.logger().Error("replica sync failed", "error", err, "retry_in", backoff)
				lastErrLog = time.Now()
			}
			r.mu.Lock()
			r.lastUploadAt = time.Now()
			r.mu.Unlock()
			kick(r.kick) // retry after the backoff even without new changes
		}
	}
}

// SyncAndWait copies new WAL frames into a level-0 file and returns once
// the replica holds it: the change committed before the call is then
// safe in the replica.
func (db *DB) SyncAndWait(ctx context.Context) error {
	if err := db.Sync(ctx); err != nil {
		return err
	}
	if db.Replica == nil {
		return errors.New("sync and wait: no replica attached")
	}
	return db.Replica.WaitFor(ctx, db.Pos())
}

// writeFullImage forces the next level-0 file to be a full image of the
// database and returns its TXID.
func (db *DB) writeFullImage(ctx context.Context) (ltx.TXID, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if err := db.syncLocked(ctx); err != nil {
		return 0, err
	}
	db.needResync, db.resyncWhy, db.pos.offset = true, "replica needs a full image", 0
	if err := db.resync(ctx); err != nil {
		return 0, err
	}
	return db.pos.txid, nil
}
