package file_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/file"
	"github.com/sqlitebackup/litestream/replicatest"
)

func TestReplicaClient_Conformance(t *testing.T) {
	replicatest.RunConformance(t, func(t *testing.T) litestream.ReplicaClient {
		return file.NewReplicaClient(t.TempDir())
	})
}

// The file's mtime is how the file backend keeps the creation time, so it
// must be the LTX header timestamp, not the time of the upload.
func TestReplicaClient_MtimeIsHeaderTimestamp(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := file.NewReplicaClient(dir)
	ts := time.Date(2020, time.July, 1, 2, 3, 4, 567_000_000, time.UTC)
	if _, err := c.WriteLTXFile(ctx, 3, 5, 9, bytes.NewReader(replicatest.NewLTXFile(5, 9, ts, 2))); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "ltx", "3", "0000000000000005-0000000000000009.ltx")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Equal(ts) {
		t.Fatalf("mtime of %s = %s, want the header timestamp %s", p, fi.ModTime().UTC(), ts)
	}
}

// A write leaves only the final file: no *.tmp, also after a write that
// failed half-way.
func TestReplicaClient_NoTempFilesLeft(t *testing.T) {
	dir := t.TempDir()
	c := file.NewReplicaClient(dir)
	ctx := context.Background()
	for i := ltx.TXID(1); i <= 3; i++ {
		if _, err := c.WriteLTXFile(ctx, 0, i, i, bytes.NewReader(replicatest.NewLTXFile(i, i, time.Now(), 1))); err != nil {
			t.Fatal(err)
		}
	}
	data := replicatest.NewLTXFile(4, 4, time.Now(), 4)
	if _, err := c.WriteLTXFile(ctx, 0, 4, 4, &failingReader{data: data, failAt: 6000}); err == nil {
		t.Fatal("a write whose reader failed succeeded")
	}
	var leftovers, ltxFiles []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasSuffix(p, litestream.TempSuffix) {
			leftovers = append(leftovers, p)
		} else {
			ltxFiles = append(ltxFiles, filepath.Base(p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(leftovers) > 0 {
		t.Fatalf("temporary files left behind: %v", leftovers)
	}
	if len(ltxFiles) != 3 {
		t.Fatalf("files in the replica: %v, want the 3 complete ones", ltxFiles)
	}
}

type failingReader struct {
	data   []byte
	failAt int
	off    int
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.off >= r.failAt {
		return 0, os.ErrDeadlineExceeded // any error: the source broke
	}
	n := copy(p, r.data[r.off:min(len(r.data), r.failAt)])
	r.off += n
	return n, nil
}

// Only <min>-<max>.ltx names count: temp files, other names and
// directories in a level directory are not files of the replica.
func TestReplicaClient_IgnoresForeignNames(t *testing.T) {
	dir := t.TempDir()
	c := file.NewReplicaClient(dir)
	ctx := context.Background()
	ts := time.Now()
	if _, err := c.WriteLTXFile(ctx, 0, 2, 2, bytes.NewReader(replicatest.NewLTXFile(2, 2, ts, 1))); err != nil {
		t.Fatal(err)
	}
	level := filepath.Join(dir, "ltx", "0")
	for _, name := range []string{
		"0000000000000001-0000000000000001.ltx.tmp",
		"0000000000000003-0000000000000003.LTX",
		"000000000000000A-000000000000000A.ltx",
		"3-3.ltx",
		"notes.txt",
		".0000000000000004-0000000000000004.ltx",
	} {
		if err := os.WriteFile(filepath.Join(level, name), []byte("not an ltx file"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(level, "0000000000000005-0000000000000005.ltx"), 0o700); err != nil {
		t.Fatal(err)
	}
	infos, err := litestream.LTXFileInfos(ctx, c, 0, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].MinTXID != 2 {
		var got []string
		for _, info := range infos {
			got = append(got, ltx.FormatFilename(info.MinTXID, info.MaxTXID))
		}
		t.Fatalf("listing = %v, want only 0000000000000002-0000000000000002.ltx", got)
	}
}
