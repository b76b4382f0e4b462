package litestream_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pierrec/lz4/v4"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/file"
	"github.com/sqlitebackup/litestream/internal/v3fixture"
)

// v3History is a v0.3 replica built from a real database, with the
// database's content after every file written.
type v3History struct {
	rep    *v3fixture.Replica
	client *file.ReplicaClient
	times  []time.Time // file times, ascending
	states []string    // content hash after times[i]
}

func (h *v3History) record(t *testing.T, ts time.Time) {
	t.Helper()
	if ts.IsZero() {
		t.Fatal("nothing was written")
	}
	h.times = append(h.times, ts)
	h.states = append(h.states, contentHash(t, h.rep.DBPath))
}

// stateAt returns the content expected for a restore at ts.
func (h *v3History) stateAt(ts time.Time) string {
	var s string
	for i, t := range h.times {
		if !t.After(ts) {
			s = h.states[i]
		}
	}
	return s
}

// buildV3History writes two generations: the first with snapshots at WAL
// indexes 0 and 2 and several multi-segment WAL files (inserts, updates,
// deletes, a schema change, large blobs, a VACUUM that shrinks the file),
// the second starting later.
func buildV3History(t *testing.T, root string, clock time.Time) *v3History {
	dir := t.TempDir()
	rep := v3fixture.New(t, root, filepath.Join(dir, "app.db"), "0123456789abcdef", 4096, clock)
	h := &v3History{rep: rep, client: file.NewReplicaClient(root)}
	rep.Exec("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, data BLOB)")
	h.record(t, rep.Snapshot()) // index 0
	for i := 0; i < 3; i++ {
		rep.Exec("INSERT INTO items (name, data) SELECT 'row', randomblob(500) FROM (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3)")
		rep.Exec("INSERT INTO items (name, data) VALUES ('big', randomblob(40000))")
		h.record(t, rep.Ship())
	}
	rep.Checkpoint() // index 1
	rep.Exec("UPDATE items SET name = name || '!' WHERE id % 2 = 0")
	rep.Exec("CREATE TABLE other (k TEXT PRIMARY KEY, v) WITHOUT ROWID")
	h.record(t, rep.Ship())
	rep.Exec("DELETE FROM items WHERE name = 'big'")
	rep.Exec("VACUUM")
	h.record(t, rep.Ship())
	h.record(t, rep.Snapshot()) // index 2
	rep.Exec("INSERT INTO other VALUES ('a', 1), ('b', x'00ff')")
	h.record(t, rep.Ship())

	// A new generation, as v0.3 started after losing track of the WAL.
	rep.NewGeneration("fedcba9876543210")
	rep.Exec("INSERT INTO items (name) VALUES ('gen2')")
	h.record(t, rep.Snapshot())
	rep.Exec("UPDATE other SET v = 2")
	h.record(t, rep.Ship())
	return h
}

func restoreHash(t *testing.T, client litestream.ReplicaClient, target litestream.RestoreTarget) (string, error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "restored.db")
	if _, err := litestream.Restore(context.Background(), client, litestream.RestoreOptions{OutputPath: out, Target: target, IntegrityCheck: "full"}); err != nil {
		return "", err
	}
	return contentHash(t, out), nil
}

// TestV3RestoreLatestAndTimestamps restores a v0.3 replica (no LTX files)
// at the latest state and at every file's time, and between files.
func TestV3RestoreLatestAndTimestamps(t *testing.T) {
	root := filepath.Join(t.TempDir(), "replica")
	h := buildV3History(t, root, time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC))

	got, err := restoreHash(t, h.client, litestream.RestoreTarget{})
	if err != nil {
		t.Fatal(err)
	}
	if want := h.states[len(h.states)-1]; got != want {
		t.Fatal("latest v0.3 restore differs from the database")
	}
	for i, ts := range h.times {
		for _, at := range []time.Time{ts, ts.Add(30 * time.Second)} {
			got, err := restoreHash(t, h.client, litestream.RestoreTarget{Timestamp: at})
			if err != nil {
				t.Fatalf("restore at %s (file %d): %v", at, i, err)
			}
			if got != h.stateAt(at) {
				t.Fatalf("restore at %s (file %d) differs from the database then", at, i)
			}
		}
	}
	_, err = restoreHash(t, h.client, litestream.RestoreTarget{Timestamp: h.times[0].Add(-time.Second)})
	if !errors.Is(err, litestream.ErrNoBackup) {
		t.Fatalf("restore before the first snapshot: %v", err)
	}
	// A TXID has no meaning in v0.3 backups.
	_, err = restoreHash(t, h.client, litestream.RestoreTarget{TXID: 1})
	if !errors.Is(err, litestream.ErrNoBackup) && !errors.Is(err, litestream.ErrTxNotAvailable) {
		t.Fatalf("restore of a TXID from a v0.3 replica: %v", err)
	}
}

// TestV3OrLTXWhicheverIsNewer puts a v0.3 backup and an LTX backup of
// different content in one replica: restore uses the newer one, and for
// a timestamp, the one that reaches closest to it.
func TestV3OrLTXWhicheverIsNewer(t *testing.T) {
	// The usual upgrade: v0.3 backups first, LTX backups since.
	h := newHarness(t, 4096, nil)
	mustExec(t, h.app, "CREATE TABLE ltx_only (id INTEGER PRIMARY KEY)")
	txid := h.sync()
	old := buildV3History(t, h.client.Path(), time.Now().Add(-24*time.Hour))
	if got, err := restoreHash(t, h.client, litestream.RestoreTarget{}); err != nil || got != h.states[txid] {
		t.Fatalf("latest restore did not use the newer LTX backup: %v", err)
	}
	at := old.times[3] // before the first LTX file: only v0.3 data serves
	if got, err := restoreHash(t, h.client, litestream.RestoreTarget{Timestamp: at}); err != nil || got != old.stateAt(at) {
		t.Fatalf("restore at a time only the v0.3 backup covers: %v", err)
	}
	if got, err := restoreHash(t, h.client, litestream.RestoreTarget{TXID: txid}); err != nil || got != h.states[txid] {
		t.Fatalf("restore by TXID: %v", err)
	}

	// A v0.3 backup written after the LTX one wins.
	h2 := newHarness(t, 4096, nil)
	mustExec(t, h2.app, "CREATE TABLE ltx_only (id INTEGER PRIMARY KEY)")
	txid = h2.sync()
	ltxAt := time.Now()
	newer := buildV3History(t, h2.client.Path(), ltxAt.Add(time.Hour))
	if got, err := restoreHash(t, h2.client, litestream.RestoreTarget{}); err != nil || got != newer.states[len(newer.states)-1] {
		t.Fatalf("latest restore did not use the newer v0.3 backup: %v", err)
	}
	at = ltxAt.Add(time.Minute) // after the LTX file, before any v0.3 file
	if got, err := restoreHash(t, h2.client, litestream.RestoreTarget{Timestamp: at}); err != nil || got != h2.states[txid] {
		t.Fatalf("restore at a time only the LTX backup covers: %v", err)
	}
}

// TestV3DamagedBackups: a missing segment, a missing WAL file, a segment
// whose frames fail SQLite's checksums and an unreadable LZ4 frame are
// errors naming the file, never a silently older database.
func TestV3DamagedBackups(t *testing.T) {
	clock := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	build := func(t *testing.T) (string, *v3fixture.Replica) {
		root := filepath.Join(t.TempDir(), "replica")
		rep := v3fixture.New(t, root, filepath.Join(t.TempDir(), "app.db"), "00000000000000aa", 4096, clock)
		rep.Exec("CREATE TABLE t (v BLOB)")
		rep.Snapshot()
		for i := 0; i < 3; i++ {
			rep.Exec("INSERT INTO t VALUES (randomblob(5000))")
			rep.Ship()
		}
		rep.Checkpoint()
		rep.Exec("INSERT INTO t VALUES (randomblob(5000))")
		rep.Ship()
		return root, rep
	}
	segments := func(t *testing.T, root string) []string {
		names, err := filepath.Glob(filepath.Join(root, "generations", "*", "wal", "*.wal.lz4"))
		if err != nil || len(names) != 4 {
			t.Fatalf("segments: %v %v", names, err)
		}
		return names // sorted: index, then offset
	}
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, segs []string)
		want   string
	}{
		{"missing middle segment", func(t *testing.T, segs []string) { os.Remove(segs[1]) }, "missing segment"},
		{"missing wal file", func(t *testing.T, segs []string) {
			// Drop WAL index 0 entirely; index 1 remains.
			for _, s := range segs[:3] {
				os.Remove(s)
			}
		}, "wal 00000000000000aa/00000000 is missing"},
		{"frame checksum", func(t *testing.T, segs []string) { rewriteLZ4(t, segs[2], func(b []byte) { b[len(b)-100] ^= 1 }) }, "valid committed frames"},
		{"lz4 frame", func(t *testing.T, segs []string) {
			b, _ := os.ReadFile(segs[0])
			os.WriteFile(segs[0], b[:len(b)/2], 0o644)
		}, "decompress"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, _ := build(t)
			tc.damage(t, segments(t, root))
			out := filepath.Join(t.TempDir(), "out.db")
			_, err := litestream.Restore(context.Background(), file.NewReplicaClient(root), litestream.RestoreOptions{OutputPath: out})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Fatal("a failed restore left an output")
			}
		})
	}
}

// rewriteLZ4 decompresses a file, changes its content and compresses it back.
func rewriteLZ4(t *testing.T, p string, change func([]byte)) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	var raw bytes.Buffer
	if _, err := raw.ReadFrom(lz4.NewReader(f)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b := raw.Bytes()
	change(b)
	var out bytes.Buffer
	zw := lz4.NewWriter(&out)
	zw.Write(b)
	zw.Close()
	if err := os.WriteFile(p, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestV3Names(t *testing.T) {
	if got := litestream.V3WALSegmentPath("r", "0123456789abcdef", 10, 0x1234); got != "r/generations/0123456789abcdef/wal/0000000a_00001234.wal.lz4" {
		t.Fatal(got)
	}
	if got := litestream.V3SnapshotPath("r", "0123456789abcdef", 255); got != "r/generations/0123456789abcdef/snapshots/000000ff.snapshot.lz4" {
		t.Fatal(got)
	}
	for name, want := range map[string]int64{
		"00000001_00000020.wal.lz4":         0x20,
		"00000001_123456789.wal.lz4":        0x123456789, // past 4 GiB
		"00000001_0000000123456789.wal.lz4": 0x123456789,
	} {
		index, off, err := litestream.ParseV3WALSegmentName(name)
		if err != nil || index != 1 || off != want {
			t.Errorf("%s: %d %x %v", name, index, off, err)
		}
	}
	for _, bad := range []string{"1_20.wal.lz4", "00000001_20.wal.lz4", "00000001_00000020.wal", "0000000g_00000020.wal.lz4"} {
		if _, _, err := litestream.ParseV3WALSegmentName(bad); err == nil {
			t.Errorf("%s parsed", bad)
		}
	}
	if i, err := litestream.ParseV3SnapshotName("0000000a.snapshot.lz4"); err != nil || i != 10 {
		t.Errorf("snapshot name: %d %v", i, err)
	}
	if litestream.IsV3Generation("0123456789ABCDEF") || !litestream.IsV3Generation("0123456789abcdef") {
		t.Error("generation IDs are 16 lower-case hex digits")
	}
}
