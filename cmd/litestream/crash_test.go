package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/superfly/ltx"
)

// levelZeroNames lists the file names of a replica's level-0 history:
// its first file, which an empty replica keeps in the snapshot level only,
// then level 0.
func levelZeroNames(t *testing.T, replicaDir string) []string {
	t.Helper()
	var names []string
	for _, level := range []string{"9", "0"} {
		entries, err := os.ReadDir(filepath.Join(replicaDir, "ltx", level))
		if os.IsNotExist(err) {
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			min, max, err := ltx.ParseFilename(e.Name())
			if err != nil || level == "9" && (min != 1 || max != 1) {
				continue // only the replica's first file, 1-1, is history
			}
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}

// replicaHistoryPath is the path of a file levelZeroNames listed.
func replicaHistoryPath(replicaDir, name string) string {
	p := filepath.Join(replicaDir, "ltx", "0", name)
	if _, err := os.Stat(p); err != nil && name == ltx.FormatFilename(1, 1) {
		return filepath.Join(replicaDir, "ltx", "9", name)
	}
	return p
}

// replicaFiles returns the SHA-256 of every level-0 file in a replica.
func replicaFiles(t *testing.T, replicaDir string) map[string]string {
	t.Helper()
	return replicaFilesCached(t, replicaDir, nil)
}

// replicaFilesCached is replicaFiles hashing only files not in known.
func replicaFilesCached(t *testing.T, replicaDir string, known map[string]string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, name := range levelZeroNames(t, replicaDir) {
		if sum, ok := known[name]; ok {
			m[name] = sum
			continue
		}
		b, err := os.ReadFile(replicaHistoryPath(replicaDir, name))
		if err != nil {
			t.Fatal(err)
		}
		m[name] = fmt.Sprintf("%x", sha256.Sum256(b))
	}
	return m
}

// waitForNewFile waits (bounded) until the replica holds more than n
// level-0 files.
func waitForNewFile(t *testing.T, replicaDir string, n int, out fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(levelZeroNames(t, replicaDir)) <= n {
		if time.Now().After(deadline) {
			t.Fatalf("no new replica file within 30s; replicate output:\n%s", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitForNewFileOrDump is waitForNewFile for the crash loop: on a stall
// it reports the cycle, the local and replica level-0 files, the WAL size
// and the application's state when the wait began and ended (so a stalled
// replicator can be told from an application that stopped committing),
// and makes the replicate process dump its goroutines (SIGQUIT).
func waitForNewFileOrDump(t *testing.T, replicaDir, dbPath string, n int, rep, app *exec.Cmd, repOut, appOut fmt.Stringer, cycle string) {
	t.Helper()
	began := fmt.Sprintf("WAL %d bytes, application %s, replicate %s", fileSize(dbPath+"-wal"), procState(app), procState(rep))
	deadline := time.Now().Add(30 * time.Second)
	for len(levelZeroNames(t, replicaDir)) <= n {
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(levelZeroNames(t, replicaDir)) > n {
		return
	}
	ended := fmt.Sprintf("WAL %d bytes (%s; %s), application %s, replicate %s", fileSize(dbPath+"-wal"), walChain(dbPath+"-wal"), lastCopyVsWAL(dbPath), procState(app), procState(rep))
	last := func(names []string) []string { return names[max(0, len(names)-3):] }
	local, _ := os.ReadDir(filepath.Join(filepath.Dir(dbPath), "."+filepath.Base(dbPath)+"-litestream", "ltx", "0"))
	var localNames []string
	for _, e := range local {
		localNames = append(localNames, e.Name())
	}
	_ = rep.Process.Signal(syscall.SIGQUIT)
	done := make(chan struct{})
	go func() { _ = rep.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = rep.Process.Kill()
		<-done
	}
	appText := "(none)"
	if appOut != nil {
		appText = appOut.String()
	}
	t.Fatalf("%s: no new replica file within 30s (replica had %d, newest %v; local meta dir %d files, newest %v); when the wait began: %s; at the end: %s; application output: %q; replicate output and goroutines (SIGQUIT):\n%s",
		cycle, n, last(levelZeroNames(t, replicaDir)), len(localNames), last(localNames), began, ended, appText, repOut.String())
}

// walChain describes a WAL as SQLite's recovery would read it: the
// header's salts, how many frames carry those salts and a valid running
// checksum from the header on, and where the last commit frame of that
// chain ends. It tells whether a replicator that copied nothing had
// committed frames to copy.
func walChain(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 32 {
		return fmt.Sprintf("unreadable: %v", err)
	}
	be := binary.BigEndian
	bigEndian := be.Uint32(b[0:]) == 0x377f0683
	pageSize := int(be.Uint32(b[8:]))
	salt1, salt2 := be.Uint32(b[16:]), be.Uint32(b[20:])
	sum := [2]uint32{be.Uint32(b[24:]), be.Uint32(b[28:])}
	frameSize := 24 + pageSize
	frames, lastCommitEnd, breakWhy := 0, 32, "end of file"
	for off := 32; off+frameSize <= len(b); off += frameSize {
		f := b[off : off+frameSize]
		if be.Uint32(f[8:]) != salt1 || be.Uint32(f[12:]) != salt2 {
			breakWhy = fmt.Sprintf("salt mismatch at offset %d", off)
			break
		}
		sum = walSum(bigEndian, sum, f[:8])
		sum = walSum(bigEndian, sum, f[24:])
		if sum[0] != be.Uint32(f[16:]) || sum[1] != be.Uint32(f[20:]) {
			breakWhy = fmt.Sprintf("checksum mismatch at offset %d", off)
			break
		}
		frames++
		if be.Uint32(f[4:]) != 0 {
			lastCommitEnd = off + frameSize
		}
	}
	return fmt.Sprintf("page size %d, ckpt seq %d, salts %08x/%08x; %d chained frames, last commit ends at %d, chain ends: %s",
		pageSize, be.Uint32(b[12:]), salt1, salt2, frames, lastCommitEnd, breakWhy)
}

// lastCopyVsWAL compares the newest local level-0 file copied from the
// WAL's current generation with the WAL frames now at the offsets it was
// copied from. A difference means those frames were overwritten after
// the replicator copied them: it shipped a transaction that SQLite never
// made visible (a writer killed between writing its commit frame and
// publishing it in the wal-index), and its running checksum no longer
// matches the WAL, so it cannot continue.
func lastCopyVsWAL(dbPath string) string {
	wal, err := os.ReadFile(dbPath + "-wal")
	if err != nil || len(wal) < 32 {
		return fmt.Sprintf("WAL unreadable: %v", err)
	}
	be := binary.BigEndian
	salt1, salt2, pageSize := be.Uint32(wal[16:]), be.Uint32(wal[20:]), int64(be.Uint32(wal[8:]))
	dir := filepath.Join(filepath.Dir(dbPath), "."+filepath.Base(dbPath)+"-litestream", "ltx", "0")
	entries, _ := os.ReadDir(dir)
	for i := len(entries) - 1; i >= 0; i-- {
		b, err := os.ReadFile(filepath.Join(dir, entries[i].Name()))
		if err != nil {
			continue
		}
		dec := ltx.NewDecoder(bytes.NewReader(b))
		if dec.DecodeHeader() != nil {
			continue
		}
		h := dec.Header()
		if h.WALSize == 0 || h.WALSalt1 != salt1 || h.WALSalt2 != salt2 {
			continue
		}
		// The WAL's frames in the copied range, last version of each page.
		frameSize := 24 + pageSize
		now := map[uint32][]byte{}
		for off := h.WALOffset; off+frameSize <= h.WALOffset+h.WALSize && off+frameSize <= int64(len(wal)); off += frameSize {
			now[be.Uint32(wal[off:])] = wal[off+24 : off+frameSize]
		}
		differ, compared := 0, 0
		data := make([]byte, h.PageSize)
		for {
			var ph ltx.PageHeader
			if err := dec.DecodePage(&ph, data); err != nil {
				break
			}
			if frame, ok := now[ph.Pgno]; ok {
				compared++
				if !bytes.Equal(frame, data) {
					differ++
				}
			}
		}
		return fmt.Sprintf("newest copy of this WAL generation: %s (WAL offset %d..%d): %d of %d pages differ from the WAL frames now at those offsets",
			entries[i].Name(), h.WALOffset, h.WALOffset+h.WALSize, differ, compared)
	}
	return "no local level-0 file from this WAL generation"
}

// walSum is SQLite's WAL checksum.
func walSum(bigEndian bool, s [2]uint32, b []byte) [2]uint32 {
	var order binary.ByteOrder = binary.LittleEndian
	if bigEndian {
		order = binary.BigEndian
	}
	for i := 0; i+8 <= len(b); i += 8 {
		s[0] += order.Uint32(b[i:]) + s[1]
		s[1] += order.Uint32(b[i+4:]) + s[0]
	}
	return s
}

// fileSize returns a file's size, or -1.
func fileSize(path string) int64 {
	if fi, err := os.Stat(path); err == nil {
		return fi.Size()
	}
	return -1
}

// procState describes a child process from /proc: its state letter (R
// running, S sleeping, D disk wait, Z exited) and CPU ticks used.
func procState(cmd *exec.Cmd) string {
	if cmd == nil || cmd.Process == nil {
		return "not running"
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return fmt.Sprintf("pid %d: %v", cmd.Process.Pid, err)
	}
	// Fields after the parenthesised command name: state is the first,
	// utime and stime the 12th and 13th.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return fmt.Sprintf("pid %d: %q", cmd.Process.Pid, b)
	}
	return fmt.Sprintf("pid %d state %s utime %s stime %s", cmd.Process.Pid, f[0], f[11], f[12])
}

// crashCycles is 50 (the short form of the crash suite), 5 under -short,
// or $LITESTREAM_CRASH_CYCLES (the long form: 1000 or more).
func crashCycles(t *testing.T) int {
	if v := os.Getenv("LITESTREAM_CRASH_CYCLES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("LITESTREAM_CRASH_CYCLES=%q", v)
		}
		return n
	}
	if testing.Short() {
		return 5
	}
	return 50
}

// TestReplicateSurvivesSIGKILL kills, at random moments, either the
// replicate process or the application (mid-transaction: it commits
// batches of 10 rows in a tight loop) with SIGKILL, and restarts it. It
// checks: files already in the replica never change or disappear,
// level-0 TXIDs stay gap-free, every restore point holds whole batches
// with integrity ok, and the final restore equals the application's data.
func TestReplicateSurvivesSIGKILL(t *testing.T) {
	litestreamBin, testapp := buildBinaries(t)
	cycles := crashCycles(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	replicaDir := filepath.Join(dir, "replica")
	// Level-0 retention is off: the test follows every level-0 file for
	// the whole run, and the long form runs past the 5-minute default.
	cfg := writeConfig(t, dir, fmt.Sprintf(`l0-retention: 0s
dbs:
  - path: %s
    monitor-interval: 5ms
    min-checkpoint-page-count: 40
    replica:
      path: %s
      sync-interval: 5ms
`, dbPath, replicaDir))

	start := func(name string, args ...string) (*exec.Cmd, *lockedBuffer) {
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
		out := &lockedBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, out
	}
	kill := func(cmd *exec.Cmd) {
		if cmd != nil {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
		}
	}
	var app, rep *exec.Cmd
	var repOut, appOut *lockedBuffer
	defer func() { kill(app); kill(rep) }()

	rng := rand.New(rand.NewPCG(7, 7))
	seen := map[string]string{}
	appKills, repKills := 0, 0
	for cycle := 0; cycle < cycles; cycle++ {
		if app == nil {
			app, appOut = start(testapp, "ledger", "-db", dbPath)
		}
		if rep == nil {
			rep, repOut = start(litestreamBin, "replicate", "-config", cfg)
		}
		waitForNewFileOrDump(t, replicaDir, dbPath, len(seen), rep, app, repOut, appOut, fmt.Sprintf("cycle %d of %d (%d replicate, %d application kills so far)", cycle, cycles, repKills, appKills))
		time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond) // a random moment, not a synchronisation
		if rng.IntN(10) < 3 {
			kill(app)
			app = nil
			appKills++
		} else {
			kill(rep)
			rep = nil
			repKills++
		}
		now := replicaFilesCached(t, replicaDir, seen)
		for name := range seen {
			if _, ok := now[name]; !ok {
				t.Fatalf("cycle %d: replica file %s vanished after a crash", cycle, name)
			}
		}
		seen = now
		if (cycle+1)%100 == 0 {
			t.Logf("%d of %d cycles, %d level-0 files", cycle+1, cycles, len(seen))
		}
	}
	kill(app)
	app = nil

	// A clean run ships the rest; SIGTERM makes it sync and exit.
	if rep == nil {
		rep, repOut = start(litestreamBin, "replicate", "-config", cfg)
		waitForNewFileOrDump(t, replicaDir, dbPath, len(seen), rep, nil, repOut, nil, "the final clean run")
	}
	if err := rep.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := rep.Wait(); err != nil {
		t.Fatalf("replicate exit: %v\n%s", err, repOut.String())
	}
	rep = nil
	// What the application committed, as SQLite itself recovers it now that
	// no process has the database open: a commit frame written just before
	// the application was killed counts once recovery has seen it.
	want := queryInt(t, dbPath, "SELECT COALESCE(MAX(batch), 0) FROM ledger")

	// Every file seen during the run still has the content it had then.
	final := replicaFiles(t, replicaDir)
	for name, sum := range seen {
		if final[name] != sum {
			t.Fatalf("replica file %s changed after it was written", name)
		}
	}
	names := make([]string, 0, len(final))
	for name := range final {
		names = append(names, name)
	}
	sort.Strings(names)
	// One upload pass may merge several local files into one, so a file
	// covers a range of TXIDs; the ranges follow each other from TXID 1.
	next := ltx.TXID(1)
	for i, name := range names {
		minTXID, maxTXID, err := ltx.ParseFilename(name)
		if err != nil || minTXID != next || maxTXID < minTXID {
			t.Fatalf("level-0 files are not contiguous: file %d is %s, want one starting at %s", i, name, next)
		}
		next = maxTXID + 1
	}
	rows := 0
	// Ten restore points spread over the history, by the uninstrumented
	// binary: each restore is checked for whole batches and integrity.
	step := max(1, len(names)/10)
	for i := step - 1; i < len(names); i += step {
		out := filepath.Join(t.TempDir(), "r.db")
		_, maxTXID, _ := ltx.ParseFilename(names[i]) // a file's end is a restore point
		runProcess(t, litestreamBin, "restore", "-txid", maxTXID.String(), "-integrity-check", "full", "-o", out, "file://"+replicaDir)
		rows += checkWholeBatches(t, out)
	}
	latest := filepath.Join(t.TempDir(), "latest.db")
	if code, _, stderr := runCLI(t, "restore", "-o", latest, "file://"+replicaDir); code != 0 {
		t.Fatalf("restore latest: %s", stderr)
	}
	if got := queryInt(t, latest, "SELECT COALESCE(MAX(batch), 0) FROM ledger"); got != want {
		t.Fatalf("latest restore has %d batches, the application committed %d", got, want)
	}
	rows += checkWholeBatches(t, latest)
	t.Logf("%d kill cycles (%d replicate, %d application), %d level-0 files, %d batches committed, %d restored rows checked",
		cycles, repKills, appKills, len(names), want, rows)
}

// checkWholeBatches asserts the ledger holds batches 1..N complete, with
// sequence numbers 1..10N: no torn transaction, no hole.
func checkWholeBatches(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows, maxSeq, maxBatch, badBatches int
	if err := db.QueryRowContext(context.Background(), "SELECT COUNT(*), COALESCE(MAX(seq),0), COALESCE(MAX(batch),0) FROM ledger").Scan(&rows, &maxSeq, &maxBatch); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("SELECT COUNT(*) FROM (SELECT batch FROM ledger GROUP BY batch HAVING COUNT(*) != 10)").Scan(&badBatches); err != nil {
		t.Fatal(err)
	}
	if rows != maxSeq || rows != maxBatch*10 || badBatches != 0 {
		t.Fatalf("%s: %d rows, max seq %d, max batch %d, %d torn batches", path, rows, maxSeq, maxBatch, badBatches)
	}
	return rows
}
