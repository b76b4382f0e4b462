package gs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"os"
	"path"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream/ltxfile"
)

// requireEmulator skips the test unless start-servers.sh's GCS variables
// are set, and returns the bucket.
func requireEmulator(t *testing.T) string {
	t.Helper()
	if os.Getenv("STORAGE_EMULATOR_HOST") == "" || os.Getenv("GCS_BUCKET") == "" {
		t.Skip("GCS emulator not configured: set STORAGE_EMULATOR_HOST and GCS_BUCKET (see shared/testinfra/start-servers.sh)")
	}
	return os.Getenv("GCS_BUCKET")
}

// uniquePath returns a fresh key prefix so tests never see each other's files.
func uniquePath(t *testing.T) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return path.Join("test", t.Name(), hex.EncodeToString(b[:]))
}

// newTestClient returns an empty replica under a unique path, fast to
// give up on failures.
func newTestClient(t *testing.T) *ReplicaClient {
	t.Helper()
	c, err := NewReplicaClient(Config{
		Bucket:         requireEmulator(t),
		Path:           uniquePath(t),
		MaxAttempts:    2,
		InitialBackoff: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.DeleteAll(context.Background())
		_ = c.Close()
	})
	return c
}

// rawBucket is a plain SDK handle for checking what the client stored.
func rawBucket(t *testing.T) *storage.BucketHandle {
	t.Helper()
	sc, err := storage.NewClient(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	return sc.Bucket(requireEmulator(t))
}

// ltxBytes encodes a small valid LTX file.
func ltxBytes(t *testing.T, minTXID, maxTXID ltx.TXID, ts time.Time) []byte {
	t.Helper()
	var buf bytes.Buffer
	hdr := ltxfile.Header(4096, 1, minTXID, maxTXID, ts)
	fill := func(pgno uint32, b []byte) error {
		for i := range b {
			b[i] = byte(int(pgno) + i + int(maxTXID))
		}
		return nil
	}
	if _, err := ltxfile.Encode(&buf, hdr, []uint32{1}, fill); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t *testing.T, c *ReplicaClient, level int, minTXID, maxTXID ltx.TXID, ts time.Time) []byte {
	t.Helper()
	data := ltxBytes(t, minTXID, maxTXID, ts)
	if _, err := c.WriteLTXFile(context.Background(), level, minTXID, maxTXID, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return data
}

func readAll(t *testing.T, rc io.ReadCloser) []byte {
	t.Helper()
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// closedPort returns 127.0.0.1:PORT with nothing listening on it.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
