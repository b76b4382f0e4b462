package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/superfly/ltx"
)

// startReplicateProcess runs "litestream replicate -config cfg" as a real
// child process (this test binary re-executed as the command).
func startReplicateProcess(t *testing.T, cfg string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "replicate", "-config", cfg)
	cmd.Env = append(os.Environ(), "LITESTREAM_TEST_AS_MAIN=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out
}

// replicaFiles returns the SHA-256 of every level-0 file in a replica.
func replicaFiles(t *testing.T, replicaDir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(replicaDir, "ltx", "0"))
	if os.IsNotExist(err) {
		return map[string]string{}
	} else if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range entries {
		if _, _, err := ltx.ParseFilename(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(replicaDir, "ltx", "0", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = fmt.Sprintf("%x", sha256.Sum256(b))
	}
	return m
}

// waitForNewFile waits (bounded) until the replica holds more than n
// level-0 files.
func waitForNewFile(t *testing.T, replicaDir string, n int, out *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(replicaFiles(t, replicaDir)) <= n {
		if time.Now().After(deadline) {
			t.Fatalf("no new replica file within 30s; replicate output:\n%s", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReplicateSurvivesSIGKILL kills the replicate process at random
// moments while an application writes batches, restarts it, and checks:
// files already in the replica never change or disappear, level-0 TXIDs
// stay gap-free, every restore point is a whole number of batches with
// integrity ok, and the final restore equals the application's data.
func TestReplicateSurvivesSIGKILL(t *testing.T) {
	cycles := 8
	if testing.Short() {
		cycles = 3
	}
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	replicaDir := filepath.Join(dir, "replica")
	cfg := writeConfig(t, dir, fmt.Sprintf(`dbs:
  - path: %s
    monitor-interval: 5ms
    min-checkpoint-page-count: 40
    replica:
      path: %s
      sync-interval: 5ms
`, dbPath, replicaDir))
	app := openApp(t, dbPath)
	mustExec(t, app, "CREATE TABLE ledger (seq INTEGER PRIMARY KEY, batch INTEGER NOT NULL, payload BLOB)")

	// The application writes batches of 10 rows, one transaction each.
	var batches atomic.Int64
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for b := int64(1); ; b++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			tx, err := app.Begin()
			if err != nil {
				done <- err
				return
			}
			for i := 0; i < 10; i++ {
				if _, err := tx.Exec("INSERT INTO ledger (batch, payload) VALUES (?, randomblob(300))", b); err != nil {
					tx.Rollback()
					done <- err
					return
				}
			}
			if err := tx.Commit(); err != nil {
				done <- err
				return
			}
			batches.Store(b)
		}
	}()

	rng := rand.New(rand.NewPCG(7, 7))
	seen := map[string]string{}
	for cycle := 0; cycle < cycles; cycle++ {
		cmd, out := startReplicateProcess(t, cfg)
		waitForNewFile(t, replicaDir, len(seen), out)
		time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond) // a random moment, not a synchronisation
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		if os.Getenv("CRASH_DEBUG") != "" {
			t.Logf("cycle %d output:\n%s", cycle, out.String())
		}
		now := replicaFiles(t, replicaDir)
		for name, sum := range seen {
			if now[name] != sum {
				t.Fatalf("cycle %d: replica file %s changed or vanished after a crash", cycle, name)
			}
		}
		seen = now
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// A clean run ships the rest; SIGTERM makes it sync and exit.
	cmd, out := startReplicateProcess(t, cfg)
	waitForNewFile(t, replicaDir, len(seen), out)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("replicate exit: %v\n%s", err, out.String())
	}

	final := replicaFiles(t, replicaDir)
	names := make([]string, 0, len(final))
	for name := range final {
		names = append(names, name)
	}
	sort.Strings(names)
	for i, name := range names {
		if want := ltx.FormatFilename(ltx.TXID(i+1), ltx.TXID(i+1)); name != want {
			t.Fatalf("level-0 files are not contiguous: file %d is %s, want %s", i, name, want)
		}
	}

	// Every TXID restores to whole batches; the last one to everything.
	for i, name := range names {
		if i%3 != 0 && i != len(names)-1 {
			continue
		}
		out := filepath.Join(t.TempDir(), "r.db")
		txid := name[:16]
		if code, _, stderr := runCLI(t, "restore", "-txid", txid, "-integrity-check", "full", "-o", out, "file://"+replicaDir); code != 0 {
			t.Fatalf("restore TXID %s: %s", txid, stderr)
		}
		checkWholeBatches(t, out)
	}
	latest := filepath.Join(t.TempDir(), "latest.db")
	if code, _, stderr := runCLI(t, "restore", "-o", latest, "file://"+replicaDir); code != 0 {
		t.Fatalf("restore latest: %s", stderr)
	}
	want := batches.Load()
	if got := int64(queryInt(t, latest, "SELECT COALESCE(MAX(batch), 0) FROM ledger")); got != want {
		t.Fatalf("latest restore has %d batches, the application committed %d", got, want)
	}
	checkWholeBatches(t, latest)
	t.Logf("%d kill cycles, %d level-0 files, %d batches (%d rows) checked", cycles, len(names), want, want*10)
}

// checkWholeBatches asserts the ledger holds batches 1..N complete, with
// sequence numbers 1..10N: no torn transaction, no hole.
func checkWholeBatches(t *testing.T, path string) {
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
}
