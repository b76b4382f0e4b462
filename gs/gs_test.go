package gs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/replicatest"
)

func TestNewReplicaClientRequiresBucket(t *testing.T) {
	if _, err := NewReplicaClient(Config{Path: "db"}); err == nil || !strings.Contains(err.Error(), "bucket") {
		t.Fatalf("err = %v, want bucket required", err)
	}
}

func TestKeyLayoutAndTimestampMetadata(t *testing.T) {
	c := newTestClient(t)
	ctx := context.Background()
	ts := time.Date(2024, 5, 6, 7, 8, 9, 123e6, time.UTC)
	data := writeFile(t, c, 3, 5, 9, ts)

	key := c.Path() + "/ltx/3/0000000000000005-0000000000000009.ltx"
	attrs := rawAttrs(t, key)
	if attrs == nil {
		t.Fatalf("object not at %s", key)
	}
	if got := attrs.Metadata["litestream-timestamp"]; got != "2024-05-06T07:08:09.123Z" {
		t.Fatalf("metadata litestream-timestamp = %q", got)
	}
	if attrs.Size != int64(len(data)) {
		t.Fatalf("size = %d, want %d", attrs.Size, len(data))
	}
	infos, err := litestream.LTXFileInfos(ctx, c, 3, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || !infos[0].CreatedAt.Equal(ts) || infos[0].Size != int64(len(data)) {
		t.Fatalf("listing = %+v, want one file created at %v", infos, ts)
	}
}

func TestKeyLayoutWithoutServer(t *testing.T) {
	c, err := NewReplicaClient(Config{Bucket: "b", Path: "/a/b/"})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.key(0, 1, 2); got != "a/b/ltx/0/0000000000000001-0000000000000002.ltx" {
		t.Fatalf("key = %q", got)
	}
	c2, err := NewReplicaClient(Config{Bucket: "b", Path: "/"})
	if err != nil {
		t.Fatal(err)
	}
	if got := c2.key(9, 1, 0x1a); got != "ltx/9/0000000000000001-000000000000001a.ltx" {
		t.Fatalf("key with empty path = %q", got)
	}
}

func TestCreatedAtFallsBackToObjectCreation(t *testing.T) {
	c := newTestClient(t)
	ctx := context.Background()
	obj := rawPut(t, c.key(0, 1, 1), ltxBytes(t, 1, 1, time.Unix(0, 0)))
	infos, err := litestream.LTXFileInfos(ctx, c, 0, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if obj.TimeCreated.IsZero() || len(infos) != 1 || !infos[0].CreatedAt.Equal(obj.TimeCreated.UTC()) {
		t.Fatalf("listing = %+v, want CreatedAt = object creation %v", infos, obj.TimeCreated)
	}
}

func TestSeekReturnsEveryFileFromSeek(t *testing.T) {
	c := newTestClient(t)
	ts := time.Now().UTC()
	for _, r := range [][2]ltx.TXID{{1, 1}, {2, 2}, {3, 5}, {6, 6}, {0x10, 0x20}} {
		writeFile(t, c, 1, r[0], r[1], ts)
	}
	for _, tc := range []struct {
		seek ltx.TXID
		want []ltx.TXID // min TXIDs
	}{
		{0, []ltx.TXID{1, 2, 3, 6, 0x10}},
		{3, []ltx.TXID{3, 6, 0x10}},
		{4, []ltx.TXID{6, 0x10}},
		{7, []ltx.TXID{0x10}},
		{0x11, nil},
	} {
		infos, err := litestream.LTXFileInfos(context.Background(), c, 1, tc.seek, true)
		if err != nil {
			t.Fatal(err)
		}
		var got []ltx.TXID
		for _, info := range infos {
			got = append(got, info.MinTXID)
		}
		if !equalTXIDs(got, tc.want) {
			t.Errorf("seek %d: got %v, want %v", tc.seek, got, tc.want)
		}
	}
}

func equalTXIDs(a, b []ltx.TXID) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestListingIsLazy shows pages are fetched on demand: a file written
// after LTXFiles returned, which sorts onto a later page, is still seen.
func TestListingIsLazy(t *testing.T) {
	old := listPageSize
	listPageSize = 2
	t.Cleanup(func() { listPageSize = old })
	c := newTestClient(t)
	ctx := context.Background()
	ts := time.Now().UTC()
	for i := ltx.TXID(1); i <= 4; i++ {
		writeFile(t, c, 0, i, i, ts)
	}
	itr, err := c.LTXFiles(ctx, 0, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	defer itr.Close()
	writeFile(t, c, 0, 5, 5, ts)
	var got []ltx.TXID
	for itr.Next() {
		got = append(got, itr.Item().MinTXID)
	}
	if err := itr.Err(); err != nil {
		t.Fatal(err)
	}
	if !equalTXIDs(got, []ltx.TXID{1, 2, 3, 4, 5}) {
		t.Fatalf("got %v, want 1..5 across three pages", got)
	}
}

func TestOpenRangesAndMissingFile(t *testing.T) {
	c := newTestClient(t)
	ctx := context.Background()
	data := writeFile(t, c, 0, 1, 1, time.Now())
	for _, tc := range []struct{ off, size int64 }{{0, 0}, {10, 0}, {10, 20}, {0, int64(len(data))}} {
		rc, err := c.OpenLTXFile(ctx, 0, 1, 1, tc.off, tc.size)
		if err != nil {
			t.Fatal(err)
		}
		want := data[tc.off:]
		if tc.size > 0 {
			want = data[tc.off : tc.off+tc.size]
		}
		if got := readAll(t, rc); !bytes.Equal(got, want) {
			t.Fatalf("range %d+%d: got %d bytes, want %d", tc.off, tc.size, len(got), len(want))
		}
	}
	_, err := c.OpenLTXFile(ctx, 0, 7, 7, 0, 0)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: err = %v, want os.ErrNotExist", err)
	}
	for _, want := range []string{"gs:", c.Bucket(), c.key(0, 7, 7)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestDeleteFilesAndAll(t *testing.T) {
	c := newTestClient(t)
	ctx := context.Background()
	ts := time.Now()
	writeFile(t, c, 0, 1, 1, ts)
	writeFile(t, c, 0, 2, 2, ts)
	writeFile(t, c, 9, 1, 2, ts)
	missing := &ltx.FileInfo{Level: 0, MinTXID: 8, MaxTXID: 8}
	if err := c.DeleteLTXFiles(ctx, []*ltx.FileInfo{{Level: 0, MinTXID: 1, MaxTXID: 1}, missing}); err != nil {
		t.Fatal(err)
	}
	if infos, _ := litestream.LTXFileInfos(ctx, c, 0, 0, true); len(infos) != 1 || infos[0].MinTXID != 2 {
		t.Fatalf("after delete: %+v", infos)
	}
	// An object beside the ltx tree is not the replica's and survives.
	other := c.Path() + "/other"
	rawPut(t, other, []byte("x"))
	t.Cleanup(func() { rawDelete(t, other) })
	if err := c.DeleteAll(ctx); err != nil {
		t.Fatal(err)
	}
	for _, level := range []int{0, 9} {
		if infos, err := litestream.LTXFileInfos(ctx, c, level, 0, true); err != nil || len(infos) != 0 {
			t.Fatalf("level %d after DeleteAll: %+v, %v", level, infos, err)
		}
	}
	if rawAttrs(t, other) == nil {
		t.Fatal("object outside ltx/ was deleted")
	}
}

func TestMissingBucketIsAnError(t *testing.T) {
	requireEmulator(t)
	c, err := NewReplicaClient(Config{Bucket: "no-such-bucket-" + strings.ToLower(filepath.Base(uniquePath(t))), Path: "db", MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	_, err = c.LTXFiles(ctx, 0, 0, true)
	assertNames(t, err, "list", c.Bucket(), "db/ltx/0/", "404")
	_, err = c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(ltxBytes(t, 1, 1, time.Now())))
	assertNames(t, err, "write", c.Bucket(), "db/ltx/0/0000000000000001-0000000000000001.ltx")
}

func TestUnreachableEndpoint(t *testing.T) {
	t.Setenv("STORAGE_EMULATOR_HOST", closedPort(t))
	c, err := NewReplicaClient(Config{Bucket: "bkt", Path: "db", MaxAttempts: 2, InitialBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = c.LTXFiles(ctx, 0, 0, true)
	assertNames(t, err, "list", "gs://bkt/db/ltx/0/", "connection refused")
	if ctx.Err() != nil {
		t.Fatal("retries were not bounded: the call ran until the test deadline")
	}
}

// TestBadCredentials uses no server: ADC pointing at an unusable
// credentials file must fail with a message, without network access.
func TestBadCredentials(t *testing.T) {
	f := filepath.Join(t.TempDir(), "creds.json")
	if err := os.WriteFile(f, []byte(`{"type":"not-a-credential-type"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STORAGE_EMULATOR_HOST", "")
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", f)
	c, err := NewReplicaClient(Config{Bucket: "bkt", Path: "db"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.LTXFiles(context.Background(), 0, 0, true)
	assertNames(t, err, "gs:", "bkt")
}

func assertNames(t *testing.T, err error, words ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one naming %q", words)
	}
	t.Logf("error: %v", err)
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error spans several lines: %q", err)
	}
}

// TestStreamedUploads runs files larger than replayLimit through the
// emulator: the body is streamed with no length, arrives whole, and a
// cancellation half-way ends the call promptly and stores nothing.
func TestStreamedUploads(t *testing.T) {
	old := replayLimit
	replayLimit = 64 << 10
	t.Cleanup(func() { replayLimit = old })
	c := newTestClient(t)
	ctx := context.Background()
	data := replicatest.NewLTXFile(1, 1, time.Now(), 256) // ~1 MiB, incompressible pages
	if int64(len(data)) <= 4*replayLimit {
		t.Fatalf("test file of %d bytes does not exceed the replay limit enough", len(data))
	}
	if _, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	rc, err := c.OpenLTXFile(ctx, 0, 1, 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, rc); !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, want the %d written", len(got), len(data))
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &cancelAfter{r: bytes.NewReader(replicatest.NewLTXFile(2, 2, time.Now(), 256)), after: 2 * replayLimit, cancel: cancel}
	_, err = c.WriteLTXFile(wctx, 0, 2, 2, r)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled upload: err = %v, want context.Canceled", err)
	}
	t.Logf("returned %s after the cancellation", time.Since(r.at).Round(time.Millisecond))
	if rawAttrs(t, c.key(0, 2, 2)) != nil {
		t.Fatal("a cancelled upload left an object behind")
	}
}

// cancelAfter cancels its context once it has supplied after bytes, and
// keeps supplying data, so only the client can stop the upload.
type cancelAfter struct {
	r      io.Reader
	after  int64
	cancel context.CancelFunc
	n      int64
	at     time.Time
}

func (r *cancelAfter) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += int64(n)
	if r.n >= r.after && r.at.IsZero() {
		r.at = time.Now()
		r.cancel()
	}
	return n, err
}
