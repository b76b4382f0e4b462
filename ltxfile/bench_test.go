package ltxfile_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream/ltxfile"
)

const benchPageSize = 4096

// benchPage fills buf like a SQLite table page: three quarters random
// bytes (row data), the rest zeros (free space), so LZ4 does real work.
func benchPage(rng *rand.Rand, buf []byte) {
	fill := len(buf) * 3 / 4
	for i := 0; i+8 <= fill; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8; j++ {
			buf[i+j] = byte(v >> (8 * j))
		}
	}
	clear(buf[fill:])
}

// encodeFile returns an LTX file with the given pages.
func encodeFile(tb testing.TB, seed uint64, minTXID, maxTXID ltx.TXID, commit uint32, pgnos []uint32) []byte {
	tb.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	var buf bytes.Buffer
	hdr := ltxfile.Header(benchPageSize, commit, minTXID, maxTXID, time.UnixMilli(1e12+int64(maxTXID)))
	if _, err := ltxfile.Encode(&buf, hdr, pgnos, func(_ uint32, b []byte) error { benchPage(rng, b); return nil }); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func pageRange(from, to uint32) []uint32 {
	var p []uint32
	for i := from; i <= to; i++ {
		p = append(p, i)
	}
	return p
}

// chain is a snapshot of n pages followed by incremental files, each
// rewriting a sliding window of pages, as levels 0-2 look after a day of
// writes.
func chain(tb testing.TB, n uint32, increments int, window uint32) [][]byte {
	files := [][]byte{encodeFile(tb, 1, 1, 1, n, pageRange(1, n))}
	for i := 0; i < increments; i++ {
		from := uint32(i)*window%n + 1
		files = append(files, encodeFile(tb, uint64(i+2), ltx.TXID(i+2), ltx.TXID(i+2), n, pageRange(from, min(from+window-1, n))))
	}
	return files
}

func inputs(files [][]byte) []ltxfile.Input {
	in := make([]ltxfile.Input, len(files))
	for i, f := range files {
		in[i] = ltxfile.Input{Name: "bench", Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(f)), nil }}
	}
	return in
}

// BenchmarkEncode measures writing a level-0 file: LZ4 per page, the
// page index and the checksum, for a sync of 1024 pages (4 MiB).
func BenchmarkEncode(b *testing.B) {
	const pages = 1024
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([][]byte, pages+1)
	for i := range data {
		data[i] = make([]byte, benchPageSize)
		benchPage(rng, data[i])
	}
	pgnos := pageRange(1, pages)
	hdr := ltxfile.Header(benchPageSize, pages, 1, 1, time.UnixMilli(1e12))
	read := func(pgno uint32, buf []byte) error { copy(buf, data[pgno]); return nil }
	b.ReportAllocs()
	b.SetBytes(pages * benchPageSize)
	for b.Loop() {
		if _, err := ltxfile.Encode(io.Discard, hdr, pgnos, read); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompact measures merging 16 overlapping files (level 0 into
// level 1): decode, k-way merge, re-encode.
func BenchmarkCompact(b *testing.B) {
	files := make([][]byte, 16)
	var total int64
	for i := range files {
		from := uint32(i*64 + 1)
		files[i] = encodeFile(b, uint64(i), ltx.TXID(i+2), ltx.TXID(i+2), 4096, pageRange(from, from+255))
		total += 256 * benchPageSize
	}
	in := inputs(files)
	b.ReportAllocs()
	b.SetBytes(total)
	for b.Loop() {
		if _, err := ltxfile.Compact(io.Discard, in); err != nil {
			b.Fatal(err)
		}
	}
}

// discardPages is a PageWriter that only counts.
type discardPages struct{ n int64 }

func (d *discardPages) WriteAt(p []byte, _ int64) (int, error) {
	d.n += int64(len(p))
	return len(p), nil
}

// BenchmarkApply measures restoring a 64 MiB database from a snapshot
// and 8 incremental files, pages written to a discarding writer, so the
// figure is decoding and merging alone.
func BenchmarkApply(b *testing.B) {
	const pages = 16384
	files := chain(b, pages, 8, 1024)
	in := inputs(files)
	b.ReportAllocs()
	b.SetBytes(pages * benchPageSize)
	for b.Loop() {
		w := &discardPages{}
		res, err := ltxfile.Apply(w, in)
		if err != nil {
			b.Fatal(err)
		}
		if res.Commit != pages {
			b.Fatalf("commit %d", res.Commit)
		}
	}
}
