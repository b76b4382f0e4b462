package litestream_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/file"
)

// followSession runs litestream.Follow in the background and tracks the
// TXID the output has reached.
type followSession struct {
	t        *testing.T
	cancel   context.CancelFunc
	done     chan error
	logs     chan string // warnings and errors the follower logged
	mu       sync.Mutex
	txid     ltx.TXID
	started  bool
	advanced chan struct{} // closed and replaced on every OnApply
}

func startFollow(t *testing.T, client litestream.ReplicaClient, out string) *followSession {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &followSession{t: t, cancel: cancel, done: make(chan error, 1), logs: make(chan string, 1000), advanced: make(chan struct{})}
	opt := litestream.FollowOptions{
		OutputPath:     out,
		Interval:       5 * time.Millisecond,
		IntegrityCheck: "full",
		Logger:         slog.New(logHandler{s.logs}),
		OnApply: func(txid ltx.TXID) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.started && txid <= s.txid {
				t.Errorf("follower went from TXID %s to %s", s.txid, txid)
			}
			s.txid, s.started = txid, true
			close(s.advanced)
			s.advanced = make(chan struct{})
		},
	}
	go func() { s.done <- litestream.Follow(ctx, client, opt) }()
	t.Cleanup(cancel)
	return s
}

// waitFor waits (bounded) until the output reached txid.
func (s *followSession) waitFor(txid ltx.TXID) {
	s.t.Helper()
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
	for {
		s.mu.Lock()
		cur, started, advanced := s.txid, s.started, s.advanced
		s.mu.Unlock()
		if started && cur >= txid {
			return
		}
		select {
		case <-advanced:
		case err := <-s.done:
			s.t.Fatalf("follow stopped at TXID %s waiting for %s: %v", cur, txid, err)
		case <-timeout.C:
			s.t.Fatalf("follower still at TXID %s after 60s, waiting for %s; logs: %s", cur, txid, s.drainLogs())
		}
	}
}

// stop cancels the follower and expects a clean exit.
func (s *followSession) stop() ltx.TXID {
	s.t.Helper()
	s.cancel()
	if err := <-s.done; err != nil {
		s.t.Fatalf("follow returned %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.txid
}

func (s *followSession) drainLogs() string {
	var a []string
	for {
		select {
		case l := <-s.logs:
			a = append(a, l)
		default:
			return strings.Join(a, "\n")
		}
	}
}

// waitLog waits (bounded) for a logged warning or error containing substr.
func (s *followSession) waitLog(substr string) string {
	s.t.Helper()
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case l := <-s.logs:
			if strings.Contains(l, substr) {
				return l
			}
		case err := <-s.done:
			s.t.Fatalf("follow stopped waiting for a %q log: %v", substr, err)
		case <-timeout.C:
			s.t.Fatalf("no %q log within 60s", substr)
		}
	}
}

// logHandler sends warnings and errors, with their attributes, to ch.
type logHandler struct{ ch chan string }

func (h logHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h logHandler) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool { msg += " " + a.String(); return true })
	select {
	case h.ch <- msg:
	default:
	}
	return nil
}
func (h logHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h logHandler) WithGroup(string) slog.Handler      { return h }

// reader is an application reading the follower's output on its own
// connection, over and over, while the follower applies files.
type reader struct {
	stopCh chan struct{}
	done   chan error
	checks atomic.Int64
}

// startReader opens out (which must exist) and runs check in a read
// transaction until stopped; the first failure ends it.
func startReader(t *testing.T, out string, check func(tx *sql.Tx) error) *reader {
	t.Helper()
	db, err := sql.Open("sqlite", out+"?_pragma=busy_timeout(30000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	r := &reader{stopCh: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		defer db.Close()
		for {
			select {
			case <-r.stopCh:
				r.done <- nil
				return
			default:
			}
			tx, err := db.Begin()
			if err != nil {
				r.done <- err
				return
			}
			err = check(tx)
			tx.Rollback()
			if err != nil {
				r.done <- err
				return
			}
			r.checks.Add(1)
		}
	}()
	return r
}

// waitChecks waits (bounded) until the reader completed n checks.
func (r *reader) waitChecks(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for r.checks.Load() < n {
		select {
		case err := <-r.done:
			t.Fatalf("reader stopped: %v", err)
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("reader made %d checks in 60s, want %d", r.checks.Load(), n)
		}
	}
}

func (r *reader) stop(t *testing.T) {
	t.Helper()
	close(r.stopCh)
	if err := <-r.done; err != nil {
		t.Fatalf("reader: %v", err)
	}
}

func integrityCheck(tx *sql.Tx) error {
	var s string
	if err := tx.QueryRow("PRAGMA integrity_check").Scan(&s); err != nil {
		return fmt.Errorf("integrity_check: %w", err)
	}
	if s != "ok" {
		return fmt.Errorf("integrity_check: %s", s)
	}
	return nil
}

// ledgerCheck asserts integrity, a row count that never decreases, and
// whole batches only (each transaction inserts batchSize rows).
func ledgerCheck(batchSize int) func(tx *sql.Tx) error {
	var last int
	return func(tx *sql.Tx) error {
		if err := integrityCheck(tx); err != nil {
			return err
		}
		var n, maxBatch int
		if err := tx.QueryRow("SELECT COUNT(*), COALESCE(MAX(batch), 0) FROM ledger").Scan(&n, &maxBatch); err != nil {
			return err
		}
		if n < last {
			return fmt.Errorf("row count went from %d down to %d", last, n)
		}
		if n != maxBatch*batchSize {
			return fmt.Errorf("%d rows for %d batches of %d: a torn transaction", n, maxBatch, batchSize)
		}
		last = n
		return nil
	}
}

// TestFollowConvergesUnderContinuousWrites replicates a database that is
// written continuously, follows it, and has a reader check the output all
// along: integrity always ok, row count never decreasing, whole
// transactions only. At the end the output equals the primary.
func TestFollowConvergesUnderContinuousWrites(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	app := openApp(t, dbPath, 4096)
	mustExec(t, app, "CREATE TABLE ledger (seq INTEGER PRIMARY KEY, batch INTEGER NOT NULL, payload BLOB)")
	client := file.NewReplicaClient(filepath.Join(dir, "replica"))
	db := litestream.NewDB(dbPath)
	db.MonitorInterval = 5 * time.Millisecond
	db.MinCheckpointPageN = 40 // restart the WAL now and then
	r := litestream.NewReplica(db, client)
	r.SyncInterval = 5 * time.Millisecond
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	ctx := context.Background()
	if err := db.SyncAndWait(ctx); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(dir, "follower", "out.db")
	s := startFollow(t, client, out)
	s.waitFor(1)
	rd := startReader(t, out, ledgerCheck(5))

	const batches = 300
	for b := 1; b <= batches; b++ {
		tx, err := app.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			if _, err := tx.Exec("INSERT INTO ledger (batch, payload) VALUES (?, randomblob(200))", b); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if b%50 == 0 { // make sure the reader runs while writes go on
			rd.waitChecks(t, rd.checks.Load()+1)
		}
	}
	if err := db.SyncAndWait(ctx); err != nil {
		t.Fatal(err)
	}
	s.waitFor(db.Pos())
	rd.waitChecks(t, rd.checks.Load()+1)
	rd.stop(t)
	txid := s.stop()
	if got, want := contentHash(t, out), contentHash(t, dbPath); got != want {
		t.Fatal("follower output differs from the primary")
	}
	if got, err := litestream.ReadTXIDFile(out); err != nil || got != txid {
		t.Fatalf("sidecar holds %s (%v), follower reached %s", got, err, txid)
	}
	t.Logf("followed to TXID %s; the reader made %d checks", txid, rd.checks.Load())
}

// TestFollowResumeAheadOfSnapshot stops a follower that is past the
// newest snapshot and resumes it (upstream refuses this).
func TestFollowResumeAheadOfSnapshot(t *testing.T) {
	h := newHarness(t, 4096, nil)
	ctx := context.Background()
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	insert := func(n int) ltx.TXID {
		var txid ltx.TXID
		for i := 0; i < n; i++ {
			mustExec(t, h.app, "INSERT INTO t (v) VALUES (randomblob(3000))")
			txid = h.sync()
		}
		return txid
	}
	insert(3)
	snap, err := h.db.Replica.Snapshot(ctx)
	if err != nil || snap == nil {
		t.Fatalf("snapshot: %v %v", snap, err)
	}
	at := insert(4)

	out := filepath.Join(t.TempDir(), "out.db")
	s := startFollow(t, h.client, out)
	s.waitFor(at)
	if got := s.stop(); got <= snap.MaxTXID {
		t.Fatalf("follower at %s is not ahead of the snapshot %s", got, snap.MaxTXID)
	}
	if got := contentHash(t, out); got != h.states[at] {
		t.Fatalf("output at TXID %s differs from the primary", at)
	}

	at = insert(3)
	s = startFollow(t, h.client, out)
	s.waitFor(at)
	s.stop()
	if got := contentHash(t, out); got != h.states[at] {
		t.Fatalf("resumed output at TXID %s differs from the primary", at)
	}
}

// TestFollowCompactionAndRetention follows a random workload (schema
// changes, VACUUM, large blobs) while the primary compacts and applies
// level-0 retention, then, with the follower stopped, lets retention
// remove the level-0 files it needs (it must bridge from level 1) and
// finally every file that continues from it (it must apply the restore
// chain in place). A reader checks integrity throughout.
func TestFollowCompactionAndRetention(t *testing.T) {
	h := newHarness(t, 4096, func(db *litestream.DB) { db.MinCheckpointPageN = 64 })
	ctx := context.Background()
	rep := h.db.Replica
	mustExec(t, h.app, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, data BLOB)")
	mustExec(t, h.app, "CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)")
	h.sync()
	w := &workload{t: t, h: h, rng: rand.New(rand.NewPCG(11, 4096))}
	compactAndTrim := func() {
		t.Helper()
		for _, level := range []int{1, 2} {
			if _, err := rep.Compact(ctx, level); err != nil {
				t.Fatal(err)
			}
		}
		// Everything covered by level 1 is old enough an hour from now.
		if err := rep.EnforceL0Retention(ctx, time.Now().Add(time.Hour), time.Minute, true); err != nil {
			t.Fatal(err)
		}
	}
	steps := func(n int) ltx.TXID {
		for i := 0; i < n; i++ {
			w.step()
			mustExec(t, h.app, "INSERT INTO items (name) VALUES ('step')") // never an empty step
			h.sync()
		}
		return h.db.Pos()
	}

	out := filepath.Join(t.TempDir(), "out.db")
	s := startFollow(t, h.client, out)
	s.waitFor(h.db.Pos())
	rd := startReader(t, out, integrityCheck)
	for round := 0; round < 3; round++ {
		steps(4)
		compactAndTrim()
	}
	at := h.db.Pos()
	s.waitFor(at)
	rd.waitChecks(t, rd.checks.Load()+1)
	s.stop()
	if got := contentHash(t, out); got != h.states[at] {
		t.Fatalf("output at TXID %s differs from the primary", at)
	}

	// Stopped follower; its next level-0 file is compacted away.
	cur := at
	at = steps(4)
	compactAndTrim()
	if l0, err := litestream.LTXFileInfos(ctx, h.client, 0, cur+1, false); err != nil || len(l0) == 0 || l0[0].MinTXID == cur+1 {
		t.Fatalf("level 0 still continues from TXID %s: %v %v", cur, l0, err)
	}
	s = startFollow(t, h.client, out)
	s.waitFor(at)
	rd.waitChecks(t, rd.checks.Load()+1)
	s.stop()
	if got := contentHash(t, out); got != h.states[at] {
		t.Fatalf("output bridged to TXID %s differs from the primary", at)
	}

	// Stopped follower; nothing continues from it but the snapshot chain.
	cur = at
	at = steps(4)
	compactAndTrim()
	if _, err := rep.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	for level := 1; level <= litestream.MaxCompactionLevel; level++ {
		infos, err := litestream.LTXFileInfos(ctx, h.client, level, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.client.DeleteLTXFiles(ctx, infos); err != nil {
			t.Fatal(err)
		}
	}
	if l0, err := litestream.LTXFileInfos(ctx, h.client, 0, cur+1, false); err != nil || len(l0) == 0 || l0[0].MinTXID == cur+1 {
		t.Fatalf("level 0 still continues from TXID %s: %v %v", cur, l0, err)
	}
	s = startFollow(t, h.client, out)
	s.waitLog("applying the whole restore chain in place")
	s.waitFor(at)
	rd.waitChecks(t, rd.checks.Load()+1)
	rd.stop(t)
	s.stop()
	if got := contentHash(t, out); got != h.states[at] {
		t.Fatalf("output resynced to TXID %s differs from the primary", at)
	}
}

// TestFollowRejectsCorruptFile corrupts the next file in the replica: the
// follower must not apply any of it, and must continue once it is fixed.
func TestFollowRejectsCorruptFile(t *testing.T) {
	h := newHarness(t, 4096, nil)
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	mustExec(t, h.app, "INSERT INTO t (v) VALUES (randomblob(20000))")
	good := h.sync()
	out := filepath.Join(t.TempDir(), "out.db")
	s := startFollow(t, h.client, out)
	s.waitFor(good)
	s.stop()

	mustExec(t, h.app, "UPDATE t SET v = randomblob(20000)")
	next := h.sync()
	p := filepath.Join(h.client.Path(), "ltx", "0", ltx.FormatFilename(next, next))
	orig, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), orig...)
	bad[len(bad)/2] ^= 0xff
	if err := os.WriteFile(p, bad, 0o600); err != nil {
		t.Fatal(err)
	}

	s = startFollow(t, h.client, out)
	s.waitLog("poll failed")
	s.waitLog("poll failed") // a second attempt, still refused
	if got := contentHash(t, out); got != h.states[good] {
		t.Fatal("output changed although the next file is corrupt")
	}
	if txid, err := litestream.ReadTXIDFile(out); err != nil || txid != good {
		t.Fatalf("sidecar %s %v, want %s", txid, err, good)
	}
	if err := os.WriteFile(p, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	s.waitFor(next)
	s.stop()
	if got := contentHash(t, out); got != h.states[next] {
		t.Fatal("output differs from the primary after the file was repaired")
	}
}

// TestFollowRefusesUnknownState covers resume errors: an output without
// a sidecar, and a replica that no longer reaches the output's TXID.
func TestFollowRefusesUnknownState(t *testing.T) {
	h := newHarness(t, 4096, nil)
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
	txid := h.sync()
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "out.db")
	if _, err := litestream.Restore(ctx, h.client, litestream.RestoreOptions{OutputPath: out}); err != nil {
		t.Fatal(err)
	}
	err := litestream.Follow(ctx, h.client, litestream.FollowOptions{OutputPath: out})
	if err == nil || !strings.Contains(err.Error(), "-txid does not") {
		t.Fatalf("follow without sidecar: %v", err)
	}
	if err := litestream.WriteTXIDFile(litestream.OSFS, out, txid+10); err != nil {
		t.Fatal(err)
	}
	err = litestream.Follow(ctx, h.client, litestream.FollowOptions{OutputPath: out})
	if err == nil || !strings.Contains(err.Error(), "reset or replaced") {
		t.Fatalf("follow ahead of the replica: %v", err)
	}
	if err := os.WriteFile(litestream.TXIDFilePath(out), []byte("12\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := litestream.ReadTXIDFile(out); err == nil {
		t.Fatal("a short sidecar was accepted")
	}
	os.Remove(litestream.TXIDFilePath(out))
	if _, err := litestream.ReadTXIDFile(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing sidecar: %v", err)
	}
	// An empty replica: nothing to follow.
	err = litestream.Follow(ctx, file.NewReplicaClient(t.TempDir()), litestream.FollowOptions{OutputPath: filepath.Join(t.TempDir(), "x.db")})
	if !errors.Is(err, litestream.ErrNoBackup) {
		t.Fatalf("follow of an empty replica: %v", err)
	}
}

// TestFollowHelperTornWrite is not a test on its own: run as a child
// process by TestFollowRecoversFromTornWrite, it starts a transaction on
// the database in $FOLLOW_TORN_DB that overwrites every page with zeros
// through sqlite_dbpage, with a tiny page cache so the pages reach the
// file before commit (exactly how follow mode writes a large file), then
// waits to be killed.
func TestFollowHelperTornWrite(t *testing.T) {
	path := os.Getenv("FOLLOW_TORN_DB")
	if path == "" {
		t.Skip("helper process for TestFollowRecoversFromTornWrite")
	}
	db, err := sql.Open("sqlite", path+"?_pragma=cache_size(2)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	var n int
	if err := db.QueryRow("PRAGMA page_count").Scan(&n); err != nil {
		t.Fatal(err)
	}
	var pageSize int
	if err := db.QueryRow("PRAGMA page_size").Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, "BEGIN IMMEDIATE")
	for pgno := 2; pgno <= n; pgno++ {
		mustExec(t, db, "INSERT INTO sqlite_dbpage(pgno, data) VALUES (?, ?)", pgno, make([]byte, pageSize))
	}
	fmt.Println("TORN")
	select {} // killed here, mid-transaction
}

// TestFollowRecoversFromTornWrite kills a process in the middle of a
// page-writing transaction on a follower's output, after pages already
// reached the file: a reader must see the last committed state (SQLite
// rolls the hot journal back), and follow mode must resume from it.
func TestFollowRecoversFromTornWrite(t *testing.T) {
	h := newHarness(t, 4096, nil)
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	for i := 0; i < 20; i++ {
		mustExec(t, h.app, "INSERT INTO t (v) VALUES (randomblob(3000))")
	}
	at := h.sync()
	out := filepath.Join(t.TempDir(), "out.db")
	s := startFollow(t, h.client, out)
	s.waitFor(at)
	s.stop()

	cmd := exec.Command(os.Args[0], "-test.run=^TestFollowHelperTornWrite$", "-test.v")
	cmd.Env = append(os.Environ(), "FOLLOW_TORN_DB="+out)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if !waitForLine(stdout, "TORN") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("helper process did not start its transaction")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if _, err := os.Stat(out + "-journal"); err != nil {
		t.Fatalf("no hot journal after the kill: %v", err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw[4096:8192], make([]byte, 4096)) {
		t.Fatal("the killed transaction wrote nothing to the file; the test proves nothing")
	}

	if got := contentHash(t, out); got != h.states[at] {
		t.Fatal("a reader saw the torn write")
	}
	mustExec(t, h.app, "DELETE FROM t WHERE id % 2 = 0")
	mustExec(t, h.app, "VACUUM")
	at = h.sync()
	s = startFollow(t, h.client, out)
	s.waitFor(at)
	s.stop()
	if got := contentHash(t, out); got != h.states[at] {
		t.Fatal("follow did not resume correctly after the torn write")
	}
}

// waitForLine reads r until a line equal to want, or EOF.
func waitForLine(r io.Reader, want string) bool {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == want {
			go io.Copy(io.Discard, r) // keep the child from blocking on a full pipe
			return true
		}
	}
	return false
}
