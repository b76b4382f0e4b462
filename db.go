package litestream

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/superfly/ltx"
	"modernc.org/sqlite" // also registers the "sqlite" driver

	"github.com/sqlitebackup/litestream/ltxfile"
)

// ErrNotSQLite means the file at a database path is not a SQLite database.
var ErrNotSQLite = errors.New("not a SQLite database")

// sqliteHeader is the magic string at the start of every database file.
const sqliteHeader = "SQLite format 3\x00"

// DB replicates one SQLite database: it copies every committed WAL frame
// into level-0 LTX files in the meta directory and checkpoints the WAL
// itself so no frame is lost before it is copied.
//
// How continuity is guaranteed: the DB keeps a read transaction open on
// its own connection at all times. While any reader holds a snapshot, no
// other connection can restart or truncate the WAL past it, so frames can
// only be appended. The read transaction is released only inside our own
// checkpoint, under a write lock taken with BEGIN IMMEDIATE, after every
// frame has been copied. A WAL restart can therefore only follow a point
// where we had copied everything (the "anchor"); any other change of WAL
// salts means continuity was lost and the next level-0 file is a full
// image of the database.
type DB struct {
	path     string
	metaPath string

	// Settings. Set them before Open; they are not synchronised.
	MonitorInterval    time.Duration // minimum time between syncs; 0 disables automatic syncs
	CheckpointInterval time.Duration // PASSIVE checkpoint this long after a sync; 0 disables
	MinCheckpointPageN int           // PASSIVE checkpoint at this many synced WAL pages
	TruncatePageN      int           // TRUNCATE checkpoint at this many WAL pages
	BusyTimeout        time.Duration
	MaxSyncWALBytes    int64 // WAL bytes per level-0 file; 0 = unlimited
	Logger             *slog.Logger
	FS                 FS

	// OnProgress, if set, receives the progress of writing level-0 files
	// and full images, uploads and compactions (ProgressEvent), e.g. to
	// draw a progress bar. It is called from the goroutine doing the work
	// and must return quickly.
	OnProgress func(ProgressEvent)

	// Replica receives the level-0 files. Set it with NewReplica.
	Replica *Replica

	mu          sync.Mutex // guards everything below; lock order: db.mu before replica.mu
	opened      bool
	initialized bool
	sqldb       *sql.DB
	readConn    *sql.Conn // holds the long-running read transaction
	writeConn   *sql.Conn // takes the write lock during checkpoints and resyncs
	ckptConn    *sql.Conn // runs checkpoints
	readTx      bool
	dbFile      File
	pageSize    uint32
	pos         walPos
	anchor      walAnchor
	needResync  bool   // next sync must go through resync (under the write lock)
	resyncWhy   string // reason, for the log
	syncedPages int    // WAL pages synced since the last checkpoint
	lastCkptAt  time.Time
	lastSyncAt  time.Time
	lockedAt    time.Time     // when beginWrite last took the write lock
	lockHeld    time.Duration // total time the write lock was held
	ckptPause   time.Time     // no automatic checkpoint before this
	changed     chan struct{} // closed and replaced after each sync that wrote a file

	lockFile *os.File // flock on the meta directory, held while open

	syncedMark atomic.Pointer[walMark] // after the last Sync, read without mu

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{} // a WAL change notification
}

// walPos is how far the WAL has been copied into level-0 files.
type walPos struct {
	txid     ltx.TXID  // last level-0 TXID written
	commit   uint32    // database size in pages after txid
	salt1    uint32    // salts of the WAL generation being read
	salt2    uint32    //
	offset   int64     // next frame to read; 0 = unknown
	checksum [2]uint32 // running WAL checksum at offset
	ckptSeq  uint32
}

// walAnchor records the WAL end at the moment our read transaction began
// under the write lock: everything before it had been copied.
type walAnchor struct {
	valid       bool
	offset      int64
	salt1       uint32
	salt2       uint32
	ckptSeq     uint32
	emptyHeader bool // the WAL had no valid header, so any next generation is fine
}

// NewDB returns a DB for the database file at path. Call Open to start it.
func NewDB(path string) *DB {
	dir, name := filepath.Split(path)
	return &DB{
		path:               path,
		metaPath:           filepath.Join(dir, "."+name+"-litestream"),
		MonitorInterval:    DefaultMonitorInterval,
		CheckpointInterval: DefaultCheckpointInterval,
		MinCheckpointPageN: DefaultMinCheckpointPageCount,
		TruncatePageN:      DefaultTruncatePageN,
		BusyTimeout:        DefaultBusyTimeout,
		MaxSyncWALBytes:    DefaultMaxSyncWALBytes,
		Logger:             slog.Default(),
		FS:                 OSFS,
		changed:            make(chan struct{}),
		kick:               make(chan struct{}, 1),
	}
}

// Path returns the database path.
func (db *DB) Path() string { return db.path }

// WALPath returns the path of the database's WAL file.
func (db *DB) WALPath() string { return db.path + "-wal" }

// MetaPath returns the local meta directory.
func (db *DB) MetaPath() string { return db.metaPath }

// SetMetaPath overrides the meta directory. Call before Open.
func (db *DB) SetMetaPath(p string) { db.metaPath = p }

// LTXDir returns the local directory of level-0 files.
func (db *DB) LTXDir() string { return filepath.Join(db.metaPath, "ltx", "0") }

// LTXPath returns the local path of a level-0 file.
func (db *DB) LTXPath(minTXID, maxTXID ltx.TXID) string {
	return filepath.Join(db.LTXDir(), ltx.FormatFilename(minTXID, maxTXID))
}

func (db *DB) logger() *slog.Logger {
	return db.Logger.With("db", db.path)
}

// Open starts monitoring the database. The database file need not exist
// yet: replication begins once it does.
func (db *DB) Open() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.opened {
		return errors.New("db already open")
	}
	if err := CheckDBFile(db.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	lock, err := acquireMetaLock(db.metaPath)
	if err != nil {
		return fmt.Errorf("%s: %w", db.path, err)
	}
	db.lockFile = lock
	db.ctx, db.cancel = context.WithCancel(context.Background())
	db.opened = true
	lags.add(db)
	if db.Replica != nil {
		db.Replica.start(db.ctx)
	}
	if db.MonitorInterval > 0 {
		db.wg.Add(1)
		go func() { defer db.wg.Done(); db.monitor(db.ctx) }()
	}
	return nil
}

// Close stops monitoring, performs a final sync, uploads what remains to
// the replica (bounded by ctx), releases the read transaction so the
// application can checkpoint again, and closes the connections.
func (db *DB) Close(ctx context.Context) error {
	db.mu.Lock()
	if !db.opened {
		// Used without Open (replicate -once): release what Sync took.
		err := db.closeConns()
		db.mu.Unlock()
		if db.Replica != nil {
			db.Replica.releaseLease(ctx)
		}
		return err
	}
	db.cancel()
	db.mu.Unlock()
	db.wg.Wait()

	var errs []error
	if err := db.Sync(ctx); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("final sync: %w", err))
	}
	if db.Replica != nil {
		if err := db.Replica.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("final replica sync: %w", err))
		}
	}

	db.mu.Lock()
	defer db.mu.Unlock()
	db.opened = false
	lags.remove(db)
	errs = append(errs, db.closeConns())
	if db.lockFile != nil {
		errs = append(errs, db.lockFile.Close()) // releases the flock
		db.lockFile = nil
	}
	return errors.Join(errs...)
}

// persistWAL keeps the WAL file when c is the last connection to close:
// its frames and salts then still prove continuity at the next start, so
// a restart does not cost a full image (SQLite would delete the WAL).
func persistWAL(c *sql.Conn) error {
	err := c.Raw(func(dc any) error {
		if fc, ok := dc.(sqlite.FileControl); ok {
			_, err := fc.FileControlPersistWAL("main", 1)
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("persist wal: %w", err)
	}
	return nil
}

// openConn opens a connection for one task, with the given busy timeout.
func (db *DB) openConn(ctx context.Context, busyTimeout time.Duration) (*sql.Conn, error) {
	c, err := db.sqldb.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("open sqlite connection: %w", err)
	}
	if _, err := c.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", busyTimeout.Milliseconds())); err != nil {
		c.Close()
		return nil, fmt.Errorf("set busy timeout: %w", err)
	}
	if err := persistWAL(c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// openWriteConn opens the connection that takes the write lock, unless it
// is open. beginWrite polls for the lock itself: no busy timeout.
func (db *DB) openWriteConn(ctx context.Context) (err error) {
	if db.writeConn == nil {
		db.writeConn, err = db.openConn(ctx, 0)
	}
	return err
}

// openCkptConn opens the connection that runs checkpoints, unless it is
// open. A TRUNCATE checkpoint waits for readers with its busy timeout.
func (db *DB) openCkptConn(ctx context.Context) (err error) {
	if db.ckptConn == nil {
		db.ckptConn, err = db.openConn(ctx, db.BusyTimeout)
	}
	return err
}

// releaseConns closes the write and checkpoint connections; db.mu held.
func (db *DB) releaseConns() {
	for _, c := range []**sql.Conn{&db.writeConn, &db.ckptConn} {
		if *c != nil {
			(*c).Close()
			*c = nil
		}
	}
}

func (db *DB) closeConns() error {
	var errs []error
	if db.readTx {
		if _, err := db.readConn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
			errs = append(errs, err)
		}
		db.readTx = false
	}
	for _, c := range []*sql.Conn{db.readConn, db.writeConn, db.ckptConn} {
		if c != nil {
			c.Close()
		}
	}
	db.readConn, db.writeConn, db.ckptConn = nil, nil, nil
	if db.sqldb != nil {
		errs = append(errs, db.sqldb.Close())
		db.sqldb = nil
	}
	if db.dbFile != nil {
		errs = append(errs, db.dbFile.Close())
		db.dbFile = nil
	}
	db.initialized = false
	return errors.Join(errs...)
}

// Pos returns the last level-0 TXID written locally.
func (db *DB) Pos() ltx.TXID {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.pos.txid
}

// PageSize returns the database page size, 0 before the first sync.
func (db *DB) PageSize() uint32 {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.pageSize
}

// Changed returns a channel that is closed the next time a sync writes a
// level-0 file.
func (db *DB) Changed() <-chan struct{} {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.changed
}

// LastSyncAt returns when the last successful sync finished.
func (db *DB) LastSyncAt() time.Time {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.lastSyncAt
}

// init opens the SQLite connections, switches the database to WAL mode,
// loads the position from the meta directory and reconciles it with the
// replica. It runs on the first sync after the file exists.
func (db *DB) init(ctx context.Context) (err error) {
	if err := CheckDBFile(db.path); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			db.closeConns()
		}
	}()
	dsn := db.path + "?" + url.Values{"_pragma": {
		fmt.Sprintf("busy_timeout(%d)", db.BusyTimeout.Milliseconds()),
		"wal_autocheckpoint(0)",
	}}.Encode()
	if db.sqldb, err = sql.Open("sqlite", dsn); err != nil {
		return fmt.Errorf("open sqlite: %w", err)
	}
	// Only the read connection stays open; the others are opened for the
	// checkpoint or resync that needs them and closed after (releaseConns):
	// a SQLite connection costs about 85 KB, and 500 idle databases would
	// hold two more each.
	db.sqldb.SetMaxIdleConns(0)
	if db.readConn, err = db.sqldb.Conn(ctx); err != nil {
		return fmt.Errorf("open sqlite connection: %w", err)
	}
	if err := persistWAL(db.readConn); err != nil {
		return err
	}
	if err := db.openWriteConn(ctx); err != nil {
		return err
	}
	var mode string
	if err := db.writeConn.QueryRowContext(ctx, "PRAGMA journal_mode = wal").Scan(&mode); err != nil {
		return fmt.Errorf("enable wal mode: %w", err)
	} else if mode != "wal" {
		return fmt.Errorf("enable wal mode: database stayed in %q journal mode", mode)
	}
	if err := db.writeConn.QueryRowContext(ctx, "PRAGMA page_size").Scan(&db.pageSize); err != nil {
		return fmt.Errorf("read page size: %w", err)
	}
	if db.FS == OSFS {
		db.dbFile, err = openDBFile(db.path)
	} else {
		db.dbFile, err = db.FS.OpenFile(db.path, os.O_RDONLY, 0)
	}
	if err != nil {
		return fmt.Errorf("open database file: %w", err)
	}
	if err := db.FS.MkdirAll(db.LTXDir(), db.dirMode()); err != nil {
		return fmt.Errorf("create meta directory: %w", err)
	}
	if err := removeTempFiles(db.FS, db.metaPath); err != nil {
		return fmt.Errorf("clean meta directory: %w", err)
	}
	if err := db.loadPos(); err != nil {
		return err
	}
	if db.Replica != nil {
		if err := db.reconcileWithReplica(ctx); err != nil {
			return err
		}
	}
	db.initialized = true
	db.needResync, db.resyncWhy = true, "startup"
	return nil
}

// loadPos reads the newest local level-0 file to find where to resume.
func (db *DB) loadPos() error {
	db.pos = walPos{}
	infos, err := db.localLTXFiles()
	if err != nil {
		return err
	}
	if len(infos) == 0 {
		return nil
	}
	last := infos[len(infos)-1]
	f, err := db.FS.OpenFile(db.LTXPath(last.MinTXID, last.MaxTXID), os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("open last level-0 file: %w", err)
	}
	defer f.Close()
	hdr, err := ltxfile.ReadHeader(f)
	if err != nil {
		return &FileError{Op: "resume", Level: 0, MinTXID: last.MinTXID, MaxTXID: last.MaxTXID, Err: err}
	}
	db.pos = walPos{txid: hdr.MaxTXID, commit: hdr.Commit}
	if hdr.WALOffset > 0 && hdr.PageSize == db.pageSize {
		db.pos.salt1, db.pos.salt2 = hdr.WALSalt1, hdr.WALSalt2
		db.pos.offset = hdr.WALOffset + hdr.WALSize
	}
	return nil
}

// localLTXFiles lists the level-0 files in the meta directory, ascending.
func (db *DB) localLTXFiles() ([]*ltx.FileInfo, error) {
	entries, err := db.FS.ReadDir(db.LTXDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("list meta directory: %w", err)
	}
	var infos []*ltx.FileInfo
	for _, e := range entries {
		minTXID, maxTXID, err := ltx.ParseFilename(e.Name())
		if err != nil {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		infos = append(infos, &ltx.FileInfo{Level: 0, MinTXID: minTXID, MaxTXID: maxTXID, Size: fi.Size(), CreatedAt: fi.ModTime()})
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].MinTXID < infos[j].MinTXID })
	return infos, nil
}

// reconcileWithReplica handles a replica that is ahead of the local state,
// e.g. after the database was restored from it: numbering continues after
// the replica's newest TXID, so no TXID is ever written twice.
func (db *DB) reconcileWithReplica(ctx context.Context) error {
	remote, err := db.Replica.maxRemoteTXID(ctx)
	if err != nil {
		return fmt.Errorf("read replica position: %w", err)
	}
	if remote <= db.pos.txid {
		return nil
	}
	db.logger().Info("replica is ahead of local state; continuing after it",
		"local_txid", db.pos.txid.String(), "replica_txid", remote.String())
	if err := db.FS.RemoveAll(db.LTXDir()); err != nil {
		return fmt.Errorf("reset meta directory: %w", err)
	}
	if err := db.FS.MkdirAll(db.LTXDir(), db.dirMode()); err != nil {
		return fmt.Errorf("create meta directory: %w", err)
	}
	db.pos = walPos{txid: remote}
	return nil
}

// Sync copies new committed WAL frames into level-0 files and runs a
// checkpoint when one is due.
func (db *DB) Sync(ctx context.Context) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	defer db.releaseConns()
	start := time.Now()
	err := db.syncLocked(ctx)
	if db.pageSize > 0 {
		db.syncedMark.Store(&walMark{db.pos.offset, db.pos.salt1, db.pos.salt2, WALFrameHeaderSize + int64(db.pageSize)})
	}
	if !errors.Is(err, fs.ErrNotExist) {
		db.observeSync(start, err)
	}
	return err
}

// isDiskFull reports whether err means the disk or quota is full.
func isDiskFull(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "database or disk is full") || strings.Contains(s, "no space left on device")
}

func (db *DB) syncLocked(ctx context.Context) error {
	if !db.initialized {
		if err := db.init(ctx); err != nil {
			return err
		}
	}
	if err := db.checkFileIdentity(); err != nil {
		return err
	}
	wrote, err := db.syncWAL(ctx, false)
	if err != nil {
		return err
	}
	if db.needResync {
		if err := db.resync(ctx); err != nil {
			return err
		}
		wrote = true
	}
	if wrote {
		db.lastSyncAt = time.Now()
	}
	return db.checkpointIfNeeded(ctx)
}

// checkFileIdentity notices a database file that was deleted or replaced
// behind us and starts over with a full image of the new file.
func (db *DB) checkFileIdentity() error {
	cur, err := db.FS.Stat(db.path)
	if err != nil {
		db.closeConns()
		return fmt.Errorf("stat database: %w", err)
	}
	open, err := db.dbFile.Stat()
	if err != nil {
		return fmt.Errorf("stat open database: %w", err)
	}
	if !os.SameFile(cur, open) {
		db.logger().Warn("database file was replaced; taking a full image")
		db.closeConns()
		return errDBReplaced
	}
	return nil
}

var errDBReplaced = errors.New("database file was replaced; reopening")

// syncWAL writes level-0 files for committed frames not yet copied.
// locked says the caller holds the write lock: nobody is writing, so
// frames after ours that do not continue our checksum chain prove that
// ours were never published (checkCopiedFrames), not that a frame is
// being written.
func (db *DB) syncWAL(ctx context.Context, locked bool) (bool, error) {
	if db.needResync {
		return false, nil // the caller resyncs under the write lock
	}
	wal, err := db.FS.OpenFile(db.WALPath(), os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return false, db.lostContinuity("wal file is missing")
	} else if err != nil {
		return false, fmt.Errorf("open wal: %w", err)
	}
	defer wal.Close()
	fi, err := wal.Stat()
	if err != nil {
		return false, fmt.Errorf("stat wal: %w", err)
	}
	hdr, err := readWALHeader(wal)
	if errors.Is(err, errWALHeader) {
		if db.pos.offset > WALHeaderSize && !db.atAnchor() {
			return false, db.lostContinuity("wal truncated by another process")
		}
		return false, nil // empty WAL, nothing committed since
	} else if err != nil {
		return false, err
	}
	if hdr.pageSize != db.pageSize {
		return false, db.lostContinuity("wal page size changed")
	}
	offset, seed := db.pos.offset, db.pos.checksum
	if hdr.salt1 != db.pos.salt1 || hdr.salt2 != db.pos.salt2 {
		if !db.restartFollowsAnchor(hdr) {
			return false, db.lostContinuity("wal restarted by another process")
		}
		offset, seed = WALHeaderSize, hdr.checksum
	} else if fi.Size() < db.pos.offset {
		return false, db.lostContinuity("wal truncated by another process")
	}
	limit := fi.Size()
	if locked && hdr.salt1 == db.pos.salt1 && hdr.salt2 == db.pos.salt2 {
		_, same, err := db.checkCopiedFrames(wal, hdr, limit)
		if err != nil {
			return false, err
		}
		if !same {
			return false, db.lostContinuity("frames we copied were never published and are overwritten")
		}
	}
	wrote := false
	for {
		seg, err := scanWAL(wal, limit, hdr, offset, seed, db.MaxSyncWALBytes)
		if err != nil {
			return wrote, err
		}
		if seg.empty() && seg.broken {
			if locked { // nobody is writing: the frames after ours are not our chain's
				return wrote, db.lostContinuity("frames we copied were never published and are overwritten")
			}
			// A frame being written, or frames we copied that SQLite
			// never published (their writer died) and has overwritten:
			// the resync, under the write lock, tells which.
			db.needResync, db.resyncWhy = true, "wal frames after our position do not continue it"
			return wrote, nil
		}
		if seg.empty() {
			return wrote, nil
		}
		if err := db.writeLevel0(wal, hdr, seg, false, false); err != nil {
			return wrote, err
		}
		wrote = true
		offset, seed = seg.end, seg.checksum
		// Go on only if the scan stopped at the size limit of a file.
		// Frames committed since this sync began wait for the next one:
		// a reused WAL file is already as large as it will get, so
		// chasing its end would write a file per commit for as long as
		// the application keeps committing, and never get to checkpoint.
		if db.MaxSyncWALBytes <= 0 || seg.end-seg.start < db.MaxSyncWALBytes {
			return wrote, nil
		}
	}
}

// checkCopiedFrames runs under the write lock. It reports whether the WAL
// still holds, up to our position, the frames we copied: the frame ending
// there carries the running checksum we recorded after copying it (the
// checksum covers every frame before it). A writer that died before
// publishing its transaction leaves frames we may have copied; SQLite then
// overwrites them, and this tells.
//
// It also returns the checksum stored in that frame: the seed to continue
// scanning with, which a restarted process does not know yet.
func (db *DB) checkCopiedFrames(wal File, hdr walHeader, size int64) (sum [2]uint32, same bool, err error) {
	if hdr.salt1 != db.pos.salt1 || hdr.salt2 != db.pos.salt2 || db.pos.offset < WALHeaderSize || db.pos.offset > size {
		return sum, false, nil
	}
	sum, ok, err := frameChecksumAt(wal, hdr, db.pos.offset)
	if err != nil || !ok {
		return sum, false, err
	}
	known := db.pos.checksum != [2]uint32{}
	return sum, !known || sum == db.pos.checksum, nil
}

// restartFollowsAnchor reports whether a new WAL generation began right
// after the point where we had copied everything, so reading can continue
// from its first frame.
func (db *DB) restartFollowsAnchor(hdr walHeader) bool {
	return db.atAnchor() && (db.anchor.emptyHeader || hdr.checkpointSeq == db.anchor.ckptSeq+1)
}

// atAnchor reports whether nothing was copied since the anchor was set.
func (db *DB) atAnchor() bool {
	a := db.anchor
	return a.valid && db.pos.offset == a.offset && db.pos.salt1 == a.salt1 && db.pos.salt2 == a.salt2
}

// lostContinuity schedules a resync, which writes a full image.
func (db *DB) lostContinuity(why string) error {
	db.logger().Warn("wal continuity lost; next level-0 file is a full image", "reason", why)
	db.needResync, db.resyncWhy = true, why
	db.pos.offset = 0
	return nil
}

// resync decides, under the write lock, whether the WAL still continues
// the last level-0 file; no frame can be appended and no checkpoint can
// run meanwhile. It copies the rest (or a full image) and takes a fresh
// read transaction anchored at the WAL end. A large copy is written after
// the lock is released (see walCopy), so the application waits only for
// the decision, not for a full image; should the WAL change under that
// copy after all, it is redone under the lock.
func (db *DB) resync(ctx context.Context) error {
	err := db.resyncOnce(ctx, true)
	if errors.Is(err, errFrameChanged) {
		db.logger().Info("wal changed while copying without the write lock; copying again under it", "error", err)
		err = db.resyncOnce(ctx, false)
	}
	if err != nil {
		return fmt.Errorf("resync: %w", err)
	}
	db.needResync, db.resyncWhy = false, ""
	return nil
}

func (db *DB) resyncOnce(ctx context.Context, mayUnlock bool) error {
	if err := db.beginWrite(ctx); err != nil {
		return err
	}
	locked := true
	defer func() {
		if locked {
			db.endWrite()
		}
	}()
	if err := db.endRead(); err != nil {
		return err
	}
	c, err := db.planCopy()
	if err != nil {
		return err
	}
	defer c.close()
	unlock := mayUnlock && c.pages() > maxLockedCopyPages
	if unlock {
		if err := db.beginRead(ctx); err != nil {
			return err
		}
		db.endWrite()
		locked = false
	}
	if err := db.applyCopy(c, unlock); err != nil {
		return err
	}
	if !unlock {
		return db.beginRead(ctx)
	}
	return nil
}

// maxLockedCopyPages is the largest copy a resync writes while holding
// the write lock; larger ones are written after releasing it.
const maxLockedCopyPages = 256

// walCopy is the level-0 file a resync writes: an increment from our
// position or a full image, up to the WAL end seen under the write lock.
//
// It can be written after the write lock is released, under the read
// transaction begun before the release, whose snapshot ends at that WAL
// end. While a reader holds such a snapshot SQLite backfills no frame past
// it into the database file, and moves no page of the database file at
// all for a reader of the file alone (read mark 0), so every page the copy
// reads from the database file stays as it was. WAL frames are safe too
// while a reader holds a snapshot inside the WAL, but a reader of the file
// alone does not stop a writer from restarting the WAL over frames that
// are already backfilled; such a copy therefore checks every frame it
// reads (readScannedFrame) and gives up with errFrameChanged.
type walCopy struct {
	wal   File // nil without a WAL file
	hdr   walHeader
	hdrOK bool // the WAL has a valid header for our page size
	seg   *walSegment
	full  bool
	size  uint32 // database size in pages, for a full image
}

func (c *walCopy) close() {
	if c.wal != nil {
		c.wal.Close()
	}
}

// pages is the number of pages the copy writes, roughly.
func (c *walCopy) pages() int {
	if c.full {
		return int(max(c.seg.commit, c.size))
	}
	return len(c.seg.pages)
}

// planCopy runs under the write lock: it scans the WAL to its end and
// decides between an increment, when the WAL provably continues from our
// position, and a full image.
func (db *DB) planCopy() (c *walCopy, err error) {
	c = &walCopy{full: true}
	wal, err := db.FS.OpenFile(db.WALPath(), os.O_RDONLY, 0)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open wal: %w", err)
	}
	var size int64
	if wal != nil {
		c.wal = wal
		defer func() {
			if err != nil {
				c.close()
			}
		}()
		fi, err := wal.Stat()
		if err != nil {
			return nil, fmt.Errorf("stat wal: %w", err)
		}
		size = fi.Size()
		if c.hdr, err = readWALHeader(wal); err == nil {
			c.hdrOK = c.hdr.pageSize == db.pageSize
		} else if !errors.Is(err, errWALHeader) {
			return nil, err
		}
	}

	offset, seed := int64(WALHeaderSize), c.hdr.checksum
	if c.hdrOK {
		sum, same, err := db.checkCopiedFrames(wal, c.hdr, size)
		if err != nil {
			return nil, err
		}
		if same && db.pos.txid > 0 {
			c.full, offset, seed = false, db.pos.offset, sum
		}
	}
	if c.full && db.pos.txid > 0 {
		db.logger().Info("writing full image", "reason", db.resyncWhy, "txid", (db.pos.txid + 1).String())
	}

	c.seg = &walSegment{start: offset, end: offset, checksum: seed, pages: map[uint32]int64{}}
	if !c.hdrOK {
		return c, db.sizeFullImage(c)
	}
	if c.seg, err = scanWAL(wal, size, c.hdr, offset, seed, 0); err != nil {
		return nil, err
	}
	if !c.full && c.seg.empty() && c.seg.broken {
		// Nobody is writing, yet the frames after ours do not continue
		// our chain: ours were never published (their writer died)
		// and a shorter transaction overwrote their start.
		db.logger().Info("writing full image", "reason", "frames we copied were never published and are overwritten", "txid", (db.pos.txid + 1).String())
		c.full = true
		if c.seg, err = scanWAL(wal, size, c.hdr, WALHeaderSize, c.hdr.checksum, 0); err != nil {
			return nil, err
		}
	}
	return c, db.sizeFullImage(c)
}

// sizeFullImage records the database file's size in pages for a full image.
func (db *DB) sizeFullImage(c *walCopy) error {
	if !c.full {
		return nil
	}
	fi, err := db.dbFile.Stat()
	if err != nil {
		return fmt.Errorf("stat database: %w", err)
	}
	c.size = uint32(fi.Size() / int64(db.pageSize))
	return nil
}

// applyCopy writes c's level-0 file, if it has pages, and sets our
// position and the anchor to the WAL end it covers. With checkFrames, every
// WAL frame read is checked to be still the scanned one.
func (db *DB) applyCopy(c *walCopy, checkFrames bool) error {
	if c.full || !c.seg.empty() {
		if err := db.writeLevel0(c.wal, c.hdr, c.seg, c.full, checkFrames); err != nil {
			return err
		}
	}
	hdr, seg := c.hdr, c.seg
	db.pos.offset, db.pos.checksum = seg.end, seg.checksum
	db.pos.salt1, db.pos.salt2, db.pos.ckptSeq = hdr.salt1, hdr.salt2, hdr.checkpointSeq
	db.anchor = walAnchor{valid: true, offset: seg.end, salt1: hdr.salt1, salt2: hdr.salt2, ckptSeq: hdr.checkpointSeq, emptyHeader: !c.hdrOK}
	return nil
}

// writeLevel0 writes the next level-0 file: the pages of seg, plus growth
// pages, or every page when full is set.
func (db *DB) writeLevel0(wal File, hdr walHeader, seg *walSegment, full, checkFrames bool) error {
	commit := seg.commit
	if commit == 0 { // full image with no committed WAL frames
		fi, err := db.dbFile.Stat()
		if err != nil {
			return fmt.Errorf("stat database: %w", err)
		}
		commit = uint32(fi.Size() / int64(db.pageSize))
		if commit == 0 {
			return nil // empty database: nothing to replicate yet
		}
	}
	var pgnos []uint32
	if full {
		pgnos = make([]uint32, 0, commit)
		for p := uint32(1); p <= commit; p++ {
			pgnos = append(pgnos, p)
		}
	} else {
		pgnos = make([]uint32, 0, len(seg.pages))
		for p := range seg.pages {
			pgnos = append(pgnos, p)
		}
		// Pages that became part of the database without a WAL frame
		// of their own are read from the database file.
		for p := db.pos.commit + 1; p <= commit; p++ {
			if _, ok := seg.pages[p]; !ok {
				pgnos = append(pgnos, p)
			}
		}
		slices.Sort(pgnos)
	}

	txid := db.pos.txid + 1
	h := ltxfile.Header(db.pageSize, commit, txid, txid, ceilMilli(time.Now()))
	if hdr.salt1 != 0 || hdr.salt2 != 0 || seg.end > seg.start {
		h.WALOffset, h.WALSize = seg.start, seg.end-seg.start
		h.WALSalt1, h.WALSalt2 = hdr.salt1, hdr.salt2
	}
	var frame []byte
	if checkFrames {
		frame = make([]byte, hdr.frameSize())
	}
	readPage := func(pgno uint32, buf []byte) error {
		off, ok := seg.pages[pgno]
		switch {
		case ok && checkFrames:
			if err := readScannedFrame(wal, hdr, off, frame); err != nil {
				return err
			}
			copy(buf, frame[WALFrameHeaderSize:])
			return nil
		case ok:
			_, err := wal.ReadAt(buf, off+WALFrameHeaderSize)
			return err
		}
		return db.readDBPage(pgno, buf)
	}
	op := db.startLevel0Progress(pgnos, full)
	defer op.finish()
	path := db.LTXPath(txid, txid)
	err := WriteFileAtomic(db.FS, path, db.fileMode(), func(w io.Writer) error {
		_, err := ltxfile.Encode(w, h, pgnos, func(pgno uint32, buf []byte) error {
			op.addPages(1, int64(len(buf)))
			return readPage(pgno, buf)
		})
		return err
	})
	var published *PublishedError
	if err != nil && !errors.As(err, &published) {
		return fmt.Errorf("write level-0 file %s: %w", filepath.Base(path), err)
	}
	// Once the file has its final name the position must move past it,
	// even if the directory fsync failed, so TXID txid is never written
	// twice with different content.
	defer func() {
		if published != nil {
			db.logger().Error("level-0 file may not survive a crash", "error", published)
		}
	}()
	db.pos.txid, db.pos.commit = txid, commit
	db.pos.offset, db.pos.checksum = seg.end, seg.checksum
	db.pos.salt1, db.pos.salt2, db.pos.ckptSeq = hdr.salt1, hdr.salt2, hdr.checkpointSeq
	db.syncedPages += seg.frames
	totalWALBytesCounter.WithLabelValues(db.path).Add(float64(seg.end - seg.start))
	close(db.changed)
	db.changed = make(chan struct{})
	return nil
}

// startLevel0Progress starts reporting a level-0 file of pgnos (sorted),
// which never holds the lock page.
func (db *DB) startLevel0Progress(pgnos []uint32, full bool) *progressOp {
	n := int64(len(pgnos))
	if _, ok := slices.BinarySearch(pgnos, ltx.LockPgno(db.pageSize)); ok {
		n--
	}
	op := "level-0"
	if full {
		op = "full image"
	}
	return startProgress(db.OnProgress, op, n*int64(db.pageSize), n)
}

// fileMode is the database file's permission bits: level-0 files hold the
// same data and must be no more readable than it.
func (db *DB) fileMode() os.FileMode {
	if fi, err := os.Stat(db.path); err == nil {
		return fi.Mode().Perm()
	}
	return 0o600
}

// dirMode is fileMode plus search permission where reading is allowed.
func (db *DB) dirMode() os.FileMode {
	m := db.fileMode()
	return m | 0o100 | (m&0o040)>>3 | (m&0o004)>>2
}

// ceilMilli rounds t up to a whole millisecond. LTX timestamps have
// millisecond precision and a file must never claim to be older than the
// commits it holds, or a -timestamp restore could include a later change.
func ceilMilli(t time.Time) time.Time {
	if r := t.Truncate(time.Millisecond); !r.Equal(t) {
		return r.Add(time.Millisecond)
	}
	return t
}

// readDBPage reads a page from the database file; bytes past the end of
// the file read as zeros.
func (db *DB) readDBPage(pgno uint32, buf []byte) error {
	n, err := db.dbFile.ReadAt(buf, int64(pgno-1)*int64(db.pageSize))
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read database page %d: %w", pgno, err)
	}
	clear(buf[n:])
	return nil
}

// beginRead starts the long-running read transaction.
func (db *DB) beginRead(ctx context.Context) error {
	if db.readTx {
		return nil
	}
	if _, err := db.readConn.ExecContext(ctx, "BEGIN"); err != nil {
		return fmt.Errorf("begin read transaction: %w", err)
	}
	var n int
	if err := db.readConn.QueryRowContext(ctx, "SELECT COUNT(1) FROM sqlite_master").Scan(&n); err != nil {
		_, _ = db.readConn.ExecContext(ctx, "ROLLBACK")
		return fmt.Errorf("start read transaction: %w", err)
	}
	db.readTx = true
	return nil
}

func (db *DB) endRead() error {
	if !db.readTx {
		return nil
	}
	db.readTx = false
	if _, err := db.readConn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		return fmt.Errorf("end read transaction: %w", err)
	}
	return nil
}

// beginWrite takes SQLite's write lock without writing anything, so no
// frame can be appended until endWrite. SQLite's busy handler sleeps for
// growing intervals and loses against an application that commits in a
// tight loop, so we poll quickly ourselves, for at most BusyTimeout.
func (db *DB) beginWrite(ctx context.Context) error {
	if err := db.openWriteConn(ctx); err != nil {
		return err
	}
	deadline := time.Now().Add(db.BusyTimeout)
	for {
		_, err := db.writeConn.ExecContext(ctx, "BEGIN IMMEDIATE")
		if err == nil {
			db.lockedAt = time.Now()
			return nil
		}
		if !isBusy(err) || time.Now().After(deadline) {
			return fmt.Errorf("take write lock: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("take write lock: %w", ctx.Err())
		case <-time.After(100 * time.Microsecond):
		}
	}
}

func (db *DB) endWrite() {
	db.lockHeld += time.Since(db.lockedAt)
	if _, err := db.writeConn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		db.logger().Error("release write lock", "error", err)
	}
}

// walPages returns how many frames the synced part of the WAL holds.
func (db *DB) walPages() int {
	if db.pos.offset <= WALHeaderSize || db.pageSize == 0 {
		return 0
	}
	return int((db.pos.offset - WALHeaderSize) / (WALFrameHeaderSize + int64(db.pageSize)))
}

// checkpointIfNeeded runs an automatic checkpoint when a threshold is
// reached. PASSIVE ones are paced (see checkpointLockShare).
func (db *DB) checkpointIfNeeded(ctx context.Context) error {
	mode := ""
	n := db.walPages()
	switch {
	case db.TruncatePageN > 0 && n >= db.TruncatePageN:
		mode = CheckpointTruncate // the WAL's size limit: never postponed
	case time.Now().Before(db.ckptPause):
		return nil
	case db.MinCheckpointPageN > 0 && n >= db.MinCheckpointPageN:
		mode = CheckpointPassive
	case db.CheckpointInterval > 0 && db.syncedPages > 0 && time.Since(db.lastCkptAt) >= db.CheckpointInterval:
		mode = CheckpointPassive
	default:
		return nil
	}
	held := db.lockHeld
	err := db.checkpoint(ctx, mode)
	db.ckptPause = time.Now().Add(max((checkpointLockShare-1)*(db.lockHeld-held), minCheckpointGap))
	return err
}

// Automatic checkpoints are paced. Each takes the application's write
// lock, and SQLite's busy handler in the application sleeps between
// attempts (up to 100 ms): an engine that checkpointed after every sync
// could win every race for the lock until the application's busy timeout
// expired. After a checkpoint that held the lock for d, the next
// automatic one waits (checkpointLockShare-1)*d, and at least
// minCheckpointGap, so a waiting application wakes while the lock is
// free.
const (
	checkpointLockShare = 5
	minCheckpointGap    = 100 * time.Millisecond
)

// Checkpoint modes.
const (
	CheckpointPassive  = "PASSIVE"
	CheckpointTruncate = "TRUNCATE"
)

// Checkpoint copies any new frames and then checkpoints the WAL.
func (db *DB) Checkpoint(ctx context.Context, mode string) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	defer db.releaseConns()
	if !db.initialized {
		if err := db.syncLocked(ctx); err != nil {
			return err
		}
	}
	return db.checkpoint(ctx, mode)
}

// checkpoint runs with db.mu held. PASSIVE runs entirely under our write
// lock, after every frame has been copied, so the WAL restart that may
// follow cannot hide a frame from us. TRUNCATE needs the write lock
// itself, so we release ours and check afterwards, with PRAGMA
// data_version, that nobody committed in between; if someone did, the next
// file is a full image.
func (db *DB) checkpoint(ctx context.Context, mode string) error {
	if err := db.openCkptConn(ctx); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	start := time.Now()
	ran, err := db.runCheckpoint(ctx, mode)
	if ran || err != nil {
		checkpointCounter.WithLabelValues(db.path, mode).Inc()
		checkpointSecondsCounter.WithLabelValues(db.path, mode).Add(time.Since(start).Seconds())
	}
	if err != nil {
		checkpointErrorCounter.WithLabelValues(db.path, mode).Inc()
	}
	return err
}

// runCheckpoint does the work of checkpoint; ran is false when it was
// skipped because the application held the write lock.
//
// A PASSIVE checkpoint first copies, without our write lock, the frames
// we have already shipped (prebackfill), so that the part run under the
// lock only copies what the application wrote meanwhile: the application
// waits for a few frames, not for a second's worth of WAL.
func (db *DB) runCheckpoint(ctx context.Context, mode string) (ran bool, err error) {
	if mode == CheckpointPassive {
		if skipped, err := db.prebackfill(ctx); err != nil || skipped {
			return false, err
		}
	}
	if err := db.beginWrite(ctx); err != nil {
		if isBusy(err) {
			return false, nil // the application is writing; try after the next sync
		}
		return false, fmt.Errorf("checkpoint: %w", err)
	}
	locked := true
	defer func() {
		if locked {
			db.endWrite()
		}
	}()
	if _, err := db.syncWAL(ctx, true); err != nil {
		return true, fmt.Errorf("checkpoint: sync before: %w", err)
	}
	if db.needResync {
		return false, nil
	}
	before, err := db.dataVersion(ctx)
	if err != nil {
		return false, err
	}
	if err := db.endRead(); err != nil {
		db.needResync = true
		return true, fmt.Errorf("checkpoint: %w", err)
	}
	if mode == CheckpointTruncate {
		db.endWrite()
		locked = false
	}
	var busy, logN, ckptN int
	err = db.ckptConn.QueryRowContext(ctx, "PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &logN, &ckptN)
	if mode == CheckpointTruncate {
		if werr := db.beginWrite(ctx); werr != nil {
			db.needResync, db.resyncWhy = true, "write lock after truncate checkpoint"
			return true, errors.Join(err, werr)
		}
		locked = true
	}
	if rerr := db.beginRead(ctx); rerr != nil {
		db.needResync, db.resyncWhy = true, "read transaction after checkpoint"
		return true, errors.Join(err, rerr)
	}
	if err != nil {
		return true, fmt.Errorf("checkpoint %s: %w", mode, err)
	}
	after, err := db.dataVersion(ctx)
	if err != nil {
		return true, err
	}
	if before != after {
		db.needResync, db.resyncWhy = true, "application committed during truncate checkpoint"
		return true, nil
	}
	// Everything up to here was copied: a WAL restart may follow.
	db.anchor = walAnchor{valid: true, offset: db.pos.offset, salt1: db.pos.salt1, salt2: db.pos.salt2,
		ckptSeq: db.pos.ckptSeq, emptyHeader: mode == CheckpointTruncate && busy == 0}
	db.syncedPages = 0
	db.lastCkptAt = time.Now()
	db.logger().Debug("checkpoint", "mode", mode, "busy", busy, "log", logN, "checkpointed", ckptN)
	return true, nil
}

// prebackfill moves our read transaction to the WAL end under a brief
// write lock, after copying every frame, then runs a PASSIVE checkpoint
// without the lock. SQLite never backfills past the oldest reader's
// snapshot and never restarts the WAL while a reader holds a snapshot
// inside it, so this checkpoint only writes frames we have already copied
// and cannot hide any frame from us, while the application keeps
// committing. skipped is set when the application held the write lock or
// a resync is due.
func (db *DB) prebackfill(ctx context.Context) (skipped bool, err error) {
	if err := db.beginWrite(ctx); err != nil {
		if isBusy(err) {
			return true, nil
		}
		return false, fmt.Errorf("checkpoint: %w", err)
	}
	_, err = db.syncWAL(ctx, true)
	if err == nil && !db.needResync {
		if err = db.endRead(); err == nil {
			err = db.beginRead(ctx)
		}
		if err != nil {
			db.needResync, db.resyncWhy = true, "read transaction before checkpoint"
		}
	}
	db.endWrite()
	if err != nil || db.needResync {
		return true, err
	}
	var busy, logN, ckptN int
	if err := db.ckptConn.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logN, &ckptN); err != nil {
		return false, fmt.Errorf("checkpoint PASSIVE without lock: %w", err)
	}
	return false, nil
}

func (db *DB) dataVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := db.ckptConn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("read data_version: %w", err)
	}
	return v, nil
}

func isBusy(err error) bool {
	s := err.Error()
	return strings.Contains(s, "SQLITE_BUSY") || strings.Contains(s, "database is locked")
}

// monitor syncs when the WAL changes: at once after a quiet period, then
// at most once per MonitorInterval while writes continue.
func (db *DB) monitor(ctx context.Context) {
	unwatch, watching := watchFile(db.WALPath(), db.kick)
	defer unwatch()
	// With inotify the poll is only a safety net and the clock for the
	// time-based checkpoint, so an idle database costs (almost) nothing.
	pollEvery := db.MonitorInterval
	if watching {
		pollEvery = max(pollEvery, idlePollInterval)
	}
	poll := time.NewTicker(pollEvery)
	kick(db.kick) // the first sync (and full image, if due) right away
	defer poll.Stop()
	var last walStat
	backoff := time.Duration(0)
	var lastErrLog time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-db.kick:
		case <-poll.C:
			// Fallback for filesystems without inotify and for the
			// time-based checkpoint; a stat is all it costs when idle.
			cur := statWAL(db.WALPath())
			if cur == last && !db.checkpointDue() && db.isInitialized() {
				continue
			}
		}
		if wait := time.Until(db.LastSyncAt().Add(db.MonitorInterval + backoff)); wait > 0 {
			if !db.waitForSync(ctx, wait, backoff == 0) {
				return
			}
		}
		select { // coalesce notifications that arrived while waiting
		case <-db.kick:
		default:
		}
		last = statWAL(db.WALPath())
		err := db.Sync(ctx)
		switch {
		case err == nil:
			if backoff > 0 {
				db.logger().Info("sync recovered")
			}
			backoff = 0
		case errors.Is(err, fs.ErrNotExist) || ctx.Err() != nil:
		default:
			backoff = min(max(2*backoff, db.MonitorInterval), 5*time.Minute)
			if time.Since(lastErrLog) > 30*time.Second {
				db.logger().Error("sync failed", "error", err, "retry_in", backoff)
				lastErrLog = time.Now()
			}
		}
	}
}

// waitForSync waits d, or less when the WAL grows by the checkpoint
// threshold meanwhile (if early is set): a fast writer can append 100 MB
// of WAL in one monitor interval, and copying and checkpointing it in
// steps of the threshold keeps the WAL near that size instead, and each
// step's locked part short. Level-0 uploads stay at one per sync
// interval whatever the number of steps. It returns false once ctx ends.
func (db *DB) waitForSync(ctx context.Context, d time.Duration, early bool) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	var lastCheck time.Time
	for {
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			return true
		case <-db.kick:
		}
		// Every commit notifies; looking at most every growthCheckEvery
		// keeps the look (an open and two small reads) off the hot path.
		if early && db.MinCheckpointPageN > 0 && time.Since(lastCheck) >= growthCheckEvery {
			lastCheck = time.Now()
			if db.walGrewBy(db.MinCheckpointPageN) {
				return true
			}
		}
	}
}

// growthCheckEvery bounds how often waitForSync looks at the WAL's growth:
// at most 200 looks a second, and a fast writer (~15,000 frames a second
// here) overshoots the threshold by at most ~75 frames.
const growthCheckEvery = 5 * time.Millisecond

// walGrewBy reports whether the WAL holds at least n frames past the
// position of the last sync, in the WAL generation that position is in
// or in a new one: whether frame n after that start carries the salts of
// the WAL header. Stale frames of older generations do not count.
func (db *DB) walGrewBy(n int) bool {
	m := db.syncedMark.Load()
	if m == nil {
		return false
	}
	wal, err := db.FS.OpenFile(db.WALPath(), os.O_RDONLY, 0)
	if err != nil {
		return false
	}
	defer wal.Close()
	hdr, err := readWALHeader(wal)
	if err != nil {
		return false
	}
	start := int64(WALHeaderSize)
	if hdr.salt1 == m.salt1 && hdr.salt2 == m.salt2 && m.offset >= WALHeaderSize {
		start = m.offset
	}
	var b [WALFrameHeaderSize]byte
	if _, err := wal.ReadAt(b[:], start+int64(n-1)*m.frameSize); err != nil {
		return false
	}
	return binary.BigEndian.Uint32(b[8:]) == hdr.salt1 && binary.BigEndian.Uint32(b[12:]) == hdr.salt2
}

// walMark is where the last sync left the WAL, for walGrewBy.
type walMark struct {
	offset       int64
	salt1, salt2 uint32
	frameSize    int64
}

// idlePollInterval is the stat poll's period while inotify watches the WAL.
const idlePollInterval = 10 * time.Second

func (db *DB) isInitialized() bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.initialized
}

func (db *DB) checkpointDue() bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.CheckpointInterval > 0 && db.syncedPages > 0 && time.Since(db.lastCkptAt) >= db.CheckpointInterval
}

type walStat struct {
	size  int64
	mtime time.Time
}

func statWAL(path string) walStat {
	fi, err := os.Stat(path)
	if err != nil {
		return walStat{}
	}
	return walStat{fi.Size(), fi.ModTime()}
}

// ReadLTXFile opens a local level-0 file.
func (db *DB) openLocalLTX(minTXID, maxTXID ltx.TXID) (File, error) {
	return db.FS.OpenFile(db.LTXPath(minTXID, maxTXID), os.O_RDONLY, 0)
}
