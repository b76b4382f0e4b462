package litestream_test

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
)

// flakyClient wraps a real client; every read stream dies after cut
// bytes, and it records the offsets files were reopened at.
type flakyClient struct {
	litestream.ReplicaClient
	cut      int64
	reopens  atomic.Int64
	fromZero atomic.Int64
}

func (c *flakyClient) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	rc, err := c.ReplicaClient.OpenLTXFile(ctx, level, minTXID, maxTXID, offset, size)
	if err != nil {
		return nil, err
	}
	if offset > 0 {
		c.reopens.Add(1)
	} else {
		c.fromZero.Add(1)
	}
	return &dyingReader{rc: rc, left: c.cut}, nil
}

type dyingReader struct {
	rc   io.ReadCloser
	left int64
}

func (r *dyingReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, errors.New("connection reset by peer")
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.rc.Read(p)
	r.left -= int64(n)
	return n, err
}

func (r *dyingReader) Close() error { return r.rc.Close() }

// TestRestoreResumesMidFile: a restore whose streams keep dropping
// resumes each file at the byte it reached and still restores exactly.
func TestRestoreResumesMidFile(t *testing.T) {
	h := newHarness(t, 4096, nil)
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	insertRows(t, h, 200)
	h.sync()
	infos, _ := litestream.LTXFileInfos(context.Background(), h.client, litestream.SnapshotLevel, 0, false)
	if len(infos) == 0 {
		t.Fatal("no snapshot in the replica")
	}
	flaky := &flakyClient{ReplicaClient: h.client, cut: infos[0].Size / 3}
	real := h.client
	h.client = nil
	defer func() { h.client = real }()
	out := t.TempDir() + "/r.db"
	if _, err := litestream.Restore(context.Background(), flaky, litestream.RestoreOptions{OutputPath: out, IntegrityCheck: "full"}); err != nil {
		t.Fatal(err)
	}
	if flaky.reopens.Load() < 2 {
		t.Fatalf("%d mid-file reopens; want the restore to resume rather than restart", flaky.reopens.Load())
	}
	if got, want := contentHash(t, out), h.states[h.db.Pos()]; got != want {
		t.Fatal("resumed restore differs from the database")
	}
}
