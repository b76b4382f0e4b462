package netfault_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
)

// payloadSize keeps one row per 4 KiB page, so a batch of rows becomes a
// level-0 file of about rows*4 KiB; random payloads do not compress.
const payloadSize = 3000

// harness is an application database (a ledger of numbered rows with
// random payloads) replicated by a litestream.DB to one client.
type harness struct {
	t      *testing.T
	dir    string
	dbPath string
	app    *sql.DB
	db     *litestream.DB
	client *observedClient
	next   int                 // next row number
	states map[ltx.TXID]string // content hash at each TXID reported replicated
}

// newHarness opens the application database and starts replicating it to
// client. Level-0 files are written only when the test syncs
// (MonitorInterval 0). configure, if set, adjusts the DB and its replica
// before they open.
func newHarness(t *testing.T, client litestream.ReplicaClient, configure func(*litestream.DB)) *harness {
	t.Helper()
	h := newClosedHarness(t, client, configure)
	if err := h.db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := h.db.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return h
}

// newClosedHarness is newHarness without opening the DB, for a Store to
// open.
func newClosedHarness(t *testing.T, client litestream.ReplicaClient, configure func(*litestream.DB)) *harness {
	t.Helper()
	dir := t.TempDir()
	h := &harness{t: t, dir: dir, dbPath: filepath.Join(dir, "app.db"), client: &observedClient{ReplicaClient: client}, next: 1, states: map[ltx.TXID]string{}}
	app, err := sql.Open("sqlite", h.dbPath+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	app.SetMaxOpenConns(1)
	t.Cleanup(func() { app.Close() })
	h.app = app
	h.exec("PRAGMA journal_mode = wal")
	h.exec("CREATE TABLE ledger (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL)")

	h.db = litestream.NewDB(h.dbPath)
	h.db.MonitorInterval = 0
	h.db.Logger = testLogger()
	litestream.NewReplica(h.db, h.client)
	if configure != nil {
		configure(h.db)
	}
	return h
}

// testLogger discards the engine's logs unless NETFAULT_LOG=1: faults
// make it log errors on purpose.
func testLogger() *slog.Logger {
	if os.Getenv("NETFAULT_LOG") == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (h *harness) exec(query string, args ...any) {
	h.t.Helper()
	if _, err := h.app.Exec(query, args...); err != nil {
		h.t.Fatalf("%s: %v", query, err)
	}
}

// commit appends rows in one transaction.
func (h *harness) commit(rows int) {
	h.t.Helper()
	tx, err := h.app.Begin()
	if err != nil {
		h.t.Fatal(err)
	}
	for i := 0; i < rows; i++ {
		buf := make([]byte, payloadSize)
		_, _ = rand.Read(buf)
		if _, err := tx.Exec("INSERT INTO ledger (seq, payload) VALUES (?, ?)", h.next, buf); err != nil {
			h.t.Fatal(err)
		}
		h.next++
	}
	if err := tx.Commit(); err != nil {
		h.t.Fatal(err)
	}
}

// trySync runs SyncAndWait bounded by timeout. On success it records the
// application's content at the TXID now in the replica.
func (h *harness) trySync(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := h.db.SyncAndWait(ctx); err != nil {
		return err
	}
	h.states[h.db.Pos()] = ledgerHash(h.t, h.app)
	return nil
}

// syncRetrying retries trySync (each attempt bounded by attempt) until it
// succeeds or total has passed, and returns the failures seen and the
// final error (nil on success).
func (h *harness) syncRetrying(attempt, total time.Duration) (failures []error, err error) {
	deadline := time.Now().Add(total)
	for {
		err := h.trySync(min(attempt, time.Until(deadline)))
		if err == nil {
			return failures, nil
		}
		failures = append(failures, err)
		if time.Until(deadline) <= 0 {
			return failures, err
		}
	}
}

// mustSync replicates everything or fails the test.
func (h *harness) mustSync(what string) ltx.TXID {
	h.t.Helper()
	if err := h.trySync(30 * time.Second); err != nil {
		h.t.Fatalf("%s: SyncAndWait: %v", what, err)
	}
	return h.db.Pos()
}

// restore restores target into a new file and returns its path.
func (h *harness) restore(ctx context.Context, target litestream.RestoreTarget) (string, error) {
	out := filepath.Join(h.t.TempDir(), "restored.db")
	_, err := litestream.Restore(ctx, h.client, litestream.RestoreOptions{OutputPath: out, Target: target, IntegrityCheck: "full"})
	return out, err
}

// checkRestored asserts that the database at path passes
// PRAGMA integrity_check and holds exactly the rows recorded at txid.
func (h *harness) checkRestored(path string, txid ltx.TXID) {
	h.t.Helper()
	want, ok := h.states[txid]
	if !ok {
		h.t.Fatalf("no recorded state at TXID %s", txid)
	}
	db, err := sql.Open("sqlite", path+"?mode=ro")
	if err != nil {
		h.t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		h.t.Fatalf("restored %s: integrity_check = %q, %v", txid, check, err)
	}
	if got := ledgerHash(h.t, db); got != want {
		h.t.Fatalf("restored %s: content differs from the application's at that TXID", txid)
	}
}

// checkLevel0Contiguous asserts that the replica's level-0 files run from
// TXID 1 to the DB's position without a gap or an overlap. The replica's
// first file, 1-1, is in the snapshot level only.
func (h *harness) checkLevel0Contiguous(ctx context.Context) {
	h.t.Helper()
	infos, err := litestream.LTXFileInfos(ctx, h.client, 0, 0, false)
	if err != nil {
		h.t.Fatal(err)
	}
	snaps, err := litestream.LTXFileInfos(ctx, h.client, litestream.SnapshotLevel, 0, false)
	if err != nil {
		h.t.Fatal(err)
	}
	var prev ltx.TXID
	if len(snaps) > 0 && snaps[0].MinTXID == 1 && snaps[0].MaxTXID == 1 {
		prev = 1
	}
	for _, info := range infos {
		if info.MinTXID != prev+1 {
			h.t.Fatalf("level 0: %s follows TXID %s (gap or overlap)", ltx.FormatFilename(info.MinTXID, info.MaxTXID), prev)
		}
		prev = info.MaxTXID
	}
	if pos := h.db.Pos(); prev != pos {
		h.t.Fatalf("level 0 ends at TXID %s, the database is at %s", prev, pos)
	}
}

// checkVerify asserts that every replica file checks out (level chains
// and each file's checksum): a fault never leaves a torn file behind.
func (h *harness) checkVerify(ctx context.Context) {
	h.t.Helper()
	rep, err := litestream.Verify(ctx, h.client, litestream.VerifyOptions{})
	if err != nil {
		h.t.Fatalf("verify: %v", err)
	}
	if len(rep.Problems) > 0 {
		h.t.Fatalf("verify: %v", rep.Problems)
	}
}

// ledgerHash hashes every row of the ledger in order.
func ledgerHash(t *testing.T, db *sql.DB) string {
	t.Helper()
	rows, err := db.Query("SELECT seq, payload FROM ledger ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	hash := sha256.New()
	var n int
	for rows.Next() {
		var seq int64
		var payload []byte
		if err := rows.Scan(&seq, &payload); err != nil {
			t.Fatal(err)
		}
		_ = binary.Write(hash, binary.BigEndian, [2]int64{seq, int64(len(payload))})
		hash.Write(payload)
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	_ = binary.Write(hash, binary.BigEndian, int64(n))
	return hex.EncodeToString(hash.Sum(nil))
}
