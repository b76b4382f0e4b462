// Package replicatest is the conformance suite for litestream.ReplicaClient
// implementations. Every backend in this repository runs it, and a third
// party's backend can run it in one line from its own test:
//
//	func TestConformance(t *testing.T) {
//		replicatest.RunConformance(t, func(t *testing.T) litestream.ReplicaClient {
//			return mybackend.NewReplicaClient(t.TempDir()) // fresh and empty on every call
//		})
//	}
//
// The suite checks the contract stated in docs/REPLICA_CLIENT.md with real
// LTX files (see NewLTXFile), and verifies that every file read back decodes
// with ltx.NewDecoder(...).Verify().
//
// Missing files: the suite accepts an error wrapping os.ErrNotExist either
// from OpenLTXFile itself or from the first Read of the reader it returned,
// and logs a note for the latter. Open is preferred: the engine then learns
// about the gap before it starts a restore.
package replicatest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
)

const (
	// subtestTimeout bounds each subtest, so a hung backend fails with a
	// message instead of stalling until go test's own timeout.
	subtestTimeout = 5 * time.Minute

	// promptly is how soon a call with a cancelled context must return.
	promptly = 10 * time.Second

	// writeParallelism bounds concurrent writes in the bulk subtests.
	writeParallelism = 16

	// paginationFiles is above the 1,000-key pages of S3 and most object
	// stores, so listing has to follow continuation tokens twice.
	paginationFiles = 2500

	// largeFilePages gives a 24 MiB file of incompressible pages: above
	// the multipart thresholds of the S3, GCS and Azure SDKs.
	largeFilePages = 24 << 20 / PageSize
)

// NewClientFunc returns a fresh client with no files in it, every call a
// different one (for example a unique key prefix or directory), and
// registers the client's cleanup with t.Cleanup.
type NewClientFunc = func(t *testing.T) litestream.ReplicaClient

// RunConformance runs the whole suite. Each subtest gets its own client from
// newClient, so subtests never see each other's files.
func RunConformance(t *testing.T, newClient NewClientFunc) {
	t.Helper()
	subtests := []struct {
		name string
		run  func(t *testing.T, newClient NewClientFunc)
	}{
		{"WriteListRead", testWriteListRead},
		{"RangeRead", testRangeRead},
		{"Delete", testDelete},
		{"DeleteAll", testDeleteAll},
		{"ListOrderAndPagination", testPagination},
		{"Seek", testSeek},
		{"Timestamps", testTimestamps},
		{"MissingFile", testMissingFile},
		{"RewriteSameFile", testRewrite},
		{"WriteInProgressInvisible", testWriteInProgress},
		{"ConcurrentWriters", testConcurrentWriters},
		{"LargeFile", testLargeFile},
		{"ContextCancellation", testContextCancellation},
	}
	for _, st := range subtests {
		t.Run(st.name, func(t *testing.T) { st.run(t, newClient) })
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), subtestTimeout)
	t.Cleanup(cancel)
	return ctx
}

// ts is a fixed, millisecond-precise timestamp well in the past, so a
// backend that reports its own upload time instead of the header's is caught.
var ts = time.Date(2024, time.March, 4, 5, 6, 7, 891_000_000, time.UTC)

func infoOf(level int, data []byte) *ltx.FileInfo {
	hdr := header(data)
	return &ltx.FileInfo{Level: level, MinTXID: hdr.MinTXID, MaxTXID: hdr.MaxTXID,
		Size: int64(len(data)), CreatedAt: time.UnixMilli(hdr.Timestamp)}
}

// testWriteListRead: files written to several levels are listed in their
// own level only, with the right sizes, and read back byte for byte.
func testWriteListRead(t *testing.T, newClient NewClientFunc) {
	ctx := testContext(t)
	c := newClient(t)
	if c.Type() == "" {
		t.Fatal("Type() is empty")
	}
	checkList(t, ctx, c, 0, 0, false, nil) // a new replica has no level dirs: empty, not an error

	l0a := NewLTXFile(1, 1, ts, 2)
	l0b := NewLTXFile(2, 3, ts.Add(time.Second), 3)
	l1 := NewLTXFile(1, 3, ts.Add(time.Second), 3)
	snap := NewLTXFile(1, 3, ts.Add(2*time.Second), 3)
	mustWrite(t, ctx, c, 0, l0b) // out of order on purpose
	mustWrite(t, ctx, c, 0, l0a)
	mustWrite(t, ctx, c, 1, l1)
	mustWrite(t, ctx, c, litestream.SnapshotLevel, snap)

	checkList(t, ctx, c, 0, 0, false, []*ltx.FileInfo{infoOf(0, l0a), infoOf(0, l0b)})
	checkList(t, ctx, c, 1, 0, false, []*ltx.FileInfo{infoOf(1, l1)})
	checkList(t, ctx, c, litestream.SnapshotLevel, 0, false, []*ltx.FileInfo{infoOf(litestream.SnapshotLevel, snap)})
	checkList(t, ctx, c, 2, 0, false, nil)
	checkRead(t, ctx, c, 0, l0a)
	checkRead(t, ctx, c, 0, l0b)
	checkRead(t, ctx, c, 1, l1)
	checkRead(t, ctx, c, litestream.SnapshotLevel, snap)
}

// testRangeRead: offset and size select a byte range; size 0 means to the
// end, and a size reaching past the end stops at the end.
func testRangeRead(t *testing.T, newClient NewClientFunc) {
	ctx := testContext(t)
	c := newClient(t)
	data := NewLTXFile(5, 7, ts, 8)
	mustWrite(t, ctx, c, 0, data)
	n := int64(len(data))
	for _, r := range []struct{ offset, size, from, to int64 }{
		{0, 0, 0, n},
		{0, n, 0, n},
		{0, 10, 0, 10},
		{100, 0, 100, n},
		{100, 50, 100, 150},
		{PageSize + 7, 2 * PageSize, PageSize + 7, 3*PageSize + 7},
		{n - 1, 0, n - 1, n},
		{n - 1, 1, n - 1, n},
		{n - 10, 100, n - 10, n}, // past the end: truncated, not an error
	} {
		got, err := read(ctx, c, 0, 5, 7, r.offset, r.size)
		if err != nil {
			t.Fatal(err)
		}
		if want := data[r.from:r.to]; !bytes.Equal(got, want) {
			t.Fatalf("OpenLTXFile(offset %d, size %d): got %d bytes, want bytes %d..%d (%d bytes); first difference at %d",
				r.offset, r.size, len(got), r.from, r.to, len(want), firstDiff(got, want))
		}
	}
}

// testDelete: DeleteLTXFiles removes exactly the named files, addressed by
// level and TXIDs alone; missing files are not an error.
func testDelete(t *testing.T, newClient NewClientFunc) {
	ctx := testContext(t)
	c := newClient(t)
	f1, f2, f3 := NewLTXFile(1, 1, ts, 1), NewLTXFile(2, 2, ts, 1), NewLTXFile(3, 3, ts, 1)
	l1 := NewLTXFile(1, 3, ts, 1)
	for _, f := range [][]byte{f1, f2, f3} {
		mustWrite(t, ctx, c, 0, f)
	}
	mustWrite(t, ctx, c, 1, l1)

	key := func(level int, minTXID, maxTXID ltx.TXID) *ltx.FileInfo {
		return &ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID} // no size, no time
	}
	if err := c.DeleteLTXFiles(ctx, []*ltx.FileInfo{key(0, 2, 2), key(0, 9, 9), key(1, 1, 3)}); err != nil {
		t.Fatalf("DeleteLTXFiles (one of them missing): %v", err)
	}
	checkList(t, ctx, c, 0, 0, false, []*ltx.FileInfo{infoOf(0, f1), infoOf(0, f3)})
	checkList(t, ctx, c, 1, 0, false, nil)
	checkMissing(t, ctx, c, 0, 2, 2, 0, 0)
	checkMissing(t, ctx, c, 1, 1, 3, 0, 0)
	checkRead(t, ctx, c, 0, f1)
	checkRead(t, ctx, c, 0, f3)

	for _, a := range [][]*ltx.FileInfo{
		{key(0, 2, 2)}, // already deleted
		{key(5, 1, 1)}, // a level that never existed
		{},
		nil,
	} {
		if err := c.DeleteLTXFiles(ctx, a); err != nil {
			t.Fatalf("DeleteLTXFiles(%s) of missing files: %v", names(a), err)
		}
	}
}

// testDeleteAll: DeleteAll empties every level of this replica, leaves
// other replicas alone, is not an error on an empty replica, and the
// replica stays usable.
func testDeleteAll(t *testing.T, newClient NewClientFunc) {
	ctx := testContext(t)
	c, other := newClient(t), newClient(t)
	levels := []int{0, 1, 2, litestream.SnapshotLevel}
	for i, level := range levels {
		mustWrite(t, ctx, c, level, NewLTXFile(1, ltx.TXID(i+1), ts, 1))
	}
	keep := NewLTXFile(1, 1, ts, 1)
	mustWrite(t, ctx, other, 0, keep)

	if err := c.DeleteAll(ctx); err != nil {
		t.Fatalf("DeleteAll: %v", err)
	}
	for _, level := range levels {
		checkList(t, ctx, c, level, 0, false, nil)
	}
	checkMissing(t, ctx, c, 0, 1, 1, 0, 0)
	checkList(t, ctx, other, 0, 0, false, []*ltx.FileInfo{infoOf(0, keep)})
	checkRead(t, ctx, other, 0, keep)

	if err := c.DeleteAll(ctx); err != nil {
		t.Fatalf("DeleteAll of an empty replica: %v", err)
	}
	again := NewLTXFile(7, 7, ts, 1)
	mustWrite(t, ctx, c, 0, again)
	checkList(t, ctx, c, 0, 0, false, []*ltx.FileInfo{infoOf(0, again)})
	checkRead(t, ctx, c, 0, again)
}

// testPagination: 2,500 files in one level come back complete and in
// ascending order, also from seek points in later pages, and an iterator
// closed half-way is fine.
func testPagination(t *testing.T, newClient NewClientFunc) {
	ctx := testContext(t)
	c := newClient(t)
	const level = 1
	want := make([]*ltx.FileInfo, paginationFiles)
	// TXIDs step by 7 and cross several hex-digit boundaries, so an order
	// that compares numbers as unpadded text would show.
	txids := func(i int) (ltx.TXID, ltx.TXID) {
		minTXID := ltx.TXID(i*7 + 1)
		return minTXID, minTXID + ltx.TXID(i%3)
	}
	start := time.Now()
	err := parallel(paginationFiles, writeParallelism, func(i int) error {
		minTXID, maxTXID := txids(i)
		data := NewLTXFile(minTXID, maxTXID, ts, 1)
		want[i] = infoOf(level, data)
		_, err := writeFile(ctx, c, level, data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %d files in %s", paginationFiles, time.Since(start).Round(time.Millisecond))

	checkList(t, ctx, c, level, 0, false, want)
	// Each listing costs seconds on a slow server: two seeks, one at the
	// first key of the second 1,000-key page, one between two files.
	first, _ := txids(1000)
	checkList(t, ctx, c, level, first, false, want[1000:])
	between, _ := txids(2345)
	checkList(t, ctx, c, level, between+1, false, want[2346:])
	checkList(t, ctx, c, 0, 0, false, nil)
	checkList(t, ctx, c, 2, 0, false, nil)

	itr, err := c.LTXFiles(ctx, level, 0, false)
	if err != nil {
		t.Fatalf("LTXFiles: %v", err)
	}
	for i := 0; i < 10 && itr.Next(); i++ {
	}
	if err := itr.Close(); err != nil {
		t.Fatalf("closing an iterator half-way: %v", err)
	}
}

// testSeek: LTXFiles(level, seek) returns every file of that level whose
// MinTXID >= seek, and nothing from other levels.
func testSeek(t *testing.T, newClient NewClientFunc) {
	ctx := testContext(t)
	c := newClient(t)
	l0 := [][]byte{
		NewLTXFile(1, 1, ts, 1), NewLTXFile(2, 5, ts, 1), NewLTXFile(6, 6, ts, 1),
		NewLTXFile(7, 10, ts, 1), NewLTXFile(11, 11, ts, 1),
	}
	l1 := [][]byte{NewLTXFile(1, 5, ts, 1), NewLTXFile(6, 10, ts, 1), NewLTXFile(11, 20, ts, 1)}
	for _, f := range l0 {
		mustWrite(t, ctx, c, 0, f)
	}
	for _, f := range l1 {
		mustWrite(t, ctx, c, 1, f)
	}
	infos := func(level int, files [][]byte) []*ltx.FileInfo {
		a := make([]*ltx.FileInfo, len(files))
		for i, f := range files {
			a[i] = infoOf(level, f)
		}
		return a
	}
	for _, tc := range []struct {
		level int
		seek  ltx.TXID
		want  []*ltx.FileInfo
	}{
		{0, 0, infos(0, l0)},
		{0, 1, infos(0, l0)},
		{0, 2, infos(0, l0[1:])},
		{0, 3, infos(0, l0[2:])}, // 2-5 contains 3 but starts before it
		{0, 6, infos(0, l0[2:])}, // every later file, not only the one starting at 6
		{0, 7, infos(0, l0[3:])},
		{0, 11, infos(0, l0[4:])},
		{0, 12, nil},
		{0, 1 << 40, nil},
		{1, 0, infos(1, l1)},
		{1, 6, infos(1, l1[1:])},
		{1, 7, infos(1, l1[2:])},
		{1, 21, nil},
		{2, 0, nil},
	} {
		checkList(t, ctx, c, tc.level, tc.seek, false, tc.want)
	}
}

// testTimestamps: CreatedAt is the LTX header timestamp, to the
// millisecond, in WriteLTXFile's result and in listings with useMetadata.
func testTimestamps(t *testing.T, newClient NewClientFunc) {
	ctx := testContext(t)
	c := newClient(t)
	times := []time.Time{
		time.Date(2001, time.February, 3, 4, 5, 6, 789_000_000, time.UTC),
		time.Now().Add(-90 * time.Minute).In(time.FixedZone("UTC-7", -7*3600)),
		time.Date(2099, time.December, 31, 23, 59, 59, 1_000_000, time.UTC),
		ts.Add(-time.Millisecond), // the previous file's ms, not a rounded second
	}
	var want []*ltx.FileInfo
	for i, tm := range times {
		data := NewLTXFile(ltx.TXID(i+1), ltx.TXID(i+1), tm, 1)
		mustWrite(t, ctx, c, 0, data) // checks the returned CreatedAt
		want = append(want, infoOf(0, data))
	}
	checkList(t, ctx, c, 0, 0, true, want)
	checkList(t, ctx, c, 0, 3, true, want[2:])
}

// testMissingFile: a file that is not there gives an error wrapping
// os.ErrNotExist, whether its level exists or not.
func testMissingFile(t *testing.T, newClient NewClientFunc) {
	ctx := testContext(t)
	c := newClient(t)
	checkMissing(t, ctx, c, 0, 1, 1, 0, 0) // empty replica
	mustWrite(t, ctx, c, 0, NewLTXFile(1, 1, ts, 1))
	checkMissing(t, ctx, c, 0, 2, 2, 0, 0)    // level exists, file does not
	checkMissing(t, ctx, c, 0, 1, 2, 0, 0)    // same minTXID, other maxTXID
	checkMissing(t, ctx, c, 1, 1, 1, 0, 0)    // same name, other level
	checkMissing(t, ctx, c, 0, 2, 2, 10, 5)   // ranged
	checkMissing(t, ctx, c, 0, 2, 2, 4096, 0) // from an offset to the end
}

// testRewrite: writing the same file again (a retried upload) succeeds
// and leaves one file with those contents.
func testRewrite(t *testing.T, newClient NewClientFunc) {
	ctx := testContext(t)
	c := newClient(t)
	data := NewLTXFile(3, 4, ts, 2)
	mustWrite(t, ctx, c, 1, data)
	mustWrite(t, ctx, c, 1, data)
	checkList(t, ctx, c, 1, 0, false, []*ltx.FileInfo{infoOf(1, data)})
	checkRead(t, ctx, c, 1, data)
}

// testWriteInProgress: while a write is half-way (its reader paused), the
// file is neither listed nor readable; once it returns, it is both.
func testWriteInProgress(t *testing.T, newClient NewClientFunc) {
	ctx := testContext(t)
	c := newClient(t)
	before := NewLTXFile(1, 1, ts, 1)
	mustWrite(t, ctx, c, 0, before)

	data := NewLTXFile(2, 2, ts, 64)
	r := newPausingReader(ctx, data, len(data)/2)
	defer r.release()
	done := make(chan error, 1)
	go func() {
		_, err := c.WriteLTXFile(ctx, 0, 2, 2, r)
		done <- err
	}()
	select {
	case <-r.paused:
	case err := <-done:
		t.Fatalf("WriteLTXFile returned before reading the whole file: %v", err)
	case <-ctx.Done():
		t.Fatalf("WriteLTXFile never read half of the file: %v", ctx.Err())
	}
	checkList(t, ctx, c, 0, 0, true, []*ltx.FileInfo{infoOf(0, before)})
	checkMissing(t, ctx, c, 0, 2, 2, 0, 0)

	r.release()
	if err := <-done; err != nil {
		t.Fatalf("WriteLTXFile(level 0 file %s): %v", ltx.FormatFilename(2, 2), err)
	}
	checkList(t, ctx, c, 0, 0, true, []*ltx.FileInfo{infoOf(0, before), infoOf(0, data)})
	checkRead(t, ctx, c, 0, data)
}

// pausingReader delivers the first pauseAt bytes, then blocks until
// release (or until ctx is done) before delivering the rest.
type pausingReader struct {
	ctx         context.Context
	r           io.Reader
	pauseAt, n  int
	paused      chan struct{}
	resume      chan struct{}
	pauseOnce   sync.Once
	releaseOnce sync.Once
}

func newPausingReader(ctx context.Context, data []byte, pauseAt int) *pausingReader {
	return &pausingReader{ctx: ctx, r: bytes.NewReader(data), pauseAt: pauseAt,
		paused: make(chan struct{}), resume: make(chan struct{})}
}

func (p *pausingReader) Read(b []byte) (int, error) {
	if p.n < p.pauseAt {
		b = b[:min(len(b), p.pauseAt-p.n)]
		n, err := p.r.Read(b)
		p.n += n
		return n, err
	}
	p.pauseOnce.Do(func() { close(p.paused) })
	select {
	case <-p.resume:
	case <-p.ctx.Done():
		return 0, p.ctx.Err()
	}
	return p.r.Read(b)
}

func (p *pausingReader) release() { p.releaseOnce.Do(func() { close(p.resume) }) }

// testConcurrentWriters: one client, many goroutines writing different
// files while others list and read: every listed file is already complete
// (atomic visibility) and in the end all files are there, intact.
func testConcurrentWriters(t *testing.T, newClient NewClientFunc) {
	ctx := testContext(t)
	c := newClient(t)
	const writers, perWriter = 8, 10
	files := make(map[[2]int][]byte) // {level, minTXID} -> data
	var want [2][]*ltx.FileInfo
	for w := range writers {
		for k := range perWriter {
			level, minTXID := w%2, ltx.TXID(w*100+k+1)
			data := NewLTXFile(minTXID, minTXID, ts, 2+k%3)
			files[[2]int{level, int(minTXID)}] = data
			want[level] = append(want[level], infoOf(level, data))
		}
	}

	var done atomic.Bool
	var wg sync.WaitGroup
	var watchErr error
	wg.Go(func() { watchErr = watchListings(ctx, c, files, &done) })
	err := parallel(writers, writers, func(w int) error {
		for k := range perWriter {
			level, minTXID := w%2, w*100+k+1
			if _, err := writeFile(ctx, c, level, files[[2]int{level, minTXID}]); err != nil {
				return err
			}
		}
		return nil
	})
	done.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if watchErr != nil {
		t.Fatal(watchErr)
	}
	for level := range 2 {
		checkList(t, ctx, c, level, 0, false, want[level])
		for _, info := range want[level] {
			checkRead(t, ctx, c, level, files[[2]int{level, int(info.MinTXID)}])
		}
	}
}

// watchListings lists levels 0 and 1 until done (at most 500 rounds) and
// reads back every file the first time it shows up: a listed file must be
// whole.
func watchListings(ctx context.Context, c litestream.ReplicaClient, files map[[2]int][]byte, done *atomic.Bool) error {
	seen := make(map[[2]int]bool)
	for round := 0; round < 500 && !done.Load(); round++ {
		for level := range 2 {
			infos, err := list(ctx, c, level, 0, false)
			if err != nil {
				return fmt.Errorf("listing during concurrent writes: %w", err)
			}
			for _, info := range infos {
				k := [2]int{level, int(info.MinTXID)}
				data, ok := files[k]
				if !ok {
					return fmt.Errorf("listing during concurrent writes: unexpected %s", name(level, info.MinTXID, info.MaxTXID))
				}
				if seen[k] {
					continue
				}
				seen[k] = true
				if err := readBack(ctx, c, level, data); err != nil {
					return fmt.Errorf("a file listed during concurrent writes was not complete: %w", err)
				}
			}
		}
	}
	return nil
}

// testLargeFile: a 24 MiB file of incompressible pages, sent as a plain
// stream (multipart uploads for most object stores), reads back identical,
// also across part boundaries.
func testLargeFile(t *testing.T, newClient NewClientFunc) {
	ctx := testContext(t)
	c := newClient(t)
	data := largeFile()
	start := time.Now()
	mustWrite(t, ctx, c, litestream.SnapshotLevel, data)
	t.Logf("wrote %d bytes in %s", len(data), time.Since(start).Round(time.Millisecond))
	checkList(t, ctx, c, litestream.SnapshotLevel, 0, true, []*ltx.FileInfo{infoOf(litestream.SnapshotLevel, data)})

	rc, err := c.OpenLTXFile(ctx, litestream.SnapshotLevel, 1, 100, 0, 0)
	if err != nil {
		t.Fatalf("OpenLTXFile: %v", err)
	}
	defer rc.Close()
	h := sha256.New()
	if err := ltx.NewDecoder(io.TeeReader(rc, h)).Verify(); err != nil {
		t.Fatalf("large file read back does not decode: %v", err)
	}
	if n, err := io.Copy(h, rc); err != nil || n != 0 {
		t.Fatalf("after the trailer: %d more bytes, err %v", n, err)
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got, want := h.Sum(nil), sha256.Sum256(data); !bytes.Equal(got, want[:]) {
		t.Fatalf("large file read back differs from what was written (sha256 %x, want %x)", got, want)
	}

	for _, mib := range []int64{5, 8, 16} { // common part sizes
		off := mib<<20 - 100
		got, err := read(ctx, c, litestream.SnapshotLevel, 1, 100, off, 200)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data[off:off+200]) {
			t.Fatalf("range across %d MiB differs", mib)
		}
	}
}

// largeFile is built once per test binary: encoding 24 MiB takes seconds
// under the race detector, and a package may run the suite more than once
// (one S3 server after another).
var largeFile = sync.OnceValue(func() []byte { return NewLTXFile(1, 100, ts, largeFilePages) })

// testContextCancellation: every method fails promptly with an error
// wrapping context.Canceled when its context is cancelled, and a write
// cancelled half-way leaves no file behind.
func testContextCancellation(t *testing.T, newClient NewClientFunc) {
	ctx := testContext(t)
	c := newClient(t)
	existing := NewLTXFile(1, 1, ts, 1)
	mustWrite(t, ctx, c, 0, existing)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	calls := []struct {
		name string
		call func() error
	}{
		{"LTXFiles", func() error { _, err := list(cancelled, c, 0, 0, false); return err }},
		{"OpenLTXFile", func() error { _, err := read(cancelled, c, 0, 1, 1, 0, 0); return err }},
		{"WriteLTXFile", func() error { _, err := writeFile(cancelled, c, 0, NewLTXFile(2, 2, ts, 1)); return err }},
		{"DeleteLTXFiles", func() error { return c.DeleteLTXFiles(cancelled, []*ltx.FileInfo{infoOf(0, existing)}) }},
		{"DeleteAll", func() error { return c.DeleteAll(cancelled) }},
	}
	for _, call := range calls {
		start := time.Now()
		err := call.call()
		if took := time.Since(start); took > promptly {
			t.Errorf("%s with a cancelled context took %s", call.name, took.Round(time.Millisecond))
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: want an error wrapping context.Canceled, got %v", call.name, err)
		}
	}
	checkMissing(t, ctx, c, 0, 2, 2, 0, 0) // the cancelled write left nothing

	// Cancel in the middle of a write: the reader cancels after 64 KiB and
	// then keeps supplying data, so only the client can stop the upload.
	data := NewLTXFile(3, 3, ts, 256)
	writeCtx, cancelWrite := context.WithCancel(ctx)
	defer cancelWrite()
	r := &cancellingReader{r: bytes.NewReader(data), after: 64 << 10, cancel: cancelWrite}
	_, err := c.WriteLTXFile(writeCtx, 0, 3, 3, r)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("WriteLTXFile cancelled half-way: want an error wrapping context.Canceled, got %v", err)
	}
	if took := time.Since(r.cancelledAt()); took > promptly {
		t.Errorf("WriteLTXFile returned %s after its context was cancelled", took.Round(time.Millisecond))
	}
	checkMissing(t, ctx, c, 0, 3, 3, 0, 0)
	got, err := list(ctx, c, 0, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range got {
		if info.MinTXID != 1 {
			t.Fatalf("after cancelled writes the level lists %s, want only the file written before", names(got))
		}
	}
	checkRead(t, ctx, c, 0, existing)
}

// cancellingReader cancels its context once `after` bytes were read, and
// goes on returning data.
type cancellingReader struct {
	r      io.Reader
	after  int
	cancel context.CancelFunc
	mu     sync.Mutex
	n      int
	at     time.Time
}

func (r *cancellingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n += n
	if r.n >= r.after && r.at.IsZero() {
		r.at = time.Now()
		r.cancel()
	}
	return n, err
}

func (r *cancellingReader) cancelledAt() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.at.IsZero() {
		return time.Now() // never cancelled: the error check above has failed already
	}
	return r.at
}
