package litestream_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sqlitebackup/litestream"
)

func TestVerify(t *testing.T) {
	h := newHarness(t, 4096, nil)
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	for i := 0; i < 4; i++ {
		insertRows(t, h, 10)
		h.sync()
	}
	if _, err := h.db.Replica.Compact(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rep, err := litestream.Verify(ctx, h.client, litestream.VerifyOptions{Full: true, DBPath: h.dbPath})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.IntegrityCheck != "ok" || rep.LatestTXID != h.db.Pos() || !strings.HasPrefix(rep.LiveComparison, "identical") {
		t.Fatalf("healthy replica: %+v", rep)
	}

	// Corrupt one file: the report names it.
	p := filepath.Join(h.dir, "replica", "ltx", "0", "0000000000000002-0000000000000002.ltx")
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 0xff
	os.WriteFile(p, b, 0o644)
	rep, err = litestream.Verify(ctx, h.client, litestream.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || !strings.Contains(strings.Join(rep.Problems, "\n"), "0000000000000002-0000000000000002.ltx") {
		t.Fatalf("corrupt file not reported: %+v", rep.Problems)
	}

	// A gap in level 0 is reported too.
	os.Remove(filepath.Join(h.dir, "replica", "ltx", "0", "0000000000000003-0000000000000003.ltx"))
	rep, _ = litestream.Verify(ctx, h.client, litestream.VerifyOptions{})
	if !strings.Contains(strings.Join(rep.Problems, "\n"), "gap") {
		t.Fatalf("gap not reported: %+v", rep.Problems)
	}
}
