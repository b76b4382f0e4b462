package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// removeDB deletes a database file and SQLite's files beside it.
func removeDB(t *testing.T, path string) {
	t.Helper()
	for _, s := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(path + s); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
}

// waitStopped waits for the log line of a database the watcher stopped.
func waitStopped(t *testing.T, logs *lockedBuffer, path string) {
	t.Helper()
	waitFor(t, "stop of "+path, logs, func() (bool, string) {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "stopped replicating removed database") && strings.Contains(line, "db="+path) {
				return true, ""
			}
		}
		return false, "no log line"
	})
}

// restoreURLDump restores a replica directory and returns its table.
func restoreURLDump(t *testing.T, replicaDir string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "r.db")
	if code, _, stderr := runCLI(t, "restore", "-o", out, "file://"+replicaDir); code != 0 {
		t.Fatalf("restore %s: %s", replicaDir, stderr)
	}
	return dumpTable(t, out)
}

// TestReplicateDirWatch creates, writes, renames and deletes databases and
// directories under a watched dir while replicate runs, and checks each
// database's replica restores to its content.
func TestReplicateDirWatch(t *testing.T) {
	dir := t.TempDir()
	dbDir := filepath.Join(dir, "data")
	replicaDir := filepath.Join(dir, "replica")
	a := filepath.Join(dbDir, "a.db")
	createDB(t, a, 2)
	cfg := writeConfig(t, dir, fmt.Sprintf(`dbs:
  - dir: %s
    pattern: "*.db"
    recursive: true
    watch: true
    monitor-interval: 20ms
    replica:
      path: %s
      sync-interval: 20ms
`, dbDir, replicaDir))
	stop, logs := startReplicate(t, cfg)
	waitRestored(t, cfg, a, dumpTable(t, a), logs)

	// New databases: beside a.db, in a new directory, in a new tree made
	// at once (its directories appear faster than watches can be added).
	b := filepath.Join(dbDir, "b.db")
	c := filepath.Join(dbDir, "sub", "c.db")
	d := filepath.Join(dbDir, "x", "y", "z", "d.db")
	for i, p := range []string{b, c, d} {
		createDB(t, p, i+1)
	}
	// Not databases: ignored without harm.
	os.WriteFile(filepath.Join(dbDir, "notes.db"), []byte("plain text that only looks like a database by name"), 0o644)
	os.WriteFile(filepath.Join(dbDir, "sub", "c.db-journal"), nil, 0o644)
	for _, p := range []string{b, c, d} {
		waitRestored(t, cfg, p, dumpTable(t, p), logs)
	}

	// Writes to a watched database replicate as usual.
	app := openApp(t, a)
	mustExec(t, app, "INSERT INTO t (v) VALUES ('written while watched')")
	waitRestored(t, cfg, a, dumpTable(t, a), logs)

	// A database an application creates in WAL mode and keeps writing to.
	w := filepath.Join(dbDir, "sub", "wal.db")
	wApp := openApp(t, w)
	mustExec(t, wApp, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
	for i := range 3 {
		mustExec(t, wApp, "INSERT INTO t (v) VALUES (?)", fmt.Sprint("wal-", i))
		waitRestored(t, cfg, w, dumpTable(t, w), logs)
	}

	// Rename: b.db stops (its replica keeps its content), b2.db starts.
	bContent := dumpTable(t, b)
	b2 := filepath.Join(dbDir, "b2.db")
	if err := os.Rename(b, b2); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, logs, b)
	waitRestored(t, cfg, b2, bContent, logs)
	if got := restoreURLDump(t, filepath.Join(replicaDir, "b.db")); got != bContent {
		t.Fatalf("replica of the renamed b.db: %q, want %q", got, bContent)
	}

	// Delete: c.db stops; a new c.db at the same path replicates its own
	// content (continuing the old replica with a full image).
	removeDB(t, c)
	waitStopped(t, logs, c)
	createDB(t, c, 7)
	waitRestored(t, cfg, c, dumpTable(t, c), logs)

	// Rename a directory: d.db moves from x/ to x2/.
	dContent := dumpTable(t, d)
	if err := os.Rename(filepath.Join(dbDir, "x"), filepath.Join(dbDir, "x2")); err != nil {
		t.Fatal(err)
	}
	d2 := filepath.Join(dbDir, "x2", "y", "z", "d.db")
	waitStopped(t, logs, d)
	waitRestored(t, cfg, d2, dContent, logs)

	// Remove a whole subdirectory: its database stops. The replicating
	// database may add files to it while it goes, so retry until it is gone.
	waitFor(t, "removal of x2", logs, func() (bool, string) {
		err := os.RemoveAll(filepath.Join(dbDir, "x2"))
		return err == nil, fmt.Sprint(err)
	})
	waitStopped(t, logs, d2)

	// A database moved in from outside the directory starts.
	outside := filepath.Join(dir, "elsewhere.db")
	createDB(t, outside, 5)
	e := filepath.Join(dbDir, "sub", "e.db")
	if err := os.Rename(outside, e); err != nil {
		t.Fatal(err)
	}
	waitRestored(t, cfg, e, dumpTable(t, e), logs)

	// More writes after all that, then a clean shutdown ships them.
	mustExec(t, app, "INSERT INTO t (v) VALUES ('last write')")
	if code := stop(); code != 0 {
		t.Fatalf("replicate exited %d:\n%s", code, logs.String())
	}
	for _, p := range []string{a, b2, c, e, w} {
		if got, stderr := restoreDump(t, cfg, p); got != dumpTable(t, p) {
			t.Fatalf("after shutdown, %s restores to %q, want %q (%s)", p, got, dumpTable(t, p), stderr)
		}
	}
	if os.Getenv("WATCH_DEBUG") != "" {
		t.Log(logs.String())
	}
	if strings.Contains(logs.String(), "notes.db") {
		t.Fatalf("a text file was taken for a database:\n%s", logs.String())
	}
}

// TestReplicateDirScale replicates many small databases from one watched
// directory in one process and checks every one reaches its replica, the
// goroutine count stays a small multiple of the database count, and
// shutdown leaves nothing running.
func TestReplicateDirScale(t *testing.T) {
	n := 500
	if testing.Short() {
		n = 50
	}
	dir := t.TempDir()
	dbDir := filepath.Join(dir, "data")
	replicaDir := filepath.Join(dir, "replica")
	start := time.Now()
	paths := make([]string, n)
	for i := range paths {
		paths[i] = filepath.Join(dbDir, fmt.Sprintf("db%04d.db", i))
		createDB(t, paths[i], 1)
	}
	cfg := writeConfig(t, dir, fmt.Sprintf(`dbs:
  - dir: %s
    pattern: "*.db"
    watch: true
    replica:
      path: %s
`, dbDir, replicaDir))
	base := runtime.NumGoroutine()
	rssBefore := rssBytes(t)
	replicating := time.Now()
	stop, logs := startReplicate(t, cfg)

	pending := map[string]bool{}
	for _, p := range paths {
		pending[filepath.Base(p)] = true
	}
	peak := 0
	waitFor(t, fmt.Sprintf("%d replicas", n), logs, func() (bool, string) {
		peak = max(peak, runtime.NumGoroutine())
		for name := range pending {
			if len(replicaFiles(t, filepath.Join(replicaDir, name))) > 0 {
				delete(pending, name)
			}
		}
		return len(pending) == 0, fmt.Sprintf("%d not replicated", len(pending))
	})
	t.Logf("created %d databases in %s, replicated in %s", n, replicating.Sub(start).Round(time.Millisecond), time.Since(replicating).Round(time.Millisecond))
	if limit := base + 6*n + 50; peak > limit {
		t.Fatalf("%d goroutines at peak for %d databases (base %d, limit %d)", peak, n, base, limit)
	}
	// Idle, each database costs four: WAL monitor, upload loop,
	// database/sql's connection opener and the replica lease renewal.
	waitFor(t, "idle goroutine count", logs, func() (bool, string) {
		g := runtime.NumGoroutine()
		return g <= base+4*n+20, fmt.Sprintf("%d goroutines for %d databases, base %d", g, n, base)
	})
	grew := rssBytes(t) - rssBefore
	fds, _ := os.ReadDir("/proc/self/fd")
	t.Logf("%d databases: %d goroutines at peak (base %d), RSS grew %d MiB, %d open files", n, peak, base, grew>>20, len(fds))
	if limit := int64(n)<<21 + 200<<20; grew > limit { // 2 MiB per database, generous for -race
		t.Fatalf("RSS grew %d MiB for %d databases", grew>>20, n)
	}
	// Idle cost: the quietest of three half-second windows (a scheduled
	// compaction may fall into one), measured, not a synchronisation.
	idle := time.Hour
	for range 3 {
		cpu0 := cpuTime()
		time.Sleep(500 * time.Millisecond)
		idle = min(idle, cpuTime()-cpu0)
	}
	// Reported, not asserted: speed targets live in the benchmark
	// (cmd/litestream-bench), not in timed tests.
	t.Logf("idle: %s CPU per 500ms", idle)

	for i := 0; i < n; i += n / 10 {
		if got, want := restoreURLDump(t, filepath.Join(replicaDir, filepath.Base(paths[i]))), dumpTable(t, paths[i]); got != want {
			t.Fatalf("%s restores to %q, want %q", paths[i], got, want)
		}
	}
	if code := stop(); code != 0 {
		t.Fatalf("replicate exited %d:\n%s", code, logs.String())
	}
	waitFor(t, "goroutines to end", logs, func() (bool, string) {
		g := runtime.NumGoroutine()
		return g <= base+5, fmt.Sprintf("%d goroutines, base %d", g, base)
	})
}

// rssBytes returns the process's resident set size.
func rssBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb << 10
		}
	}
	return 0
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
