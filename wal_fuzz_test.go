package litestream

import (
	"bytes"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"
)

// realWAL returns the WAL of a small database with a few commits.
func realWAL(f *testing.F) []byte {
	f.Helper()
	dir := f.TempDir()
	path := filepath.Join(dir, "seed.db")
	db, err := sql.Open("sqlite", path+"?_pragma=journal_mode(wal)&_pragma=wal_autocheckpoint(0)&_pragma=page_size(512)")
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{"CREATE TABLE t (x)", "INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (randomblob(900))"} {
		if _, err := db.Exec(q); err != nil {
			f.Fatal(err)
		}
	}
	b, err := os.ReadFile(path + "-wal")
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzScanWAL feeds arbitrary bytes to the WAL reader: it must never
// panic, and what it accepts must be consistent.
func FuzzScanWAL(f *testing.F) {
	wal := realWAL(f)
	f.Add(wal)
	f.Add(wal[:len(wal)/2])
	f.Add(wal[:WALHeaderSize])
	corrupt := bytes.Clone(wal)
	corrupt[len(corrupt)-7] ^= 1
	f.Add(corrupt)
	f.Fuzz(func(t *testing.T, b []byte) {
		hdr, err := parseWALHeaderBytes(b)
		if err != nil {
			return
		}
		seg, err := scanWAL(bytes.NewReader(b), int64(len(b)), hdr, WALHeaderSize, hdr.checksum, 0)
		if err != nil {
			t.Fatal(err)
		}
		if seg.end > int64(len(b)) || (seg.end-WALHeaderSize)%hdr.frameSize() != 0 {
			t.Fatalf("segment end %d outside %d bytes or off a frame boundary", seg.end, len(b))
		}
		for pgno, off := range seg.pages {
			if pgno == 0 || pgno > seg.commit || off < WALHeaderSize || off+hdr.frameSize() > seg.end {
				t.Fatalf("page %d at offset %d outside the committed segment", pgno, off)
			}
		}
	})
}

func parseWALHeaderBytes(b []byte) (walHeader, error) {
	if len(b) < WALHeaderSize {
		return walHeader{}, errWALHeader
	}
	return parseWALHeader(b[:WALHeaderSize])
}
