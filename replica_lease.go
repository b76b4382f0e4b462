package litestream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream/ltxfile"
)

// leaseKeeper is a Replica's side of the single-writer lease (lease.go).
// Its mutex is taken before DB.mu and every Replica lock: acquisition
// may reconcile the local state with what another writer left.
type leaseKeeper struct {
	mu         sync.Mutex
	owner      string
	held       *Lease
	deadline   time.Time // local clock: when our lease runs out at the latest
	reconciled bool      // local state checked against the replica since acquisition
	used       bool      // a write ran under the lease since the last renewal
	active     int       // writes running under the lease now
	// ctx lives as long as the lease: writes run under it, so losing the
	// lease cancels them.
	ctx     context.Context
	cancel  context.CancelCauseFunc
	renewWG sync.WaitGroup

	blockedBy *LeaseHeldError // the last refusal, for the retry delay

	failed  chan struct{} // closed when LeaseWait is off and the lease is refused or lost
	failErr error
}

var (
	errLeaseReleased = errors.New("replica lease released")
	errLeaseLapsed   = errors.New("replica lease lapsed while idle")
)

// leaseTTL returns the configured TTL, never less than MinLeaseTTL.
func (r *Replica) leaseTTL() time.Duration {
	if r.LeaseTTL <= 0 {
		return DefaultLeaseTTL
	}
	return max(r.LeaseTTL, MinLeaseTTL)
}

// leaseMargin is how long before the lease runs out we stop writing.
func leaseMargin(ttl time.Duration) time.Duration { return ttl / 4 }

// ownerLocked describes this replicator in the lease object, readably
// for the error another process shows: host, database and an id.
func (k *leaseKeeper) ownerLocked(db *DB) string {
	if k.owner == "" {
		k.owner = db.leaseOwner()
	}
	return k.owner
}

// leaseOwnerFile keeps, in the meta directory, the owner name used for
// the replica's lease. A replicator restarted after a crash reuses it and
// so resumes its predecessor's lease at once instead of waiting for it to
// expire: the meta directory's flock, which we hold, proves the
// predecessor is gone. Without the flock a fresh name is used.
const leaseOwnerFile = "lease-owner"

func (db *DB) leaseOwner() string {
	host, _ := os.Hostname()
	db.mu.Lock()
	locked := db.lockFile != nil
	db.mu.Unlock()
	p := filepath.Join(db.metaPath, leaseOwnerFile)
	if locked {
		if b, err := readSmallFile(db.FS, p); err == nil {
			if s := strings.TrimSpace(string(b)); strings.HasPrefix(s, host+" db ") {
				return s
			}
		}
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	owner := fmt.Sprintf("%s db %s (id %s)", host, db.Path(), hex.EncodeToString(id[:]))
	if locked {
		if err := writeLeaseOwner(db.FS, p, owner); err != nil {
			db.logger().Warn("cannot record the lease owner; a restart will wait for the lease to expire", "error", err)
		}
	}
	return owner
}

// writeLeaseOwner replaces the owner file through a temporary file whose
// name the meta directory's *.tmp clean-up, which may run concurrently,
// leaves alone.
func writeLeaseOwner(fsys FS, p, owner string) error {
	tmp := p + ".new"
	f, err := fsys.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = io.WriteString(f, owner+"\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Rename(tmp, p)
	}
	if err != nil {
		_ = fsys.Remove(tmp)
	}
	return err
}

func readSmallFile(fsys FS, p string) ([]byte, error) {
	f, err := fsys.OpenFile(p, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 4096))
}

// ensureLease makes sure we hold the replica's lease before a write. It
// returns the context the write must run under (cancelled if the lease
// is lost meanwhile) and a function to call when the write is done.
// Clients without lease support write without one.
func (r *Replica) ensureLease(ctx context.Context) (context.Context, func(), error) {
	l, ok := asLeaser(r.Client)
	if !ok {
		return ctx, func() {}, nil
	}
	k := &r.lease
	k.mu.Lock()
	defer k.mu.Unlock()
	ttl := r.leaseTTL()
	if k.held == nil || time.Until(k.deadline) <= leaseMargin(ttl) {
		if err := r.acquireLeaseLocked(ctx, l, ttl); err != nil {
			return ctx, func() {}, err
		}
	}
	if !k.reconciled {
		if err := r.reconcileAfterLease(ctx); err != nil {
			return ctx, func() {}, fmt.Errorf("replica lease acquired, but: %w", err)
		}
		k.reconciled = true
	}
	k.used = true
	k.active++
	wctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(k.ctx, func() { cancel(context.Cause(k.ctx)) })
	return wctx, func() {
		stop()
		cancel(nil)
		k.mu.Lock()
		k.active--
		k.mu.Unlock()
	}, nil
}

// AcquireLease takes the replica's lease now, for callers that want to
// fail at start-up rather than on the first write. It is a no-op for
// clients without lease support.
func (r *Replica) AcquireLease(ctx context.Context) error {
	_, done, err := r.ensureLease(ctx)
	done()
	return err
}

func (r *Replica) acquireLeaseLocked(ctx context.Context, l Leaser, ttl time.Duration) error {
	k := &r.lease
	if k.held != nil { // running out without a renewal: start over
		k.dropLocked(errors.New("replica lease not renewed in time"))
	}
	start := time.Now()
	lease, err := l.AcquireLease(ctx, k.ownerLocked(r.db), ttl)
	observeLease(r.db.path, "acquire", err)
	if err != nil {
		var held *LeaseHeldError
		if errors.As(err, &held) {
			k.blockedBy = held
			if !r.LeaseWait {
				err = fmt.Errorf("%w (lease wait is off: not waiting for it)", err)
				k.failLocked(err)
			}
			return err
		}
		return fmt.Errorf("acquire replica lease: %w", err)
	}
	k.blockedBy = nil
	k.held, k.deadline, k.reconciled = lease, start.Add(ttl), false
	k.ctx, k.cancel = context.WithCancelCause(context.Background())
	k.renewWG.Add(1)
	go func(ctx context.Context) { defer k.renewWG.Done(); r.renewLease(ctx, l, ttl) }(k.ctx)
	r.logger().Info("replica lease acquired", "owner", lease.Owner, "expires", lease.Expires.UTC().Format(time.RFC3339Nano))
	return nil
}

// renewLease extends the lease every TTL/3 until ctx ends, as long as
// writes keep using it: an idle replica lets its lease lapse instead of
// writing to the storage forever (no requests while idle), and the next
// write acquires it again. A write still running counts as use, and the
// lease is dropped locally before its last safe moment, so no write runs
// under a lease nobody renews. A refused renewal (someone else holds the
// lease now) or one that cannot succeed before the lease runs out stops
// all writes at once.
func (r *Replica) renewLease(ctx context.Context, l Leaser, ttl time.Duration) {
	k := &r.lease
	interval := ttl / 3
	wait := interval
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		k.mu.Lock()
		lease, deadline := k.held, k.deadline
		inUse := k.used || k.active > 0
		k.used = false
		if lease != nil && !inUse && time.Until(deadline.Add(-leaseMargin(ttl))) < interval {
			// Idle, and the next tick would be too late to renew: let
			// the lease lapse now so that no write starts under it.
			k.dropLocked(errLeaseLapsed)
			lease = nil
		}
		k.mu.Unlock()
		if lease == nil {
			return // released, or lapsed while idle
		}
		if !inUse {
			wait = interval
			continue // idle: no request; look again at the next tick
		}
		start := time.Now()
		rctx, cancel := context.WithDeadline(ctx, deadline.Add(-leaseMargin(ttl)))
		next, err := l.RenewLease(rctx, lease, ttl)
		cancel()
		observeLease(r.db.path, "renew", err)

		k.mu.Lock()
		if ctx.Err() != nil || k.held != lease {
			k.mu.Unlock()
			return // released or replaced meanwhile
		}
		switch {
		case err == nil:
			k.held, k.deadline, wait = next, start.Add(ttl), interval
		case errors.Is(err, ErrLeaseHeld) || time.Until(deadline) <= leaseMargin(ttl):
			k.loseLocked(r, err)
			k.mu.Unlock()
			return
		default:
			wait = min(interval/4, time.Until(deadline.Add(-leaseMargin(ttl))))
			r.logger().Warn("replica lease renewal failed; retrying", "error", err, "retry_in", wait)
		}
		k.mu.Unlock()
	}
}

// loseLocked stops every write after the lease was lost. With LeaseWait
// off, losing it to another process is fatal; failing to reach the
// storage in time is not: the next write tries to acquire it again.
func (k *leaseKeeper) loseLocked(r *Replica, err error) {
	err = fmt.Errorf("replica lease lost, writes stopped: %w", err)
	r.logger().Error("replica lease lost; no more writes until it is acquired again", "error", err)
	k.dropLocked(err)
	if !r.LeaseWait && errors.Is(err, ErrLeaseHeld) {
		k.failLocked(err)
	}
}

// dropLocked forgets the lease and cancels the writes running under it.
func (k *leaseKeeper) dropLocked(cause error) {
	k.held = nil
	if k.cancel != nil {
		k.cancel(cause)
	}
}

func (k *leaseKeeper) failLocked(err error) {
	if k.failed == nil {
		k.failed = make(chan struct{})
	}
	if k.failErr == nil {
		k.failErr = err
		close(k.failed)
	}
}

// LeaseFailed returns a channel closed when, with LeaseWait off, the
// replica could not get its lease or lost it; LeaseErr says why. The
// replicate command exits on it.
func (r *Replica) LeaseFailed() <-chan struct{} {
	k := &r.lease
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.failed == nil {
		k.failed = make(chan struct{})
	}
	return k.failed
}

// LeaseErr returns why LeaseFailed was closed, or nil.
func (r *Replica) LeaseErr() error {
	r.lease.mu.Lock()
	defer r.lease.mu.Unlock()
	return r.lease.failErr
}

// HoldsLease reports whether the replica currently holds its lease.
func (r *Replica) HoldsLease() bool {
	r.lease.mu.Lock()
	defer r.lease.mu.Unlock()
	return r.lease.held != nil && time.Now().Before(r.lease.deadline)
}

// releaseLease stops renewing and gives the lease up (Stop calls it after
// the final upload), bounded by a few seconds even when ctx has ended.
func (r *Replica) releaseLease(ctx context.Context) {
	l, ok := asLeaser(r.Client)
	if !ok {
		return
	}
	k := &r.lease
	k.mu.Lock()
	lease := k.held
	k.dropLocked(errLeaseReleased)
	k.mu.Unlock()
	k.renewWG.Wait()
	if lease == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := l.ReleaseLease(ctx, lease)
	observeLease(r.db.path, "release", err)
	if err != nil {
		r.logger().Warn("replica lease not released; it expires on its own", "error", err, "expires", lease.Expires.UTC().Format(time.RFC3339Nano))
		return
	}
	r.logger().Info("replica lease released")
}

// leaseRetryDelay is how long the upload loop waits after err before
// trying again: while another process holds the lease, until its expiry
// (when it may be taken over), at most one TTL.
func (r *Replica) leaseRetryDelay(err error, backoff time.Duration) time.Duration {
	var held *LeaseHeldError
	if !errors.As(err, &held) {
		return backoff
	}
	d := time.Until(held.Expires) + 50*time.Millisecond
	return min(max(d, r.SyncInterval), r.leaseTTL())
}

// reconcileAfterLease runs once after each acquisition. While we did not
// hold the lease another process may have written to the replica; files
// we numbered meanwhile would then clash with its files. If the replica's
// newest file is not one we wrote, the local history is dropped and the
// database continues after the replica's newest TXID with a full image.
func (r *Replica) reconcileAfterLease(ctx context.Context) error {
	remote, err := r.maxRemoteTXID(ctx)
	if err != nil {
		return fmt.Errorf("read replica position: %w", err)
	}
	r.mu.Lock()
	unchanged := r.posKnown && r.pos == remote
	if !unchanged { // re-read everything before trusting it again
		r.posKnown = false
		r.levels = [SnapshotLevel + 1]levelState{}
		r.l0RetainedThrough = 0
	}
	r.mu.Unlock()
	if unchanged || remote == 0 {
		return nil
	}
	ours, err := r.wroteNewest(ctx, remote)
	if err != nil || ours {
		return err
	}
	return r.db.restartAfter(ctx, remote)
}

// wroteNewest reports whether the replica's newest file (TXID txid) is
// ours: the local level-0 file of that TXID has the same header (WAL
// salts, offsets and timestamp tell two databases apart), or we resumed
// exactly after it and have written nothing since.
func (r *Replica) wroteNewest(ctx context.Context, txid ltx.TXID) (bool, error) {
	local, err := r.db.localHeader(txid)
	if errors.Is(err, fs.ErrNotExist) {
		r.db.mu.Lock()
		resumed := r.db.initialized && r.db.pos.txid == txid
		r.db.mu.Unlock()
		return resumed, nil
	} else if err != nil {
		return false, err
	}
	remote, err := r.remoteHeader(ctx, 0, txid, txid)
	if errors.Is(err, fs.ErrNotExist) {
		// Several local files uploaded as one (ltxfile.Merge): the merged
		// file has the header of its newest piece but its own MinTXID.
		remote, err = r.mergedHeader(ctx, txid)
		remote.MinTXID, remote.PreApplyChecksum = local.MinTXID, local.PreApplyChecksum
	}
	if errors.Is(err, fs.ErrNotExist) {
		// The first file of an empty replica is uploaded to the snapshot
		// level only (rebased to start at TXID 1 when it recovered a gap).
		remote, err = r.remoteHeader(ctx, SnapshotLevel, 1, txid)
		remote.MinTXID, remote.PreApplyChecksum = local.MinTXID, local.PreApplyChecksum
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // not a file of ours
	} else if err != nil {
		return false, err
	}
	return remote == local, nil
}

// mergedHeader reads the header of the replica's level-0 file that ends
// at txid and starts before it. One of ours merges at most
// ltxfile.MaxCompactInputs local files of one TXID each, so only the
// files starting that far back are listed.
func (r *Replica) mergedHeader(ctx context.Context, txid ltx.TXID) (ltx.Header, error) {
	seek := ltx.TXID(1)
	if txid > ltxfile.MaxCompactInputs {
		seek = txid - ltxfile.MaxCompactInputs
	}
	infos, err := LTXFileInfos(ctx, r.Client, 0, seek, false)
	if err != nil {
		return ltx.Header{}, err
	}
	for _, info := range infos {
		if info.MaxTXID == txid && info.MinTXID < txid {
			return r.remoteHeader(ctx, 0, info.MinTXID, txid)
		}
	}
	return ltx.Header{}, &FileError{Op: "compare with local file", Level: 0, MinTXID: txid, MaxTXID: txid, Err: fs.ErrNotExist}
}

// remoteHeader reads the header of one replica file.
func (r *Replica) remoteHeader(ctx context.Context, level int, minTXID, maxTXID ltx.TXID) (ltx.Header, error) {
	rc, err := r.Client.OpenLTXFile(ctx, level, minTXID, maxTXID, 0, ltx.HeaderSize)
	if err != nil {
		return ltx.Header{}, &FileError{Op: "compare with local file", Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Err: err}
	}
	defer rc.Close()
	hdr, err := ltxfile.ReadHeader(rc)
	if err != nil {
		return ltx.Header{}, &FileError{Op: "compare with local file", Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Err: err}
	}
	return hdr, nil
}

// localHeader reads the header of the local level-0 file of txid.
func (db *DB) localHeader(txid ltx.TXID) (ltx.Header, error) {
	f, err := db.openLocalLTX(txid, txid)
	if err != nil {
		return ltx.Header{}, err
	}
	defer f.Close()
	return ltxfile.ReadHeader(f)
}

// restartAfter drops the local level-0 files and continues numbering
// after the replica's newest TXID, starting with a full image of the
// database, written now. Before the database is first opened only the
// files are dropped: opening continues after the replica by itself.
func (db *DB) restartAfter(ctx context.Context, txid ltx.TXID) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.logger().Warn("the replica was written by another process; continuing after it with a full image",
		"replica_txid", txid.String(), "local_txid", db.pos.txid.String())
	if err := db.FS.RemoveAll(db.LTXDir()); err != nil {
		return fmt.Errorf("reset meta directory: %w", err)
	}
	if err := db.FS.MkdirAll(db.LTXDir(), 0o755); err != nil {
		return fmt.Errorf("create meta directory: %w", err)
	}
	db.pos = walPos{txid: txid}
	if !db.initialized {
		return nil
	}
	db.needResync, db.resyncWhy = true, "replica written by another process"
	return db.syncLocked(ctx)
}
