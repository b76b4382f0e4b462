package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The stress test of issue #6 (suite 7, "many databases and concurrent
// commands"): one real `replicate` daemon with many databases, an
// application writing to each, and goroutines sending control-socket
// commands at random — sync -wait, info, list, stop/start and
// unregister/register — for a bounded time. Afterwards every database is
// restored and compared with what its application committed.

// stressSize returns the number of databases and how long the load runs:
// 20 databases for 20 s (8 for 8 s under -short), or
// $LITESTREAM_STRESS_DBS and $LITESTREAM_STRESS_DURATION.
func stressSize(t *testing.T) (int, time.Duration) {
	n, d := 20, 20*time.Second
	if testing.Short() {
		n, d = 8, 8*time.Second
	}
	if v := os.Getenv("LITESTREAM_STRESS_DBS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("LITESTREAM_STRESS_DBS=%q", v)
		}
	}
	if v := os.Getenv("LITESTREAM_STRESS_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d <= 0 {
			t.Fatalf("LITESTREAM_STRESS_DURATION=%q", v)
		}
	}
	return n, d
}

// stressDB is one database of the stress test and what the test knows
// about it.
type stressDB struct {
	path, replica string
	app           *sql.DB

	committed atomic.Int64 // last ledger seq whose transaction committed

	// life is held for a whole stop→start or unregister→register pair,
	// so the test knows each command's answer; gen is odd while one runs,
	// so a sync that overlapped it may be refused.
	life sync.Mutex
	gen  atomic.Int64
	// unregistering is held exclusively by an unregister and shared by
	// each sync -wait: a sync that reaches the daemon while an unregister
	// of the same database is in flight can run on the removed database
	// (see TestSyncRacingUnregister), so the load keeps them apart.
	unregistering sync.RWMutex

	mu     sync.Mutex
	synced []syncPoint // successful sync -wait calls
}

// syncPoint is a successful `sync -wait`: every row up to seq was
// committed before the call, so a restore at the replica_txid it
// answered must hold it.
type syncPoint struct {
	txid string
	seq  int64
}

// stressRun is the shared state of the commanders.
type stressRun struct {
	t    *testing.T
	sock string
	dbs  []*stressDB

	mu      sync.Mutex
	counts  map[string]int           // command → successful calls
	slowest map[string]time.Duration // command → longest successful call
	refused int                      // syncs refused during a stop or unregister
	// maxSyncMS is the longest sync -wait; replicaBehind counts answers
	// whose replica_txid was below txid (logged, not an error).
	maxSyncMS     int64
	replicaBehind int
	failures      []string
}

func (r *stressRun) count(op string, began time.Time) {
	r.mu.Lock()
	r.counts[op]++
	r.slowest[op] = max(r.slowest[op], time.Since(began).Round(time.Millisecond))
	r.mu.Unlock()
}

func (r *stressRun) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.failures) < 20 {
		r.failures = append(r.failures, fmt.Sprintf(format, args...))
	}
}

// stressCommandTimeout is each command's -timeout, in seconds: a
// deadline bound, far above what a command takes on a loaded machine.
const stressCommandTimeout = "120"

// stressCommanders is how many goroutines send commands at once.
const stressCommanders = 6

// cli runs a control command in-process against the daemon's socket.
func (r *stressRun) cli(args ...string) (int, string, string) {
	full := append([]string{args[0], "-socket", r.sock, "-timeout", stressCommandTimeout}, args[1:]...)
	var stdout, stderr strings.Builder
	code := run(context.Background(), full, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// expect runs a lifecycle command and checks its JSON status.
func (r *stressRun) expect(status string, args ...string) bool {
	began := time.Now()
	code, stdout, stderr := r.cli(append([]string{args[0], "-json"}, args[1:]...)...)
	var m map[string]any
	if code != 0 || json.Unmarshal([]byte(stdout), &m) != nil || m["status"] != status {
		r.fail("%s: exit %d, stdout %q, stderr %q, want status %s", strings.Join(args, " "), code, stdout, stderr, status)
		return false
	}
	r.count(args[0], began)
	return true
}

func TestReplicateStressManyDatabases(t *testing.T) {
	n, duration := stressSize(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "ls.sock")
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "socket:\n  enabled: true\n  path: %s\ndbs:\n", sock)
	dbs := make([]*stressDB, n)
	for i := range dbs {
		db := &stressDB{
			path:    filepath.Join(dir, fmt.Sprintf("db%03d.db", i)),
			replica: filepath.Join(dir, fmt.Sprintf("replica%03d", i)),
		}
		db.app = openStressApp(t, db.path)
		dbs[i] = db
		fmt.Fprintf(&cfg, "  - path: %s\n    monitor-interval: 100ms\n    min-checkpoint-page-count: 40\n    replica:\n      path: %s\n      sync-interval: 100ms\n", db.path, db.replica)
	}
	d := startDaemon(t, writeConfig(t, dir, cfg.String()))
	d.waitLog(t, `msg="control socket (listening)"`)

	r := &stressRun{t: t, sock: sock, dbs: dbs, counts: map[string]int{}, slowest: map[string]time.Duration{}}
	stopWriters := make(chan struct{})
	var writers sync.WaitGroup
	for i, db := range dbs {
		writers.Add(1)
		go func() { defer writers.Done(); r.write(db, uint64(i), stopWriters) }()
	}
	deadline := time.Now().Add(duration)
	var commanders sync.WaitGroup
	for i := range stressCommanders {
		commanders.Add(1)
		go func() { defer commanders.Done(); r.command(uint64(100+i), deadline) }()
	}
	commanders.Wait()
	close(stopWriters)
	writers.Wait()
	if len(r.failures) > 0 {
		saveStressLog(t, d.out.String())
		t.Fatalf("%d unexpected results during the load, the first:\n%s\ndaemon output:\n%s", len(r.failures), strings.Join(r.failures, "\n"), tail(d.out.String(), 4000))
	}

	// Every database is registered and running again: a last sync -wait
	// of each must succeed and the daemon must list them all.
	want := make([]appState, n)
	for i, db := range dbs {
		want[i] = readAppState(t, db.app)
		if want[i].maxSeq != db.committed.Load() {
			t.Fatalf("%s: the application holds seq %d, its writer committed %d", db.path, want[i].maxSeq, db.committed.Load())
		}
		code, stdout, stderr := r.cli("sync", "-wait", "-json", db.path)
		if code != 0 {
			t.Fatalf("final sync -wait %s: exit %d %s %s\n%s", db.path, code, stdout, stderr, tail(d.out.String(), 4000))
		}
	}
	if list := listJSON(t, sock); len(list) != n {
		t.Fatalf("list after the load has %d databases, want %d", len(list), n)
	}
	d.stop(t)
	saveStressLog(t, d.out.String())
	checkDaemonClean(t, d.out.String())
	for _, db := range dbs {
		db.app.Close()
	}

	rows := 0
	for i, db := range dbs {
		rows += checkStressRestore(t, db, want[i])
	}
	t.Logf("%d databases for %s: %d rows restored and checked; commands: %v; slowest: %v; %d syncs refused during a stop/unregister; longest sync -wait (daemon side) %d ms; %d answers with replica_txid < txid",
		n, duration, rows, r.counts, r.slowest, r.refused, r.maxSyncMS, r.replicaBehind)
}

// openStressApp opens the application's connection and creates the
// ledger: rows numbered by seq, and one state row holding the last seq,
// updated in the same transaction (a restore that disagrees is torn).
func openStressApp(t *testing.T, path string) *sql.DB {
	t.Helper()
	db := openApp(t, path)
	mustExec(t, db, "CREATE TABLE ledger (seq INTEGER PRIMARY KEY, txn INTEGER NOT NULL, payload BLOB NOT NULL)")
	mustExec(t, db, "CREATE TABLE state (id INTEGER PRIMARY KEY CHECK (id = 1), last_seq INTEGER NOT NULL)")
	mustExec(t, db, "INSERT INTO state VALUES (1, 0)")
	return db
}

// write commits transactions of 1–8 ledger rows until stop is closed.
// The pause between commits only paces the load.
func (r *stressRun) write(db *stressDB, seed uint64, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(seed, 1))
	seq := int64(0)
	for txn := int64(1); ; txn++ {
		select {
		case <-stop:
			return
		case <-time.After(time.Duration(20+rng.IntN(80)) * time.Millisecond):
		}
		tx, err := db.app.Begin()
		if err != nil {
			r.fail("%s: begin: %v", db.path, err)
			return
		}
		rows := 1 + rng.IntN(8)
		for range rows {
			seq++
			// Cheap to make (the race detector slows byte loops), and
			// different in every row.
			payload := fmt.Appendf(nil, "%0*d", 50+rng.IntN(400), rng.Uint64())
			if _, err := tx.Exec("INSERT INTO ledger VALUES (?, ?, ?)", seq, txn, payload); err != nil {
				tx.Rollback()
				r.fail("%s: insert: %v", db.path, err)
				return
			}
		}
		if _, err := tx.Exec("UPDATE state SET last_seq = ?", seq); err != nil {
			tx.Rollback()
			r.fail("%s: update state: %v", db.path, err)
			return
		}
		if err := tx.Commit(); err != nil {
			r.fail("%s: commit: %v", db.path, err)
			return
		}
		db.committed.Store(seq)
	}
}

// command sends random control commands until the deadline.
func (r *stressRun) command(seed uint64, deadline time.Time) {
	rng := rand.New(rand.NewPCG(seed, 2))
	for time.Now().Before(deadline) {
		db := r.dbs[rng.IntN(len(r.dbs))]
		switch p := rng.IntN(100); {
		case p < 50:
			r.syncWait(db)
		case p < 60:
			r.info()
		case p < 70:
			r.list()
		case p < 85:
			r.lifecycle(db, rng, "stop", "stopped", "start", "started")
		default:
			r.lifecycle(db, rng, "unregister", "unregistered", "register", "registered")
		}
	}
}

// syncWait runs `sync -wait` and records what it guarantees. It may be
// refused only while a stop or unregister of the database overlapped it.
func (r *stressRun) syncWait(db *stressDB) {
	db.unregistering.RLock()
	genBefore := db.gen.Load()
	seq := db.committed.Load()
	began := time.Now()
	code, stdout, stderr := r.cli("sync", "-wait", "-json", db.path)
	genAfter := db.gen.Load()
	db.unregistering.RUnlock()
	if code != 0 {
		transition := genBefore%2 == 1 || genAfter != genBefore
		known := strings.Contains(stderr, "database is stopped") || strings.Contains(stderr, "database not found")
		if transition && known {
			r.mu.Lock()
			r.refused++
			r.mu.Unlock()
			return
		}
		r.fail("sync -wait %s: exit %d (overlapping a stop/unregister: %v): %s", db.path, code, transition, stderr)
		return
	}
	// txid is the local position read after the wait, so a sync of the
	// monitor may have moved it past replica_txid: only replica_txid is
	// a promise about the replica.
	var resp struct {
		TXID        string `json:"txid"`
		ReplicaTXID string `json:"replica_txid"`
		DurationMS  int64  `json:"duration_ms"`
	}
	if err := json.Unmarshal([]byte(stdout), &resp); err != nil || !hexTXID.MatchString(resp.TXID) || !hexTXID.MatchString(resp.ReplicaTXID) {
		r.fail("sync -wait %s: output %q", db.path, stdout)
		return
	}
	r.count("sync", began)
	r.mu.Lock()
	r.maxSyncMS = max(r.maxSyncMS, resp.DurationMS)
	if resp.ReplicaTXID < resp.TXID {
		r.replicaBehind++
	}
	r.mu.Unlock()
	db.mu.Lock()
	db.synced = append(db.synced, syncPoint{txid: resp.ReplicaTXID, seq: seq})
	db.mu.Unlock()
}

func (r *stressRun) info() {
	began := time.Now()
	code, stdout, stderr := r.cli("info", "-json")
	var m map[string]any
	if code != 0 || json.Unmarshal([]byte(stdout), &m) != nil {
		r.fail("info: exit %d %q %q", code, stdout, stderr)
		return
	}
	if c, _ := m["database_count"].(float64); c < float64(len(r.dbs)-stressCommanders) || c > float64(len(r.dbs)) {
		// At most one database per commander is unregistered at a time.
		r.fail("info: database_count %v of %d", m["database_count"], len(r.dbs))
		return
	}
	r.count("info", began)
}

func (r *stressRun) list() {
	began := time.Now()
	code, stdout, stderr := r.cli("list", "-json")
	var resp struct {
		Databases []struct {
			Path   string `json:"path"`
			Status string `json:"status"`
		} `json:"databases"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &resp) != nil {
		r.fail("list: exit %d %q %q", code, stdout, stderr)
		return
	}
	seen := map[string]bool{}
	for _, db := range resp.Databases {
		if seen[db.Path] || (db.Status != "replicating" && db.Status != "stopped") {
			r.fail("list: duplicate or bad entry %+v in %s", db, stdout)
			return
		}
		seen[db.Path] = true
	}
	r.count("list", began)
}

// lifecycle takes a database down with one command and back up with the
// other, after a short random pause during which the application keeps
// writing. A database already in a transition is left to its owner.
func (r *stressRun) lifecycle(db *stressDB, rng *rand.Rand, down, downStatus, up, upStatus string) {
	if !db.life.TryLock() {
		return
	}
	defer db.life.Unlock()
	db.gen.Add(1)
	defer db.gen.Add(1)
	if down == "unregister" {
		db.unregistering.Lock()
	}
	ok := r.expect(downStatus, down, db.path)
	if down == "unregister" {
		db.unregistering.Unlock()
	}
	if !ok {
		return
	}
	time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond) // how long it stays down
	if up == "register" {
		r.expect(upStatus, up, "-replica", "file://"+db.replica, db.path)
	} else {
		r.expect(upStatus, up, db.path)
	}
}

// appState is the application's ledger at its final commit.
type appState struct {
	rows, maxSeq int64
	sum          string
}

func readAppState(t *testing.T, db *sql.DB) appState {
	t.Helper()
	var s appState
	rows, err := db.Query("SELECT seq, txn, payload FROM ledger ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	h := sha256.New()
	for rows.Next() {
		var seq, txn int64
		var payload []byte
		if err := rows.Scan(&seq, &txn, &payload); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%d %d %x\n", seq, txn, payload)
		s.rows, s.maxSeq = s.rows+1, seq
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var last int64
	if err := db.QueryRow("SELECT last_seq FROM state").Scan(&last); err != nil {
		t.Fatal(err)
	}
	if last != s.maxSeq || s.rows != s.maxSeq {
		t.Fatalf("inconsistent ledger: %d rows, max seq %d, state says %d", s.rows, s.maxSeq, last)
	}
	s.sum = fmt.Sprintf("%x", h.Sum(nil))
	return s
}

// checkStressRestore restores the latest state of a database and the
// state at one of its successful sync -wait calls, and returns the
// number of rows checked.
func checkStressRestore(t *testing.T, db *stressDB, want appState) int {
	t.Helper()
	latest := filepath.Join(t.TempDir(), "latest.db")
	if code, _, stderr := runCLI(t, "restore", "-integrity-check", "full", "-o", latest, "file://"+db.replica); code != 0 {
		t.Fatalf("restore %s: %s", db.replica, stderr)
	}
	integrityOK(t, latest)
	got := readRestored(t, latest)
	if got != want {
		t.Fatalf("%s: restored %d rows (max seq %d, sum %.12s), the application committed %d (max seq %d, sum %.12s)",
			db.path, got.rows, got.maxSeq, got.sum, want.rows, want.maxSeq, want.sum)
	}
	checked := int(got.rows)
	db.mu.Lock()
	points := append([]syncPoint(nil), db.synced...)
	db.mu.Unlock()
	if len(points) == 0 {
		return checked
	}
	// A random earlier point: the rows committed before that sync -wait.
	p := points[rand.IntN(len(points))]
	at := filepath.Join(t.TempDir(), "at.db")
	if code, _, stderr := runCLI(t, "restore", "-txid", p.txid, "-o", at, "file://"+db.replica); code != 0 {
		t.Fatalf("restore %s at TXID %s (a sync -wait answer): %s", db.replica, p.txid, stderr)
	}
	integrityOK(t, at)
	s := readRestored(t, at)
	if s.maxSeq < p.seq {
		t.Fatalf("%s at TXID %s holds seq 1..%d, but seq %d was committed before the sync -wait that answered this TXID", db.path, p.txid, s.maxSeq, p.seq)
	}
	return checked + int(s.rows)
}

func readRestored(t *testing.T, path string) appState {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	return readAppState(t, db)
}

// checkDaemonClean fails on a panic or a race report in the daemon's
// output (the child is the race-instrumented test binary under -race).
func checkDaemonClean(t *testing.T, out string) {
	t.Helper()
	for _, bad := range []string{"WARNING: DATA RACE", "panic:", "fatal error:"} {
		if i := strings.Index(out, bad); i >= 0 {
			t.Fatalf("daemon output has %q:\n%s", bad, tail(out[i:], 6000))
		}
	}
}

// tail returns the end of s, at most n bytes.
func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// saveStressLog writes the daemon's output to $LITESTREAM_STRESS_LOG,
// when set, for a look at a failure.
func saveStressLog(t *testing.T, out string) {
	if p := os.Getenv("LITESTREAM_STRESS_LOG"); p != "" {
		if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// daemonOpenFiles lists the files under prefix that process pid has open.
func daemonOpenFiles(t *testing.T, pid int, prefix string) []string {
	t.Helper()
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(fdDir)
	if err != nil {
		t.Skipf("cannot list open files (%v): needs /proc", err)
	}
	var open []string
	for _, e := range entries {
		if link, err := os.Readlink(filepath.Join(fdDir, e.Name())); err == nil && strings.HasPrefix(link, prefix) {
			open = append(open, link)
		}
	}
	return open
}

// bugDaemon starts a daemon with the control socket and one database that
// an application keeps writing to until the test ends.
func bugDaemon(t *testing.T) (d *daemon, sock, dbPath, replicaURL string) {
	t.Helper()
	dir := t.TempDir()
	sock, dbPath = filepath.Join(dir, "ls.sock"), filepath.Join(dir, "app.db")
	replicaURL = "file://" + filepath.Join(dir, "replica")
	app := openStressApp(t, dbPath)
	cfg := writeConfig(t, dir, fmt.Sprintf("socket:\n  enabled: true\n  path: %s\ndbs:\n  - path: %s\n    monitor-interval: 10ms\n    replica:\n      url: %s\n      sync-interval: 10ms\n", sock, dbPath, replicaURL))
	d = startDaemon(t, cfg)
	d.waitLog(t, `msg="control socket (listening)"`)
	r := &stressRun{t: t, sock: sock, counts: map[string]int{}, slowest: map[string]time.Duration{}}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); r.write(&stressDB{path: dbPath, app: app}, 1, stop) }()
	t.Cleanup(func() { close(stop); <-done })
	return d, sock, dbPath, replicaURL
}

// TestSyncRacingUnregister: a `sync` that finds its database just
// before an `unregister` removes it must not run on the removed database
// (fixed: dbState.removed, checked under the state lock).
//
// server/handlers.go handleSync looks the database up, then waits for its
// dbState read lock; handleUnregister holds the write lock across
// Store.RemoveDB and then forgets the state, leaving stopped false. The
// waiting sync then calls DB.SyncAndWait on the closed DB, and DB.Sync on
// a DB that is not open re-initialises it (db.go syncLocked → init, meant
// for `replicate -once`) without the meta-directory lock: it opens SQLite
// connections and a read transaction that nothing closes (the daemon keeps
// the database open after unregister, so checkpoints are held back for
// good), writes level-0 files into the meta directory and uploads them
// (Replica.WaitFor → Replica.Sync retakes the lease with the persisted
// owner id) while a database registered again at the same path does the
// same — two writers of one TXID. Seen in the stress test as a sync failing
// with "rename …/ltx/0/…ltx.tmp: no such file or directory".
func TestSyncRacingUnregister(t *testing.T) {
	d, sock, dbPath, replicaURL := bugDaemon(t)
	r := &stressRun{t: t, sock: sock, counts: map[string]int{}, slowest: map[string]time.Duration{}}
	deadline := time.Now().Add(60 * time.Second)
	for round := 1; round <= 40 && time.Now().Before(deadline); round++ {
		stop := make(chan struct{})
		var syncers sync.WaitGroup
		var odd atomic.Value
		for range 4 {
			syncers.Add(1)
			go func() {
				defer syncers.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					code, _, stderr := r.cli("sync", "-wait", dbPath)
					if code != 0 && !strings.Contains(stderr, "database not found") {
						odd.Store(stderr)
					}
				}
			}()
		}
		time.Sleep(time.Duration(20+rand.IntN(80)) * time.Millisecond) // let syncs pile up; not a synchronisation
		ok := r.expect("unregistered", "unregister", dbPath)
		close(stop)
		syncers.Wait()
		if !ok {
			t.Fatalf("round %d: %v", round, r.failures)
		}
		if open := daemonOpenFiles(t, d.cmd.Process.Pid, dbPath); len(open) > 0 {
			t.Fatalf("round %d: after unregister the daemon still has %v open: a sync ran on the removed database (a sync error seen: %v)", round, open, odd.Load())
		}
		if e := odd.Load(); e != nil {
			t.Fatalf("round %d: a sync overlapping the unregister failed with %v", round, e)
		}
		if !r.expect("registered", "register", "-replica", replicaURL, dbPath) {
			t.Fatalf("round %d: %v", round, r.failures)
		}
	}
	t.Log("40 rounds of syncs racing an unregister: none ran on the removed database")
}

// TestStartRacingUnregister: a `start` of a stopped database that finds
// it just before an `unregister` removes it must not reopen it (fixed:
// dbState.removed, checked under the state lock). Before the fix:
//
// server/handlers.go handleStart looks the database up, then waits for its
// dbState lock; handleUnregister holds that lock across Store.RemoveDB and
// forgets the state with stopped still true, so the waiting start calls
// DB.Open on a database no longer in the store: it replicates on, unseen by
// `list`, is never closed at shutdown (no final sync), and holds the
// meta-directory lock, so registering the path again fails.
func TestStartRacingUnregister(t *testing.T) {
	d, sock, dbPath, replicaURL := bugDaemon(t)
	r := &stressRun{t: t, sock: sock, counts: map[string]int{}, slowest: map[string]time.Duration{}}
	// The window is narrow (before the fix: often 100+ rounds); the
	// default run is bounded for the test command, LITESTREAM_RACE_ROUNDS
	// runs longer.
	rounds, limit := 150, 30*time.Second
	if n, err := strconv.Atoi(os.Getenv("LITESTREAM_RACE_ROUNDS")); err == nil && n > 0 {
		rounds, limit = n, time.Hour
	}
	deadline := time.Now().Add(limit)
	round := 1
	for ; round <= rounds && time.Now().Before(deadline); round++ {
		if !r.expect("stopped", "stop", dbPath) {
			t.Fatalf("round %d: %v", round, r.failures)
		}
		// Several starts against one unregister widen the window.
		var wg sync.WaitGroup
		var startOut [3]string
		begin := make(chan struct{})
		for i := range startOut {
			wg.Add(1)
			go func() { defer wg.Done(); <-begin; _, startOut[i], _ = r.cli("start", "-json", dbPath) }()
		}
		wg.Add(1)
		go func() { defer wg.Done(); <-begin; r.expect("unregistered", "unregister", dbPath) }()
		close(begin)
		wg.Wait()
		if len(r.failures) > 0 {
			t.Fatalf("round %d: %v", round, r.failures)
		}
		if open := daemonOpenFiles(t, d.cmd.Process.Pid, dbPath); len(open) > 0 {
			t.Fatalf("round %d: after unregister the daemon still has %v open; start answered %q", round, open, startOut)
		}
		if !r.expect("registered", "register", "-replica", replicaURL, dbPath) {
			t.Fatalf("round %d: register again after the unregister: %v", round, r.failures)
		}
	}
	t.Logf("%d rounds of three starts racing an unregister: the removed database was never reopened", round-1)
}

// TestPhantomTransactionFromKilledWriter: a transaction that a killed
// writer left unpublished in the WAL must not stop replication.
//
// Found by the crash suite's long form (every run stalled within 82–239
// kill cycles). An application killed after writing its commit frame to
// the WAL but before publishing it in the wal-index leaves a valid,
// checksummed transaction past the wal-index's last frame. SQLite ignores
// it (while another connection keeps the wal-index, nothing runs recovery)
// and its next transaction overwrites those frames. A sync cannot tell
// such a transaction from a published one without the write lock, so it
// may ship it (a restore to that TXID shows it, as SQLite's own recovery
// would have, had it run). Before the fix, once SQLite overwrote those
// frames, every later scan stopped at its first frame and nothing was
// copied again: no error, no checkpoint, and `sync -wait` answered OK for
// commits that never reached the replica. Now the broken chain makes the
// engine check, under the write lock, that the frame ending at its
// position still carries the checksum it recorded (db.go
// checkCopiedFrames); if not, or if the frames after it still do not
// continue the chain, the next file is a full image of the published
// state.
//
// The test makes the killed writer's leftovers itself: one forged frame
// (a copy of the last page, with the commit flag and a valid checksum)
// appended after the last published frame, as a writer killed at that
// moment leaves it.
func TestPhantomTransactionFromKilledWriter(t *testing.T) {
	dir := t.TempDir()
	sock, dbPath, replicaDir := filepath.Join(dir, "ls.sock"), filepath.Join(dir, "app.db"), filepath.Join(dir, "replica")
	app := openStressApp(t, dbPath)
	mustExec(t, app, "PRAGMA wal_autocheckpoint = 0")
	commit := func(seq int) {
		mustExec(t, app, "INSERT INTO ledger VALUES (?, ?, ?)", seq, seq, fmt.Appendf(nil, "row %d", seq))
		mustExec(t, app, "UPDATE state SET last_seq = ?", seq)
	}
	for seq := 1; seq <= 5; seq++ {
		commit(seq)
	}
	cfg := writeConfig(t, dir, fmt.Sprintf("socket:\n  enabled: true\n  path: %s\ndbs:\n  - path: %s\n    monitor-interval: 10ms\n    min-checkpoint-page-count: 100000\n    checkpoint-interval: 1h\n    replica:\n      path: %s\n      sync-interval: 10ms\n", sock, dbPath, replicaDir))
	d := startDaemon(t, cfg)
	d.waitLog(t, `msg="control socket (listening)"`)
	controlJSON(t, sock, "sync", "-wait", dbPath)
	// A reader of the application pins the WAL, as the application's own
	// readers do: SQLite then appends after the last published frame
	// instead of starting a new WAL generation.
	for seq := 6; seq <= 8; seq++ {
		commit(seq)
	}
	reader, err := sql.Open("sqlite", dbPath+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	rtx, err := reader.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer rtx.Rollback()
	var n int
	if err := rtx.QueryRow("SELECT COUNT(*) FROM ledger").Scan(&n); err != nil {
		t.Fatal(err)
	}
	controlJSON(t, sock, "sync", "-wait", dbPath)
	before := len(levelZeroNames(t, replicaDir))

	forgeUnpublishedCommit(t, dbPath+"-wal")
	// Bounded look: does the replicator ship what SQLite never published?
	shipped := false
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end) && !shipped; time.Sleep(10 * time.Millisecond) {
		shipped = len(levelZeroNames(t, replicaDir)) > before
	}

	commit(9) // SQLite writes this over the forged frame
	code, stdout, stderr := runCLI(t, "sync", "-socket", sock, "-wait", "-timeout", "10", dbPath)
	want := readAppState(t, app)
	latest := filepath.Join(t.TempDir(), "latest.db")
	if c, _, e := runCLI(t, "restore", "-o", latest, "file://"+replicaDir); c != 0 {
		t.Fatalf("restore: %s", e)
	}
	got := readRestored(t, latest)
	t.Logf("unpublished transaction shipped: %v (a restore to its TXID shows it; the next file is a full image)", shipped)
	if code != 0 || got != want {
		t.Fatalf("unpublished transaction shipped: %v; after the next commit sync -wait exited %d (%s%s); the latest restore has seq 1..%d, the application committed 1..%d; replicate output:\n%s",
			shipped, code, strings.TrimSpace(stdout), strings.TrimSpace(stderr), got.maxSeq, want.maxSeq, tail(d.out.String(), 3000))
	}
}

// forgeUnpublishedCommit appends to a WAL, after its last valid commit
// frame, one more valid commit frame (a copy of the last frame's page) —
// what a writer killed before updating the wal-index leaves behind.
func forgeUnpublishedCommit(t *testing.T, walPath string) {
	t.Helper()
	b, err := os.ReadFile(walPath)
	if err != nil {
		t.Fatal(err)
	}
	be := binary.BigEndian
	bigEndian := be.Uint32(b[0:]) == 0x377f0683
	frameSize := 24 + int(be.Uint32(b[8:]))
	salt1, salt2 := be.Uint32(b[16:]), be.Uint32(b[20:])
	sum := [2]uint32{be.Uint32(b[24:]), be.Uint32(b[28:])}
	end, endSum, last := 32, sum, -1
	for off := 32; off+frameSize <= len(b); off += frameSize {
		f := b[off : off+frameSize]
		if be.Uint32(f[8:]) != salt1 || be.Uint32(f[12:]) != salt2 {
			break
		}
		sum = walSum(bigEndian, sum, f[:8])
		sum = walSum(bigEndian, sum, f[24:])
		if sum[0] != be.Uint32(f[16:]) || sum[1] != be.Uint32(f[20:]) {
			break
		}
		if be.Uint32(f[4:]) != 0 {
			end, endSum, last = off+frameSize, sum, off
		}
	}
	if last < 0 {
		t.Fatal("no committed frame in the WAL to copy")
	}
	frame := append([]byte(nil), b[last:last+frameSize]...) // pgno and commit size as the last commit
	s := walSum(bigEndian, endSum, frame[:8])
	s = walSum(bigEndian, s, frame[24:])
	be.PutUint32(frame[16:], s[0])
	be.PutUint32(frame[20:], s[1])
	f, err := os.OpenFile(walPath, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(frame, int64(end)); err != nil {
		t.Fatal(err)
	}
}
