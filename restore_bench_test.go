package litestream_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/file"
	"github.com/sqlitebackup/litestream/ltxfile"
)

// BenchmarkRestore measures a whole restore from a file replica: plan,
// open, decode and merge a snapshot of 64 MiB plus 8 incremental files,
// write, fsync and rename the output.
func BenchmarkRestore(b *testing.B) {
	const pageSize, pages = 4096, 16384
	ctx := context.Background()
	client := file.NewReplicaClient(filepath.Join(b.TempDir(), "replica"))
	rng := rand.New(rand.NewPCG(7, 7))
	page := func(_ uint32, buf []byte) error {
		for i := 0; i+8 <= len(buf)*3/4; i += 8 { // 3/4 row data, 1/4 free space
			v := rng.Uint64()
			for j := range 8 {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		clear(buf[len(buf)*3/4:])
		return nil
	}
	put := func(level int, minTXID, maxTXID ltx.TXID, from, to uint32) {
		var pgnos []uint32
		for p := from; p <= to; p++ {
			pgnos = append(pgnos, p)
		}
		var buf bytes.Buffer
		hdr := ltxfile.Header(pageSize, pages, minTXID, maxTXID, time.Now())
		if _, err := ltxfile.Encode(&buf, hdr, pgnos, page); err != nil {
			b.Fatal(err)
		}
		if _, err := client.WriteLTXFile(ctx, level, minTXID, maxTXID, &buf); err != nil {
			b.Fatal(err)
		}
	}
	put(litestream.SnapshotLevel, 1, 1, 1, pages)
	for i := 0; i < 8; i++ {
		from := uint32(i*1024 + 1)
		put(0, ltx.TXID(i+2), ltx.TXID(i+2), from, from+1023)
	}
	out := filepath.Join(b.TempDir(), "restored.db")
	b.ReportAllocs()
	b.SetBytes(pages * pageSize)
	for b.Loop() {
		res, err := litestream.Restore(ctx, client, litestream.RestoreOptions{OutputPath: out})
		if err != nil {
			b.Fatal(err)
		}
		if res.Commit != pages || res.Files != 9 {
			b.Fatalf("restored %d pages from %d files", res.Commit, res.Files)
		}
		if err := os.Remove(out); err != nil {
			b.Fatal(err)
		}
	}
}
