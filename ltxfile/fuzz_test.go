package ltxfile_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/sqlitebackup/litestream/ltxfile"
)

// discardAt accepts page writes without keeping them, so a hostile commit
// size cannot make the test allocate.
type discardAt struct{ n int }

func (d *discardAt) WriteAt(p []byte, off int64) (int, error) { d.n++; return len(p), nil }

// FuzzApply feeds arbitrary bytes to the LTX reading path (header, page
// frames of both encodings, index, trailer, checksum): no panic, no huge
// allocation, and anything accepted must be a complete chain.
func FuzzApply(f *testing.F) {
	seeds, _ := filepath.Glob("../testdata/upstream-replicas/legacy-v0.5.15-lz4-frame/replica/ltx/*/*.ltx")
	more, _ := filepath.Glob("../testdata/upstream-replicas/pagesize-4096-wal-restarts/replica/ltx/0/*.ltx")
	for _, p := range append(seeds[:min(4, len(seeds))], more[:min(3, len(more))]...) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := ltxfile.Input{Name: "fuzz", Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
		res, err := ltxfile.Apply(&discardAt{}, []ltxfile.Input{in})
		if err != nil {
			return
		}
		if res.Commit == 0 && res.Pages != 0 {
			t.Fatalf("wrote %d pages for an empty database", res.Pages)
		}
		if _, err := ltxfile.Verify(bytes.NewReader(b)); err != nil {
			t.Fatalf("Apply accepted a file Verify rejects: %v", err)
		}
	})
}
