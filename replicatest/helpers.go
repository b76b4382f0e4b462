package replicatest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
)

// streamReader hides every interface but io.Reader (Seek, ReadAt, WriteTo,
// Len), so a backend sees a plain stream, as it does when the engine pipes
// a compaction straight into WriteLTXFile.
type streamReader struct{ r io.Reader }

func (s *streamReader) Read(p []byte) (int, error) { return s.r.Read(p) }

func name(level int, minTXID, maxTXID ltx.TXID) string {
	return fmt.Sprintf("level %d file %s", level, ltx.FormatFilename(minTXID, maxTXID))
}

func header(data []byte) ltx.Header {
	var hdr ltx.Header
	if err := hdr.UnmarshalBinary(data[:ltx.HeaderSize]); err != nil {
		panic(fmt.Sprintf("replicatest: test file has a bad header: %v", err))
	}
	return hdr
}

// writeFile writes data (an LTX file) to level and checks the FileInfo
// the client returns: level, TXIDs, size and CreatedAt = header timestamp.
func writeFile(ctx context.Context, c litestream.ReplicaClient, level int, data []byte) (*ltx.FileInfo, error) {
	hdr := header(data)
	n := name(level, hdr.MinTXID, hdr.MaxTXID)
	info, err := c.WriteLTXFile(ctx, level, hdr.MinTXID, hdr.MaxTXID, &streamReader{bytes.NewReader(data)})
	if err != nil {
		return nil, fmt.Errorf("WriteLTXFile(%s): %w", n, err)
	}
	if info == nil {
		return nil, fmt.Errorf("WriteLTXFile(%s) returned a nil FileInfo and no error", n)
	}
	want := &ltx.FileInfo{Level: level, MinTXID: hdr.MinTXID, MaxTXID: hdr.MaxTXID,
		Size: int64(len(data)), CreatedAt: time.UnixMilli(hdr.Timestamp)}
	if err := sameInfo(info, want, true); err != nil {
		return nil, fmt.Errorf("WriteLTXFile(%s) returned a wrong FileInfo: %w", n, err)
	}
	return info, nil
}

func mustWrite(t *testing.T, ctx context.Context, c litestream.ReplicaClient, level int, data []byte) *ltx.FileInfo {
	t.Helper()
	info, err := writeFile(ctx, c, level, data)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// sameInfo compares the fields a client must get right; CreatedAt only when
// checkTime is set (it is exact only with useMetadata), to the millisecond.
func sameInfo(got, want *ltx.FileInfo, checkTime bool) error {
	switch {
	case got.Level != want.Level:
		return fmt.Errorf("level %d, want %d", got.Level, want.Level)
	case got.MinTXID != want.MinTXID || got.MaxTXID != want.MaxTXID:
		return fmt.Errorf("TXIDs %s-%s, want %s-%s", got.MinTXID, got.MaxTXID, want.MinTXID, want.MaxTXID)
	case got.Size != want.Size:
		return fmt.Errorf("%s: size %d, want %d", name(want.Level, want.MinTXID, want.MaxTXID), got.Size, want.Size)
	case checkTime && got.CreatedAt.UnixMilli() != want.CreatedAt.UnixMilli():
		return fmt.Errorf("%s: CreatedAt %s, want the header timestamp %s",
			name(want.Level, want.MinTXID, want.MaxTXID),
			got.CreatedAt.UTC().Format(ltx.RFC3339Milli), want.CreatedAt.UTC().Format(ltx.RFC3339Milli))
	}
	return nil
}

// list drains LTXFiles into a slice, closing the iterator.
func list(ctx context.Context, c litestream.ReplicaClient, level int, seek ltx.TXID, useMetadata bool) ([]*ltx.FileInfo, error) {
	itr, err := c.LTXFiles(ctx, level, seek, useMetadata)
	if err != nil {
		return nil, fmt.Errorf("LTXFiles(level %d, seek %s, useMetadata=%t): %w", level, seek, useMetadata, err)
	}
	var a []*ltx.FileInfo
	for itr.Next() {
		a = append(a, itr.Item())
	}
	if err := itr.Err(); err != nil {
		_ = itr.Close()
		return nil, fmt.Errorf("LTXFiles(level %d, seek %s, useMetadata=%t): iterating: %w", level, seek, useMetadata, err)
	}
	if err := itr.Close(); err != nil {
		return nil, fmt.Errorf("LTXFiles(level %d, seek %s, useMetadata=%t): close: %w", level, seek, useMetadata, err)
	}
	return a, nil
}

// checkList lists a level and compares it with want, in order.
func checkList(t *testing.T, ctx context.Context, c litestream.ReplicaClient, level int, seek ltx.TXID, useMetadata bool, want []*ltx.FileInfo) {
	t.Helper()
	got, err := list(ctx, c, level, seek, useMetadata)
	if err != nil {
		t.Fatal(err)
	}
	if err := compareList(got, level, want, useMetadata); err != nil {
		t.Fatalf("LTXFiles(level %d, seek %s, useMetadata=%t): %v", level, seek, useMetadata, err)
	}
}

func compareList(got []*ltx.FileInfo, level int, want []*ltx.FileInfo, checkTime bool) error {
	for _, info := range got {
		if info.Level != level {
			return fmt.Errorf("lists %s, a file of level %d", ltx.FormatFilename(info.MinTXID, info.MaxTXID), info.Level)
		}
	}
	for i := 1; i < len(got); i++ {
		p, q := got[i-1], got[i]
		if q.MinTXID < p.MinTXID || (q.MinTXID == p.MinTXID && q.MaxTXID <= p.MaxTXID) {
			return fmt.Errorf("not in ascending (minTXID, maxTXID) order at index %d: %s after %s",
				i, ltx.FormatFilename(q.MinTXID, q.MaxTXID), ltx.FormatFilename(p.MinTXID, p.MaxTXID))
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("got %d files %s, want %d files %s", len(got), names(got), len(want), names(want))
	}
	for i := range got {
		if err := sameInfo(got[i], want[i], checkTime); err != nil {
			return fmt.Errorf("index %d: %w", i, err)
		}
	}
	return nil
}

// names prints a short list of file names for failure messages.
func names(a []*ltx.FileInfo) string {
	const shown = 8
	var b bytes.Buffer
	b.WriteByte('[')
	for i, info := range a {
		if i == shown {
			fmt.Fprintf(&b, " ... %d more", len(a)-shown)
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "L%d/%s", info.Level, ltx.FormatFilename(info.MinTXID, info.MaxTXID))
	}
	b.WriteByte(']')
	return b.String()
}

// read opens a file and reads the range completely.
func read(ctx context.Context, c litestream.ReplicaClient, level int, minTXID, maxTXID ltx.TXID, offset, size int64) ([]byte, error) {
	n := name(level, minTXID, maxTXID)
	rc, err := c.OpenLTXFile(ctx, level, minTXID, maxTXID, offset, size)
	if err != nil {
		return nil, fmt.Errorf("OpenLTXFile(%s, offset %d, size %d): %w", n, offset, size, err)
	}
	if rc == nil {
		return nil, fmt.Errorf("OpenLTXFile(%s) returned a nil reader and no error", n)
	}
	b, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	if err != nil {
		return nil, fmt.Errorf("OpenLTXFile(%s, offset %d, size %d): read: %w", n, offset, size, err)
	}
	return b, nil
}

// checkRead reads a whole file back, compares it with want and decodes it.
func checkRead(t *testing.T, ctx context.Context, c litestream.ReplicaClient, level int, want []byte) {
	t.Helper()
	if err := readBack(ctx, c, level, want); err != nil {
		t.Fatal(err)
	}
}

func readBack(ctx context.Context, c litestream.ReplicaClient, level int, want []byte) error {
	hdr := header(want)
	got, err := read(ctx, c, level, hdr.MinTXID, hdr.MaxTXID, 0, 0)
	if err != nil {
		return err
	}
	n := name(level, hdr.MinTXID, hdr.MaxTXID)
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%s: read back %d bytes that differ from the %d written (first difference at byte %d)",
			n, len(got), len(want), firstDiff(got, want))
	}
	if err := ltx.NewDecoder(bytes.NewReader(got)).Verify(); err != nil {
		return fmt.Errorf("%s: read back a file that does not decode: %w", n, err)
	}
	return nil
}

func firstDiff(a, b []byte) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// openMissing opens a file that must not exist and returns the error the
// client gave, at open or at the first read. A nil error means the client
// returned data (or a clean EOF) for a missing file.
func openMissing(ctx context.Context, c litestream.ReplicaClient, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (atOpen bool, err error) {
	rc, err := c.OpenLTXFile(ctx, level, minTXID, maxTXID, offset, size)
	if err != nil {
		return true, err
	}
	defer rc.Close()
	var b [1]byte
	if _, err := io.ReadFull(rc, b[:]); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return false, err
	}
	return false, nil
}

// checkMissing asserts that a file cannot be read and that the client says
// so with an error wrapping os.ErrNotExist.
func checkMissing(t *testing.T, ctx context.Context, c litestream.ReplicaClient, level int, minTXID, maxTXID ltx.TXID, offset, size int64) {
	t.Helper()
	atOpen, err := openMissing(ctx, c, level, minTXID, maxTXID, offset, size)
	n := name(level, minTXID, maxTXID)
	switch {
	case err == nil:
		t.Fatalf("OpenLTXFile(%s, offset %d, size %d) of a missing file: no error", n, offset, size)
	case !errors.Is(err, os.ErrNotExist):
		t.Fatalf("OpenLTXFile(%s, offset %d, size %d) of a missing file: error does not wrap os.ErrNotExist: %v", n, offset, size, err)
	case !atOpen:
		t.Logf("note: %s reports a missing file at the first read, not at open (allowed; open is preferred)", c.Type())
	}
}

// parallel runs fn(0..n-1) with at most limit calls at once and returns
// the errors joined (the first few, so a broken backend gives a short
// message).
func parallel(n, limit int, fn func(i int) error) error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, limit)
	)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 5 {
		errs = append(errs[:5], fmt.Errorf("... and %d more errors", len(errs)-5))
	}
	return errors.Join(errs...)
}
