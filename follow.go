package litestream

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream/ltxfile"
)

// Follow mode (restore -f) keeps a restored database current: after the
// initial restore it polls the replica and applies every new LTX file to
// the output in place, while applications read it.
//
// Each file is applied inside one SQLite write transaction on the output,
// writing raw pages through the sqlite_dbpage virtual table. SQLite itself
// therefore provides what readers need:
//
//   - locking: pages reach the file only under SQLite's EXCLUSIVE lock, so
//     a reader sees the state before a file or after it, never a mix;
//   - the rollback journal: a follower killed in the middle of a file
//     leaves a hot journal, and the next connection to open the database
//     (a reader, or the restarted follower) rolls the half-written file
//     back, so even a crash never exposes a torn state;
//   - the change counter in the header, bumped on every commit, so other
//     connections drop their page caches.
//
// The output is kept in rollback-journal mode (header bytes 18-19 = 1):
// pages copied from the primary carry its WAL-mode bytes, which are
// replaced by the output's own before they are written. The <out>-txid
// sidecar, written atomically after each commit, records the last TXID
// applied; applying a file again over a state it already contains is
// harmless because LTX pages are full page images, so a crash between the
// commit and the sidecar update only repeats one file.

// DefaultFollowInterval is how often follow mode polls the replica.
const DefaultFollowInterval = time.Second

// TXIDFilePath returns the follow-mode sidecar of a database: <db>-txid.
func TXIDFilePath(dbPath string) string { return dbPath + "-txid" }

// ReadTXIDFile reads the sidecar of dbPath: 16 hex digits and a newline.
// A missing sidecar is an error wrapping os.ErrNotExist.
func ReadTXIDFile(dbPath string) (ltx.TXID, error) {
	p := TXIDFilePath(dbPath)
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err // *fs.PathError names the file
	}
	s := strings.TrimSuffix(string(b), "\n")
	txid, err := ltx.ParseTXID(s)
	if err != nil || len(s) != 16 {
		return 0, fmt.Errorf("%s: invalid content %q (expected 16 hex digits)", p, s)
	}
	return txid, nil
}

// WriteTXIDFile writes the sidecar of dbPath atomically.
func WriteTXIDFile(fsys FS, dbPath string, txid ltx.TXID) error {
	return WriteFileAtomic(fsys, TXIDFilePath(dbPath), 0o644, func(w io.Writer) error {
		_, err := io.WriteString(w, txid.String()+"\n")
		return err
	})
}

// FollowOptions configure Follow.
type FollowOptions struct {
	OutputPath string
	Interval   time.Duration // poll interval; DefaultFollowInterval if 0

	// IntegrityCheck ("", "none", "quick" or "full") checks the initial
	// restore before it is put in place.
	IntegrityCheck string

	// BusyTimeout bounds how long a commit waits for readers to finish
	// their read transactions (30s if 0). On timeout the file is rolled
	// back and applied again at the next poll.
	BusyTimeout time.Duration

	Logger *slog.Logger

	// OnApply, if set, is called with the output's TXID once it is open
	// (restored or resumed) and after each TXID it reaches, once the
	// sidecar records it.
	OnApply func(txid ltx.TXID)
}

// followFatal marks errors that polling again cannot cure.
type followFatal struct{ err error }

func (e *followFatal) Error() string { return e.err.Error() }
func (e *followFatal) Unwrap() error { return e.err }

// Follow restores the latest state of the replica into opt.OutputPath, or
// resumes from the <out>-txid sidecar if the output exists, and then
// applies every new file until ctx is cancelled, when it returns nil.
// Transient errors (network, a reader holding its lock too long, a
// corrupt download) are logged and retried at the next poll; errors that
// cannot heal (a page size change, a replica that was reset behind the
// follower) stop it.
func Follow(ctx context.Context, client ReplicaClient, opt FollowOptions) error {
	if opt.OutputPath == "" {
		return errors.New("follow: output path required")
	}
	if opt.Interval <= 0 {
		opt.Interval = DefaultFollowInterval
	}
	if opt.BusyTimeout <= 0 {
		opt.BusyTimeout = 30 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	f := &follower{client: client, out: opt.OutputPath, opt: opt, logger: opt.Logger.With("db", opt.OutputPath)}
	defer f.close()
	if err := f.start(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("follow: %w", err)
	}
	return f.run(ctx)
}

// follower is the state of one follow session.
type follower struct {
	client ReplicaClient
	out    string
	opt    FollowOptions
	logger *slog.Logger

	sqldb    *sql.DB
	conn     *sql.Conn // the one connection that writes the output
	pageSize uint32
	txid     ltx.TXID // last TXID applied and recorded in the sidecar

	lastDeepCheck   time.Time
	deepCheckFailed bool
}

// stagingPath is where a file is downloaded and verified before it is
// applied, so a corrupt or truncated download never reaches the output.
func (f *follower) stagingPath() string { return f.out + "-follow.ltx" + TempSuffix }

func (f *follower) close() {
	if f.conn != nil {
		f.conn.Close()
	}
	if f.sqldb != nil {
		f.sqldb.Close()
	}
	_ = os.Remove(f.stagingPath())
}

func (f *follower) start(ctx context.Context) error {
	_ = os.Remove(f.stagingPath())
	if _, err := os.Stat(f.out); errors.Is(err, fs.ErrNotExist) {
		if err := f.restoreFresh(ctx); err != nil {
			return err
		}
		f.logger.Info("restored; following", "txid", f.txid.String())
	} else if err != nil {
		return err
	} else {
		txid, err := ReadTXIDFile(f.out)
		if errors.Is(err, fs.ErrNotExist) {
			return &followFatal{fmt.Errorf("%s exists but %s does not, so the TXID it holds is unknown (it was not written by follow mode); restore it again with -force",
				f.out, TXIDFilePath(f.out))}
		} else if err != nil {
			return &followFatal{err}
		}
		f.txid = txid
		if err := f.checkReplicaNotBehind(ctx); err != nil {
			return err
		}
		f.logger.Info("resuming follow", "txid", f.txid.String())
	}
	if err := f.openConn(ctx); err != nil {
		return err
	}
	if f.opt.OnApply != nil {
		f.opt.OnApply(f.txid)
	}
	return nil
}

// openConn opens the connection that applies files. Rollback-journal mode
// is asked for (a no-op for outputs we restored); if readers switched the
// output to WAL mode, files are applied through the WAL, which is just as
// safe for them.
func (f *follower) openConn(ctx context.Context) error {
	dsn := fmt.Sprintf("%s?_pragma=busy_timeout(%d)", f.out, f.opt.BusyTimeout.Milliseconds())
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fmt.Errorf("open %s: %w", f.out, err)
	}
	db.SetMaxOpenConns(1)
	f.sqldb = db
	if f.conn, err = db.Conn(ctx); err != nil {
		return fmt.Errorf("open %s: %w", f.out, err)
	}
	var pageSize int64
	if err := f.conn.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
		return fmt.Errorf("open %s: %w", f.out, err)
	}
	f.pageSize = uint32(pageSize)
	var mode string
	if err := f.conn.QueryRowContext(ctx, "PRAGMA journal_mode=DELETE").Scan(&mode); err != nil {
		f.logger.Warn("cannot switch the output to rollback-journal mode", "error", err)
	} else if mode != "delete" {
		f.logger.Warn("output is not in rollback-journal mode; applying through its journal mode", "journal_mode", mode)
	}
	return nil
}

// checkReplicaNotBehind refuses to resume when the replica no longer
// reaches the output's TXID: it was reset or replaced, and its TXIDs may
// now name different changes.
func (f *follower) checkReplicaNotBehind(ctx context.Context) error {
	maxTXID, err := replicaMaxTXID(ctx, f.client)
	if err != nil {
		return err
	}
	if maxTXID < f.txid {
		return &followFatal{fmt.Errorf("%s is at TXID %s but the replica only reaches %s: the replica was reset or replaced; restore again with -force",
			f.out, f.txid, maxTXID)}
	}
	return nil
}

func replicaMaxTXID(ctx context.Context, client ReplicaClient) (ltx.TXID, error) {
	var maxTXID ltx.TXID
	for level := 0; level <= SnapshotLevel; level++ {
		infos, err := LTXFileInfos(ctx, client, level, 0, false)
		if err != nil {
			return 0, err
		}
		for _, info := range infos {
			maxTXID = max(maxTXID, info.MaxTXID)
		}
	}
	return maxTXID, nil
}

// restoreFresh restores the latest state into <out>.tmp, switches it to
// rollback-journal mode, checks it, records the sidecar and renames it
// into place; the output never exists half-written.
func (f *follower) restoreFresh(ctx context.Context) error {
	for _, p := range []string{f.out + "-wal", f.out + "-journal"} {
		if _, err := os.Stat(p); err == nil {
			return &followFatal{fmt.Errorf("%s exists and would be replayed over the restored database; remove it or restore with -force", p)}
		}
	}
	if err := os.MkdirAll(filepath.Dir(f.out), 0o755); err != nil {
		return err
	}
	plan, err := CalcRestorePlan(ctx, f.client, RestoreTarget{})
	if err != nil {
		return err
	}
	var res *ltxfile.Result
	err = WriteFileAtomic(OSFS, f.out, 0o644, func(w io.Writer) error {
		file := w.(File)
		if res, err = ltxfile.Apply(file, planInputs(ctx, f.client, plan)); err != nil {
			return err
		}
		if err := file.Truncate(int64(res.Commit) * int64(res.PageSize)); err != nil {
			return err
		}
		if _, err := file.WriteAt([]byte{1, 1}, 18); err != nil { // rollback-journal mode
			return fmt.Errorf("set journal mode: %w", err)
		}
		if err := IntegrityCheck(ctx, file.Name(), f.opt.IntegrityCheck); err != nil {
			return err
		}
		// The sidecar goes first: a crash before the rename leaves no
		// output, and the next start simply restores again.
		return WriteTXIDFile(OSFS, f.out, res.MaxTXID)
	})
	result := "ok"
	if err != nil {
		result = "error"
	}
	restoreCounter.WithLabelValues(result).Inc()
	if err != nil {
		return err
	}
	f.txid = res.MaxTXID
	return nil
}

func planInputs(ctx context.Context, client ReplicaClient, plan []*ltx.FileInfo) []ltxfile.Input {
	inputs := make([]ltxfile.Input, len(plan))
	for i, info := range plan {
		info := info
		inputs[i] = ltxfile.Input{
			Name: fmt.Sprintf("level %d file %s", info.Level, ltx.FormatFilename(info.MinTXID, info.MaxTXID)),
			Open: func() (io.ReadCloser, error) {
				return client.OpenLTXFile(ctx, info.Level, info.MinTXID, info.MaxTXID, 0, 0)
			},
		}
	}
	return inputs
}

func (f *follower) run(ctx context.Context) error {
	ticker := time.NewTicker(f.opt.Interval)
	defer ticker.Stop()
	for {
		if err := f.poll(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var fatal *followFatal
			if errors.As(err, &fatal) {
				return fmt.Errorf("follow: %w", err)
			}
			f.logger.Error("follow: poll failed; retrying", "txid", f.txid.String(), "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// poll applies files until the output is current.
func (f *follower) poll(ctx context.Context) error {
	for ctx.Err() == nil {
		info, plan, err := f.next(ctx)
		switch {
		case err != nil:
			return err
		case info != nil:
			err = f.applyNext(ctx, info)
		case plan != nil:
			err = f.resync(ctx, plan)
		default:
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// deepCheckInterval is how often an idle follower also looks past level 0,
// for replicas whose level 0 is empty.
const deepCheckInterval = time.Minute

// next finds what to apply after f.txid: the level-0 file that follows
// it; else, when level 0 has a gap (retention removed files not yet
// applied), the compacted file (levels 1..8) that covers the next TXID
// and reaches furthest; else, when nothing covers it, the whole restore
// chain, to apply in place. An idle poll costs one listing of level 0.
func (f *follower) next(ctx context.Context) (*ltx.FileInfo, []*ltx.FileInfo, error) {
	l0, err := LTXFileInfos(ctx, f.client, 0, f.txid+1, false)
	if err != nil {
		return nil, nil, err
	}
	if len(l0) > 0 && l0[0].MinTXID == f.txid+1 {
		return l0[0], nil, nil
	}
	// Looking past level 0 lists every level; an idle follower does it
	// once a minute, and so does one whose last look failed (a replica
	// with a real gap), instead of at every poll.
	if (len(l0) == 0 || f.deepCheckFailed) && time.Since(f.lastDeepCheck) < deepCheckInterval {
		return nil, nil, nil
	}
	f.lastDeepCheck = time.Now()
	info, plan, err := f.deepCheck(ctx)
	f.deepCheckFailed = err != nil
	return info, plan, err
}

func (f *follower) deepCheck(ctx context.Context) (*ltx.FileInfo, []*ltx.FileInfo, error) {
	bridge, err := f.bridge(ctx)
	if err != nil || bridge != nil {
		return bridge, nil, err
	}
	plan, err := CalcRestorePlan(ctx, f.client, RestoreTarget{})
	if errors.Is(err, ErrNoBackup) {
		return nil, nil, &followFatal{fmt.Errorf("the replica holds no backup any more (it was reset or replaced) while the output is at TXID %s; restore again with -force", f.txid)}
	} else if err != nil {
		return nil, nil, err
	}
	switch last := plan[len(plan)-1].MaxTXID; {
	case last < f.txid:
		return nil, nil, &followFatal{fmt.Errorf("%s is at TXID %s but the replica only reaches %s: the replica was reset or replaced; restore again with -force", f.out, f.txid, last)}
	case last == f.txid:
		return nil, nil, nil
	}
	f.logger.Warn("no file continues from the output's TXID (retention removed them); applying the whole restore chain in place",
		"txid", f.txid.String(), "files", len(plan))
	return nil, plan, nil
}

// bridge returns the compacted file that covers TXID f.txid+1 and reaches
// furthest, or nil.
func (f *follower) bridge(ctx context.Context) (*ltx.FileInfo, error) {
	var best *ltx.FileInfo
	for level := 1; level <= MaxCompactionLevel; level++ {
		infos, err := LTXFileInfos(ctx, f.client, level, 0, false)
		if err != nil {
			return nil, err
		}
		for _, info := range infos {
			if info.MinTXID <= f.txid+1 && info.MaxTXID > f.txid && (best == nil || info.MaxTXID > best.MaxTXID) {
				best = info
			}
		}
	}
	if best != nil {
		f.logger.Debug("bridging a level-0 gap", "level", best.Level, "file", ltx.FormatFilename(best.MinTXID, best.MaxTXID))
	}
	return best, nil
}

// applyNext downloads one file, verifies it whole, then applies it.
func (f *follower) applyNext(ctx context.Context, info *ltx.FileInfo) error {
	fileErr := func(err error) error {
		return &FileError{Op: "follow", Level: info.Level, MinTXID: info.MinTXID, MaxTXID: info.MaxTXID, Err: err}
	}
	hdr, err := f.fetch(ctx, info)
	if err != nil {
		return fileErr(err)
	}
	if hdr.PageSize != f.pageSize {
		return &followFatal{fileErr(fmt.Errorf("page size %d differs from the output's %d; restore again with -force", hdr.PageSize, f.pageSize))}
	}
	if err := f.applyStaged(hdr); err != nil {
		return fileErr(err)
	}
	f.logger.Debug("applied", "level", info.Level, "file", ltx.FormatFilename(info.MinTXID, info.MaxTXID), "commit", hdr.Commit)
	return f.advance(hdr.MaxTXID)
}

// fetch copies a file into the staging file while decoding it, and
// returns its header once the whole file, checksum included, verified.
func (f *follower) fetch(ctx context.Context, info *ltx.FileInfo) (ltx.Header, error) {
	rc, err := f.client.OpenLTXFile(ctx, info.Level, info.MinTXID, info.MaxTXID, 0, 0)
	if err != nil {
		return ltx.Header{}, err
	}
	defer rc.Close()
	staged, err := os.Create(f.stagingPath())
	if err != nil {
		return ltx.Header{}, err
	}
	defer staged.Close()
	w := bufio.NewWriter(staged)
	hdr, err := ltxfile.Verify(io.TeeReader(rc, w))
	if err != nil {
		return ltx.Header{}, fmt.Errorf("verify: %w", err)
	}
	if hdr.MinTXID != info.MinTXID || hdr.MaxTXID != info.MaxTXID {
		return ltx.Header{}, fmt.Errorf("header holds TXIDs %s-%s, not those of its name", hdr.MinTXID, hdr.MaxTXID)
	}
	if hdr.MinTXID > f.txid+1 || hdr.MaxTXID <= f.txid {
		return ltx.Header{}, fmt.Errorf("does not continue from TXID %s", f.txid)
	}
	// Keep any bytes the decoder did not need, so the staged copy
	// decodes exactly as the download did.
	if _, err := io.Copy(w, rc); err != nil {
		return ltx.Header{}, err
	}
	if err := w.Flush(); err != nil {
		return ltx.Header{}, err
	}
	return hdr, nil
}

// applyStaged writes the staged file's pages in one transaction.
func (f *follower) applyStaged(hdr ltx.Header) error {
	staged, err := os.Open(f.stagingPath())
	if err != nil {
		return err
	}
	defer staged.Close()
	dec := ltx.NewDecoder(bufio.NewReader(staged))
	dec.SetRetainPageIndex(false)
	if err := dec.DecodeHeader(); err != nil {
		return fmt.Errorf("decode header: %w", err)
	}
	lockPgno := ltx.LockPgno(hdr.PageSize)
	return f.inTx(func(tx *pageTx) error {
		buf := make([]byte, hdr.PageSize)
		for {
			var ph ltx.PageHeader
			if err := dec.DecodePage(&ph, buf); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return fmt.Errorf("decode page: %w", err)
			}
			if ph.Pgno > hdr.Commit || ph.Pgno == lockPgno {
				continue
			}
			if err := tx.writePage(ph.Pgno, buf); err != nil {
				return err
			}
		}
		if err := dec.Close(); err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		return tx.finish(hdr.Commit)
	})
}

// resync applies a whole restore chain in place, in one transaction: the
// output becomes exactly the chain's final state whatever it held before.
func (f *follower) resync(ctx context.Context, plan []*ltx.FileInfo) error {
	inputs := planInputs(ctx, f.client, plan)
	rc, err := inputs[0].Open()
	if err != nil {
		return fmt.Errorf("open %s: %w", inputs[0].Name, err)
	}
	hdr, err := ltxfile.ReadHeader(rc)
	rc.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", inputs[0].Name, err)
	}
	if hdr.PageSize != f.pageSize {
		return &followFatal{fmt.Errorf("%s: page size %d differs from the output's %d; restore again with -force", inputs[0].Name, hdr.PageSize, f.pageSize)}
	}
	var res *ltxfile.Result
	err = f.inTx(func(tx *pageTx) error {
		if res, err = ltxfile.Apply(tx, inputs); err != nil {
			return err
		}
		return tx.finish(res.Commit)
	})
	if err != nil {
		return fmt.Errorf("resync: %w", err)
	}
	return f.advance(res.MaxTXID)
}

// advance records a committed TXID in the sidecar.
func (f *follower) advance(txid ltx.TXID) error {
	if err := WriteTXIDFile(OSFS, f.out, txid); err != nil {
		return fmt.Errorf("write %s: %w", TXIDFilePath(f.out), err)
	}
	f.txid = txid
	if f.opt.OnApply != nil {
		f.opt.OnApply(txid)
	}
	return nil
}

// inTx runs fn inside one write transaction on the output and commits
// it; on any error the transaction is rolled back and the output is
// unchanged. It ignores cancellation: a started file is finished (it is
// local and short), so a signal never leaves work for the hot journal.
func (f *follower) inTx(fn func(tx *pageTx) error) (err error) {
	ctx := context.Background()
	if _, err := f.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			if _, rerr := f.conn.ExecContext(ctx, "ROLLBACK"); rerr != nil {
				err = errors.Join(err, fmt.Errorf("rollback: %w", rerr))
			}
		}
	}()
	tx := &pageTx{ctx: ctx, conn: f.conn, pageSize: f.pageSize}
	if err := tx.init(); err != nil {
		return err
	}
	defer tx.stmt.Close()
	if err := fn(tx); err != nil {
		return err
	}
	if _, err := f.conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// pageTx writes raw pages into the output within a transaction.
type pageTx struct {
	ctx       context.Context
	conn      *sql.Conn
	stmt      *sql.Stmt
	pageSize  uint32
	oldCommit uint32  // database size in pages before the transaction
	mode      [2]byte // the output's journal-mode header bytes (18-19)
	wrotePg1  bool
	maxPgno   uint32
}

func (t *pageTx) init() error {
	var n int64
	if err := t.conn.QueryRowContext(t.ctx, "PRAGMA page_count").Scan(&n); err != nil {
		return fmt.Errorf("page count: %w", err)
	}
	t.oldCommit = uint32(n)
	pg1, err := t.readPage1()
	if err != nil {
		return err
	}
	copy(t.mode[:], pg1[18:20])
	if t.stmt, err = t.conn.PrepareContext(t.ctx, "INSERT INTO sqlite_dbpage(pgno, data) VALUES (?, ?)"); err != nil {
		return fmt.Errorf("prepare page write (does this SQLite build have sqlite_dbpage?): %w", err)
	}
	return nil
}

func (t *pageTx) readPage1() ([]byte, error) {
	var pg1 []byte
	if err := t.conn.QueryRowContext(t.ctx, "SELECT data FROM sqlite_dbpage WHERE pgno = 1").Scan(&pg1); err != nil {
		return nil, fmt.Errorf("read page 1: %w", err)
	}
	if len(pg1) != int(t.pageSize) {
		return nil, fmt.Errorf("read page 1: %d bytes, page size %d", len(pg1), t.pageSize)
	}
	return pg1, nil
}

// writePage writes one page. Page 1 keeps the output's journal-mode
// bytes; SQLite rewrites its change counter at commit.
func (t *pageTx) writePage(pgno uint32, data []byte) error {
	if pgno == 1 {
		copy(data[18:20], t.mode[:])
		t.wrotePg1 = true
	}
	if _, err := t.stmt.ExecContext(t.ctx, int64(pgno), data); err != nil {
		return fmt.Errorf("write page %d: %w", pgno, err)
	}
	t.maxPgno = max(t.maxPgno, pgno)
	return nil
}

// WriteAt lets ltxfile.Apply write through the transaction.
func (t *pageTx) WriteAt(p []byte, off int64) (int, error) {
	if err := t.writePage(uint32(off/int64(t.pageSize))+1, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// finish sets the database size to commit pages: a grown database gets
// its last page (zeros, as SQLite would have it) if no file supplied it,
// page 1's size field is updated if page 1 itself was not written, and a
// shrunk database is truncated, which must be the transaction's last
// write.
func (t *pageTx) finish(commit uint32) error {
	if commit > t.oldCommit && t.maxPgno < commit && commit != ltx.LockPgno(t.pageSize) {
		if err := t.writePage(commit, make([]byte, t.pageSize)); err != nil {
			return err
		}
	}
	if !t.wrotePg1 && commit != t.oldCommit {
		pg1, err := t.readPage1()
		if err != nil {
			return err
		}
		binary.BigEndian.PutUint32(pg1[28:], commit)
		if err := t.writePage(1, pg1); err != nil {
			return err
		}
	}
	if commit < t.oldCommit {
		if _, err := t.stmt.ExecContext(t.ctx, int64(commit)+1, nil); err != nil {
			return fmt.Errorf("truncate to %d pages: %w", commit, err)
		}
	}
	return nil
}
