package gs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"testing"
	"time"

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

// rawObject is what the emulator says about an object, fetched with
// plain HTTP requests independent of the client under test.
type rawObject struct {
	Name        string            `json:"name"`
	Size        int64             `json:"size,string"`
	Generation  int64             `json:"generation,string"`
	TimeCreated time.Time         `json:"timeCreated"`
	Metadata    map[string]string `json:"metadata"`
}

// rawRequest sends one request to the emulator and decodes a JSON answer
// into out (if not nil). It returns the status code.
func rawRequest(t *testing.T, method, rawPath string, body []byte, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+os.Getenv("STORAGE_EMULATOR_HOST")+rawPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

// rawAttrs returns an object's resource, or nil if it does not exist.
func rawAttrs(t *testing.T, key string) *rawObject {
	t.Helper()
	var o rawObject
	code := rawRequest(t, http.MethodGet, "/storage/v1/b/"+requireEmulator(t)+"/o/"+url.PathEscape(key), nil, &o)
	switch code {
	case http.StatusOK:
		return &o
	case http.StatusNotFound:
		return nil
	}
	t.Fatalf("GET %s: HTTP %d", key, code)
	return nil
}

// rawPut stores an object without metadata, as another tool would.
func rawPut(t *testing.T, key string, data []byte) *rawObject {
	t.Helper()
	var o rawObject
	q := url.Values{"uploadType": {"media"}, "name": {key}}
	if code := rawRequest(t, http.MethodPost, "/upload/storage/v1/b/"+requireEmulator(t)+"/o?"+q.Encode(), data, &o); code != http.StatusOK {
		t.Fatalf("upload %s: HTTP %d", key, code)
	}
	return &o
}

// rawDelete removes an object, if it exists.
func rawDelete(t *testing.T, key string) {
	t.Helper()
	rawRequest(t, http.MethodDelete, "/storage/v1/b/"+requireEmulator(t)+"/o/"+url.PathEscape(key), nil, nil)
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
