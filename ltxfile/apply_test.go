package ltxfile_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream/ltxfile"
)

// memFile is a PageWriter holding the database in memory and recording
// every write.
type memFile struct {
	mu      sync.Mutex
	data    []byte
	writes  []write
	failAt  int  // fail the write with this index (1-based); 0 never
	discard bool // record writes only, for sparse offsets
}

type write struct{ off, n int64 }

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes = append(m.writes, write{off, int64(len(p))})
	if len(m.writes) == m.failAt {
		return 0, errors.New("disk full")
	}
	if m.discard {
		return len(p), nil
	}
	if end := off + int64(len(p)); end > int64(len(m.data)) {
		m.data = append(m.data, make([]byte, end-int64(len(m.data)))...)
	}
	copy(m.data[off:], p)
	return len(p), nil
}

// naive applies files one after another, page by page: the reference
// the merge must agree with.
func naive(t *testing.T, files [][]byte) []byte {
	t.Helper()
	var db []byte
	for _, f := range files {
		dec := ltx.NewDecoder(bytes.NewReader(f))
		if err := dec.DecodeHeader(); err != nil {
			t.Fatal(err)
		}
		hdr := dec.Header()
		buf := make([]byte, hdr.PageSize)
		for {
			var ph ltx.PageHeader
			if err := dec.DecodePage(&ph, buf); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			off := int(ph.Pgno-1) * int(hdr.PageSize)
			if end := off + len(buf); end > len(db) {
				db = append(db, make([]byte, end-len(db))...)
			}
			copy(db[off:], buf)
		}
		db = db[:int(hdr.Commit)*int(hdr.PageSize)]
	}
	return db
}

// randomChain is a snapshot of n pages and increments rewriting random
// page sets, the last one shrinking the database by a few pages.
func randomChain(t *testing.T, n uint32, increments int) [][]byte {
	rng := rand.New(rand.NewPCG(3, 4))
	files := [][]byte{encodeFile(t, 1, 1, 1, n, pageRange(1, n))}
	for i := 0; i < increments; i++ {
		commit := n
		if i == increments-1 {
			commit = n - 5
		}
		var pgnos []uint32
		for p := uint32(1); p <= commit; p++ {
			if rng.IntN(4) == 0 {
				pgnos = append(pgnos, p)
			}
		}
		files = append(files, encodeFile(t, uint64(i+2), ltx.TXID(i+2), ltx.TXID(i+2), commit, pgnos))
	}
	return files
}

func named(files [][]byte) []ltxfile.Input {
	in := inputs(files)
	for i := range in {
		in[i].Name = fmt.Sprintf("file %d", i)
	}
	return in
}

// TestApplyMatchesNaive: the merge of a chain longer than one group of
// open files gives the same bytes as applying the files one by one,
// through run-gathering and one-page writers alike.
func TestApplyMatchesNaive(t *testing.T) {
	files := randomChain(t, 300, 36)
	want := naive(t, files)
	for _, runs := range []bool{true, false} {
		t.Run(fmt.Sprintf("runs=%v", runs), func(t *testing.T) {
			m := &memFile{}
			var w ltxfile.PageWriter = m
			if runs {
				w = ltxfile.Runs(m)
			}
			res, err := ltxfile.Apply(w, named(files))
			if err != nil {
				t.Fatal(err)
			}
			if res.Commit != 295 || res.MaxTXID != 37 {
				t.Fatalf("commit %d, max TXID %s", res.Commit, res.MaxTXID)
			}
			if !bytes.Equal(m.data[:len(want)], want) {
				t.Fatal("merged database differs from applying the files one by one")
			}
			for _, wr := range m.writes {
				if wr.off%benchPageSize != 0 || wr.n%benchPageSize != 0 || wr.n == 0 {
					t.Fatalf("write of %d bytes at %d is not whole pages", wr.n, wr.off)
				}
				if !runs && wr.n != benchPageSize {
					t.Fatalf("one-page writer got %d bytes in one write", wr.n)
				}
				if wr.n > 256<<10 {
					t.Fatalf("write of %d bytes exceeds the 256 KiB run bound", wr.n)
				}
			}
			for i := 1; runs && i < len(m.writes); i++ {
				prev := m.writes[i-1]
				if prev.off+prev.n == m.writes[i].off && prev.n < 256<<10 {
					t.Fatalf("writes %d and %d are consecutive: the run was not gathered", i-1, i)
				}
			}
			t.Logf("%d pages in %d writes", res.Pages, len(m.writes))
		})
	}
}

// TestApplySkipsLockPage: pages on both sides of the lock page are
// written as separate runs and the lock page itself never is.
func TestApplySkipsLockPage(t *testing.T) {
	lock := ltx.LockPgno(benchPageSize)
	files := [][]byte{encodeFile(t, 1, 2, 2, lock+2, []uint32{lock - 2, lock - 1, lock + 1, lock + 2})}
	m := &memFile{discard: true}
	_, err := ltxfile.Apply(ltxfile.Runs(m), named(files))
	if !errors.Is(err, ltxfile.ErrIncomplete) { // no snapshot: pages 1.. are missing
		t.Fatalf("got %v, want ErrIncomplete", err)
	}
	lockOff := int64(lock-1) * benchPageSize
	if len(m.writes) != 2 {
		t.Fatalf("%d writes, want 2 runs around the lock page: %v", len(m.writes), m.writes)
	}
	for _, wr := range m.writes {
		if wr.off <= lockOff && lockOff < wr.off+wr.n {
			t.Fatalf("write at %d of %d bytes covers the lock page", wr.off, wr.n)
		}
	}
}

// trackedReader records reads after Close, which would be a race
// between the merge's cleanup and a decoding goroutine.
type trackedReader struct {
	r                *bytes.Reader
	mu               sync.Mutex
	closed, lateRead bool
}

func (t *trackedReader) Read(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		t.lateRead = true
		return 0, errors.New("read after close")
	}
	return t.r.Read(p)
}

func (t *trackedReader) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	return nil
}

func tracked(files [][]byte) ([]ltxfile.Input, *[]*trackedReader) {
	in := named(files)
	var readers []*trackedReader
	var mu sync.Mutex
	for i, f := range files {
		in[i].Open = func() (io.ReadCloser, error) {
			r := &trackedReader{r: bytes.NewReader(f)}
			mu.Lock()
			readers = append(readers, r)
			mu.Unlock()
			return r, nil
		}
	}
	return in, &readers
}

func checkClosed(t *testing.T, readers []*trackedReader) {
	t.Helper()
	for i, r := range readers {
		r.mu.Lock()
		closed, late := r.closed, r.lateRead
		r.mu.Unlock()
		if !closed || late {
			t.Fatalf("reader %d: closed %v, read after close %v", i, closed, late)
		}
	}
}

// TestApplyWriteErrorStopsDecoding: a failed write ends the apply with
// the page range in the error, and every input is closed only after its
// decoding goroutine has stopped reading it.
func TestApplyWriteErrorStopsDecoding(t *testing.T) {
	files := randomChain(t, 2000, 5)
	in, readers := tracked(files)
	m := &memFile{failAt: 2}
	_, err := ltxfile.Apply(ltxfile.Runs(m), in)
	if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), "write pages") {
		t.Fatalf("got %v, want the write error with its pages", err)
	}
	checkClosed(t, *readers)
}

// TestApplyCorruptFileNamed: a damaged page or checksum in one file of
// the chain fails the apply with that file's name.
func TestApplyCorruptFileNamed(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   func(f []byte) int // offset of the byte to flip
	}{
		{"page data", func(f []byte) int { return ltx.HeaderSize + 200 }},
		{"trailer checksum", func(f []byte) int { return len(f) - 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := randomChain(t, 600, 4)
			bad := bytes.Clone(files[3])
			bad[tc.at(bad)] ^= 0x55
			files[3] = bad
			in, readers := tracked(files)
			_, err := ltxfile.Apply(ltxfile.Runs(&memFile{}), in)
			if err == nil || !strings.Contains(err.Error(), "file 3") {
				t.Fatalf("got %v, want an error naming file 3", err)
			}
			checkClosed(t, *readers)
		})
	}
}

// TestApplyProgress: progress grows, comes every few hundred pages and
// ends at the database size.
func TestApplyProgress(t *testing.T) {
	files := randomChain(t, 3000, 3)
	var calls []int64
	res, err := ltxfile.ApplyWithProgress(ltxfile.Runs(&memFile{}), named(files), func(written int64, total uint32) {
		if total != 2995 {
			t.Errorf("total %d", total)
		}
		calls = append(calls, written)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) < 5 || calls[len(calls)-1] != res.Pages {
		t.Fatalf("progress calls %v, pages %d", calls, res.Pages)
	}
	for i := 1; i < len(calls); i++ {
		if calls[i] < calls[i-1] || calls[i]-calls[i-1] > 512 {
			t.Fatalf("progress steps %v", calls)
		}
	}
}

// TestCompactMatchesApply: compaction, which shares the merge, gives a
// file that applies to the same bytes as the chain.
func TestCompactMatchesApply(t *testing.T) {
	files := randomChain(t, 500, 6)
	var out bytes.Buffer
	if _, err := ltxfile.Compact(&out, named(files)); err != nil {
		t.Fatal(err)
	}
	if _, err := ltxfile.Verify(bytes.NewReader(out.Bytes())); err != nil {
		t.Fatal(err)
	}
	m := &memFile{}
	if _, err := ltxfile.Apply(m, named([][]byte{out.Bytes()})); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.data, naive(t, files)) {
		t.Fatal("compacted file differs from the chain")
	}
}

// TestApplyToFile: applying to a real file, large enough that writeback
// is started along the way, gives the chain's bytes.
func TestApplyToFile(t *testing.T) {
	files := randomChain(t, 2600, 2) // > 8 MiB written
	f, err := os.Create(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := ltxfile.Apply(ltxfile.Runs(f), named(files))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(res.Commit) * benchPageSize); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, naive(t, files)) {
		t.Fatal("file differs from the chain")
	}
}
