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
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/file"
)

// startFollowProcess runs "litestream restore -f" as a real child process.
func startFollowProcess(t *testing.T, out, replicaURL string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "restore", "-f", "-follow-interval", "5ms", "-o", out, replicaURL)
	cmd.Env = append(os.Environ(), "LITESTREAM_TEST_AS_MAIN=1")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &buf
}

// sidecarTXID returns the TXID in <out>-txid, 0 if there is none yet.
func sidecarTXID(t *testing.T, out string) ltx.TXID {
	t.Helper()
	txid, err := litestream.ReadTXIDFile(out)
	if os.IsNotExist(err) {
		return 0
	} else if err != nil {
		t.Fatal(err)
	}
	return txid
}

// waitSidecar waits (bounded) until the follower recorded a TXID >= txid.
func waitSidecar(t *testing.T, out string, txid ltx.TXID, logs *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for sidecarTXID(t, out) < txid {
		if time.Now().After(deadline) {
			t.Fatalf("follower did not reach TXID %s within 60s (at %s); output:\n%s", txid, sidecarTXID(t, out), logs.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitExists waits (bounded) until path exists.
func waitExists(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not exist after 60s", path)
		}
		time.Sleep(time.Millisecond)
	}
}

// ledgerReader reads the follower's output over and over on its own
// connection, checking integrity, whole batches and a row count that
// never goes down, until stop is closed.
func ledgerReader(path string, batchSize int, stop <-chan struct{}, checks *atomic.Int64) error {
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(30000)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	last := 0
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		var check string
		var n, maxBatch int
		err = tx.QueryRow("PRAGMA integrity_check").Scan(&check)
		if err == nil {
			err = tx.QueryRow("SELECT COUNT(*), COALESCE(MAX(batch), 0) FROM ledger").Scan(&n, &maxBatch)
		}
		tx.Rollback()
		switch {
		case err != nil:
			return err
		case check != "ok":
			return fmt.Errorf("integrity_check: %s", check)
		case n < last:
			return fmt.Errorf("row count went from %d down to %d", last, n)
		case n != maxBatch*batchSize:
			return fmt.Errorf("%d rows for %d batches: a torn transaction", n, maxBatch)
		}
		last = n
		checks.Add(1)
	}
}

// ledgerHash hashes every row of the ledger.
func ledgerHash(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT seq, batch, payload FROM ledger ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	h := sha256.New()
	for rows.Next() {
		var seq, batch int64
		var payload []byte
		if err := rows.Scan(&seq, &batch, &payload); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%d %d %x\n", seq, batch, payload)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TestFollowSurvivesSIGKILL replicates a database under continuous writes
// and follows it with a real "restore -f" process that is killed with
// SIGKILL at random moments and restarted. A reader in this process
// checks the output all along (integrity ok, whole transactions, count
// never decreasing); the last follower is stopped with SIGTERM (exit 0)
// once it caught up, and the output must equal the primary.
func TestFollowSurvivesSIGKILL(t *testing.T) {
	cycles := 6
	if testing.Short() {
		cycles = 3
	}
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	replicaDir := filepath.Join(dir, "replica")
	app := openApp(t, dbPath)
	mustExec(t, app, "CREATE TABLE ledger (seq INTEGER PRIMARY KEY, batch INTEGER NOT NULL, payload BLOB)")
	db := litestream.NewDB(dbPath)
	db.MonitorInterval = 5 * time.Millisecond
	db.MinCheckpointPageN = 50
	rep := litestream.NewReplica(db, file.NewReplicaClient(replicaDir))
	rep.SyncInterval = 5 * time.Millisecond
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	ctx := context.Background()
	if err := db.SyncAndWait(ctx); err != nil {
		t.Fatal(err)
	}

	// The application writes batches of 5 rows, one transaction each.
	stopWriter := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		for b := 1; ; b++ {
			select {
			case <-stopWriter:
				writerDone <- nil
				return
			default:
			}
			tx, err := app.Begin()
			if err != nil {
				writerDone <- err
				return
			}
			for i := 0; i < 5; i++ {
				if _, err := tx.Exec("INSERT INTO ledger (batch, payload) VALUES (?, randomblob(300))", b); err != nil {
					tx.Rollback()
					writerDone <- err
					return
				}
			}
			if err := tx.Commit(); err != nil {
				writerDone <- err
				return
			}
			time.Sleep(time.Millisecond) // a steady stream, not a synchronisation
		}
	}()

	out := filepath.Join(dir, "follower", "out.db")
	url := "file://" + replicaDir
	stopReader := make(chan struct{})
	readerDone := make(chan error, 1)
	var checks atomic.Int64
	rng := rand.New(rand.NewPCG(3, 3))
	for cycle := 0; cycle < cycles; cycle++ {
		cmd, logs := startFollowProcess(t, out, url)
		waitSidecar(t, out, sidecarTXID(t, out)+1, logs)
		if cycle == 0 {
			// The sidecar is written just before the output is renamed
			// into place; a reader opening a missing path would create
			// an empty database there.
			waitExists(t, out)
			go func() { readerDone <- ledgerReader(out, 5, stopReader, &checks) }()
		}
		time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond) // a random moment, not a synchronisation
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
	}
	close(stopWriter)
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	if err := db.SyncAndWait(ctx); err != nil {
		t.Fatal(err)
	}
	target := db.Pos()

	cmd, logs := startFollowProcess(t, out, url)
	waitSidecar(t, out, target, logs)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("follower exit after SIGTERM: %v\n%s", err, logs.String())
	}
	close(stopReader)
	if err := <-readerDone; err != nil {
		t.Fatalf("reader: %v", err)
	}
	if checks.Load() == 0 {
		t.Fatal("the reader never completed a check")
	}
	if got := sidecarTXID(t, out); got != target {
		t.Fatalf("sidecar at %s, primary at %s", got, target)
	}
	integrityOK(t, out)
	if ledgerHash(t, out) != ledgerHash(t, dbPath) {
		t.Fatal("follower output differs from the primary")
	}
	t.Logf("%d kills; followed to TXID %s; %d reader checks", cycles, target, checks.Load())
}

func TestFollowFlags(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	app := openApp(t, dbPath)
	mustExec(t, app, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
	url := "file://" + filepath.Join(dir, "replica")
	if code, _, stderr := runCLI(t, "replicate", "-once", "-config", writeConfig(t, dir, fmt.Sprintf("dbs:\n  - path: %s\n    replica:\n      url: %s\n", dbPath, url))); code != 0 {
		t.Fatalf("replicate -once: %s", stderr)
	}
	out := filepath.Join(dir, "out.db")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-f", "-txid", "0000000000000001"}, "cannot use follow mode with -txid"},
		{[]string{"-f", "-timestamp", "2026-01-01T00:00:00Z"}, "cannot use follow mode with -timestamp"},
		{[]string{"-f", "-dry-run"}, "cannot use follow mode with -dry-run"},
		{[]string{"-f", "-follow-interval", "0s"}, "invalid -follow-interval"},
	} {
		args := append(append([]string{"restore"}, tc.args...), "-o", out, url)
		if code, _, stderr := runCLI(t, args...); code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, %q; want %q", tc.args, code, stderr, tc.want)
		}
	}
	// An output restored without -f has no sidecar: follow refuses it.
	if code, _, stderr := runCLI(t, "restore", "-o", out, url); code != 0 {
		t.Fatal(stderr)
	}
	if code, _, stderr := runCLI(t, "restore", "-f", "-o", out, url); code == 0 || !strings.Contains(stderr, "-txid does not") {
		t.Fatalf("follow over an output without sidecar: %d %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, "restore", "-f", "-if-db-not-exists", "-o", out, url); code != 0 || !strings.Contains(stderr, "skipping") {
		t.Fatalf("follow -if-db-not-exists: %d %s", code, stderr)
	}
	empty := "file://" + filepath.Join(dir, "empty")
	if code, _, stderr := runCLI(t, "restore", "-f", "-if-replica-exists", "-o", filepath.Join(dir, "e.db"), empty); code != 0 || !strings.Contains(stderr, "no matching backups") {
		t.Fatalf("follow -if-replica-exists of an empty replica: %d %s", code, stderr)
	}
}
