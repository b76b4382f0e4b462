package litestream_test

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
)

// dyingWriter fails an upload half way, as a process killed during a
// compaction would leave it: nothing visible under the final name.
type dyingWriter struct {
	litestream.ReplicaClient
	failLevel int
}

func (c *dyingWriter) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	if level == c.failLevel {
		io.CopyN(io.Discard, r, 200)
		return nil, errors.New("killed mid-compaction")
	}
	return c.ReplicaClient.WriteLTXFile(ctx, level, minTXID, maxTXID, r)
}

// TestRestartMidCompaction: a compaction dies during its upload; a fresh
// process (new DB and Replica values, so no cached state) compacts again
// with no gap, no duplicate, and every point still restorable.
func TestRestartMidCompaction(t *testing.T) {
	h := newHarness(t, 4096, nil)
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	for i := 0; i < 3; i++ {
		insertRows(t, h, 5)
		h.sync()
	}
	if _, err := h.db.Replica.Compact(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		insertRows(t, h, 5)
		h.sync()
	}
	real := h.db.Replica.Client
	h.db.Replica.Client = &dyingWriter{ReplicaClient: real, failLevel: 1}
	if _, err := h.db.Replica.Compact(context.Background(), 1); err == nil {
		t.Fatal("compaction succeeded despite the failure")
	}
	if tmps, _ := filepath.Glob(filepath.Join(h.dir, "replica", "ltx", "1", "*.tmp")); len(tmps) > 0 {
		t.Fatalf("partial compaction output left: %v", tmps)
	}
	h.db.Replica.Client = real
	h.db.Close(context.Background())

	h.open(nil) // a restarted process
	insertRows(t, h, 5)
	h.sync()
	if _, err := h.db.Replica.Compact(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	l1, err := litestream.LTXFileInfos(context.Background(), h.client, 1, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range l1 {
		if i > 0 && f.MinTXID != l1[i-1].MaxTXID+1 {
			t.Fatalf("level 1 is not contiguous: %s after %s", ltx.FormatFilename(f.MinTXID, f.MaxTXID), ltx.FormatFilename(l1[i-1].MinTXID, l1[i-1].MaxTXID))
		}
	}
	if last := l1[len(l1)-1].MaxTXID; last != h.db.Pos() {
		t.Fatalf("level 1 ends at %s, want %s", last, h.db.Pos())
	}
	checkRestorePoints(t, h, 0)
}

// TestRestoreRejectsOverlapsAndUnknownLevels: files that overlap in a
// level are reported by validation, and restore names the missing middle
// file of a broken chain.
func TestRestoreRejectsOverlapsAndUnknownLevels(t *testing.T) {
	h := newHarness(t, 4096, nil)
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	for i := 0; i < 4; i++ {
		insertRows(t, h, 5)
		h.sync()
	}
	ctx := context.Background()
	// An overlapping level-1 pair.
	for _, r := range [][2]ltx.TXID{{1, 3}, {2, 4}} {
		if _, err := h.client.WriteLTXFile(ctx, 1, r[0], r[1], bytesReader(newTinyLTX(t, r[0], r[1]))); err != nil {
			t.Fatal(err)
		}
	}
	problems, err := litestream.ValidateLevels(ctx, h.client)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) == 0 || !strings.Contains(problems[0].Error(), "overlaps") {
		t.Fatalf("overlap not reported: %v", problems)
	}
	if _, err := h.db.Replica.Compact(ctx, 0); err == nil || !strings.Contains(err.Error(), "invalid level") {
		t.Fatalf("compact level 0: %v", err)
	}
	if _, err := h.db.Replica.Compact(ctx, 9); err == nil || !strings.Contains(err.Error(), "invalid level") {
		t.Fatalf("compact level 9: %v", err)
	}
}
