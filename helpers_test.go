package litestream_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/superfly/ltx"
	_ "modernc.org/sqlite"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/file"
	"github.com/sqlitebackup/litestream/ltxfile"
)

// openApp opens the "application" connection pool: a separate connection
// to the same file, as a real application would have.
func openApp(t testing.TB, path string, pageSize int) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	// The page size must be set before WAL mode creates the database; in a
	// DSN, modernc's journal_mode pragma would run first.
	mustExec(t, db, fmt.Sprintf("PRAGMA page_size = %d", pageSize))
	mustExec(t, db, "PRAGMA journal_mode = wal")
	var got int
	if err := db.QueryRow("PRAGMA page_size").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if _, statErr := os.Stat(path); got != pageSize && statErr == nil {
		mustExec(t, db, "VACUUM") // an empty database takes the new page size on first write
	}
	return db
}

func mustExec(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// contentHash checks integrity and hashes the schema and every row of
// every table, so two databases with the same logical content hash the
// same whatever their page layout.
func contentHash(t testing.TB, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var check string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check on %s: %q %v", path, check, err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	h := sha256.New()
	rows, err := tx.Query("SELECT type, name, COALESCE(sql, '') FROM sqlite_master ORDER BY type, name")
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var typ, name, sqlText string
		if err := rows.Scan(&typ, &name, &sqlText); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%s %s %s\n", typ, name, sqlText)
		if typ == "table" {
			tables = append(tables, name)
		}
	}
	rows.Close()
	for _, tbl := range tables {
		rows, err := tx.Query(fmt.Sprintf("SELECT * FROM %q ORDER BY rowid", tbl))
		if err != nil {
			rows, err = tx.Query(fmt.Sprintf("SELECT * FROM %q ORDER BY 1", tbl))
		}
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(h, "%s %v\n", tbl, vals)
		}
		rows.Close()
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// harness is a database replicated to a file replica with manual syncs,
// recording the application's content at every TXID.
type harness struct {
	t      *testing.T
	dir    string
	dbPath string
	app    *sql.DB
	db     *litestream.DB
	client *file.ReplicaClient
	states map[ltx.TXID]string // content hash after each TXID
	ctx    context.Context
}

func newHarness(t *testing.T, pageSize int, configure func(db *litestream.DB)) *harness {
	t.Helper()
	dir := t.TempDir()
	h := &harness{t: t, dir: dir, dbPath: filepath.Join(dir, "app.db"), states: map[ltx.TXID]string{}, ctx: context.Background()}
	h.app = openApp(t, h.dbPath, pageSize)
	mustExec(t, h.app, "CREATE TABLE IF NOT EXISTS seed (id INTEGER PRIMARY KEY)")
	h.client = file.NewReplicaClient(filepath.Join(dir, "replica"))
	h.open(configure)
	return h
}

func (h *harness) open(configure func(db *litestream.DB)) {
	h.db = litestream.NewDB(h.dbPath)
	h.db.MonitorInterval = 0 // the test drives every sync
	litestream.NewReplica(h.db, h.client)
	if configure != nil {
		configure(h.db) // may tune db.Replica too, before Open
	}
	if err := h.db.Open(); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { h.db.Close(context.Background()) })
}

// sync replicates and records the content at the new TXID.
func (h *harness) sync() ltx.TXID {
	h.t.Helper()
	if err := h.db.SyncAndWait(h.ctx); err != nil {
		h.t.Fatal(err)
	}
	txid := h.db.Pos()
	h.states[txid] = contentHash(h.t, h.dbPath)
	return txid
}

func (h *harness) restore(target litestream.RestoreTarget) string {
	h.t.Helper()
	return contentHash(h.t, h.restoreFile(target))
}

// restoreFile restores target, with a full integrity check, into a new
// file and returns its path.
func (h *harness) restoreFile(target litestream.RestoreTarget) string {
	h.t.Helper()
	out := filepath.Join(h.t.TempDir(), "restored.db")
	if _, err := litestream.Restore(h.ctx, h.client, litestream.RestoreOptions{OutputPath: out, Target: target, IntegrityCheck: "full"}); err != nil {
		h.t.Fatalf("restore %+v: %v", target, err)
	}
	return out
}

// verifyAll restores the latest state, every recorded TXID, and the
// timestamp of every level-0 file, and compares with what was committed.
func (h *harness) verifyAll() {
	h.t.Helper()
	txids := make([]ltx.TXID, 0, len(h.states))
	for txid := range h.states {
		txids = append(txids, txid)
	}
	sort.Slice(txids, func(i, j int) bool { return txids[i] < txids[j] })
	last := txids[len(txids)-1]
	if got := h.restore(litestream.RestoreTarget{}); got != h.states[last] {
		h.t.Fatalf("latest restore (TXID %s) differs from the committed content", last)
	}
	for _, txid := range txids {
		if got := h.restore(litestream.RestoreTarget{TXID: txid}); got != h.states[txid] {
			h.t.Fatalf("restore of TXID %s differs from the content committed then", txid)
		}
	}
	infos, err := litestream.LTXFileInfos(h.ctx, h.client, 0, 0, true)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, info := range infos {
		// The state at a timestamp is the newest file created at or
		// before it.
		var want ltx.TXID
		for _, other := range infos {
			if !other.CreatedAt.After(info.CreatedAt) {
				want = max(want, other.MaxTXID)
			}
		}
		wantHash, ok := h.states[want]
		if !ok {
			continue
		}
		if got := h.restore(litestream.RestoreTarget{Timestamp: info.CreatedAt}); got != wantHash {
			h.t.Fatalf("restore at %s differs from TXID %s", info.CreatedAt.Format(time.RFC3339Nano), want)
		}
	}
}

func newFileClient(dir string) *file.ReplicaClient { return file.NewReplicaClient(dir) }

// newTinyLTX encodes a one-page LTX file for planner tests.
func newTinyLTX(t testing.TB, minTXID, maxTXID ltx.TXID) []byte {
	t.Helper()
	var buf bytes.Buffer
	hdr := ltxfile.Header(512, 1, minTXID, maxTXID, time.UnixMilli(1_700_000_000_000+int64(maxTXID)))
	if _, err := ltxfile.Encode(&buf, hdr, []uint32{1}, func(pgno uint32, b []byte) error { clear(b); return nil }); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func planNames(plan []*ltx.FileInfo) []string {
	var a []string
	for _, info := range plan {
		a = append(a, fmt.Sprintf("L%d:%s", info.Level, ltx.FormatFilename(info.MinTXID, info.MaxTXID)))
	}
	return a
}
