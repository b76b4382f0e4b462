package webdav_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/webdav"
)

// testConfig returns a config for the test server with a fresh replica
// path, or skips when the server's variables are not set.
func testConfig(t *testing.T) webdav.Config {
	t.Helper()
	for _, k := range []string{"WEBDAV_URL", "WEBDAV_USER", "WEBDAV_PASSWORD", "WEBDAV_ROOT"} {
		if os.Getenv(k) == "" {
			t.Skipf("%s not set: start the WebDAV test server (TESTINFRA_SERVERS=webdav shared/testinfra/start-servers.sh) to run this test", k)
		}
	}
	return webdav.Config{
		URL:      os.Getenv("WEBDAV_URL"),
		Username: os.Getenv("WEBDAV_USER"),
		Password: os.Getenv("WEBDAV_PASSWORD"),
		Path:     "/test-" + randomHex(t, 8),
	}
}

// localDir is where the server keeps cfg's replica on this machine.
func localDir(cfg webdav.Config) string {
	return filepath.Join(os.Getenv("WEBDAV_ROOT"), filepath.FromSlash(cfg.Path))
}

// newClient builds a client and removes its replica when the test ends.
func newClient(t *testing.T, cfg webdav.Config) *webdav.ReplicaClient {
	t.Helper()
	c, err := webdav.NewReplicaClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.DeleteAll(context.Background())
		_ = os.RemoveAll(localDir(cfg)) // the root collection itself
	})
	return c
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// ltxBytes returns an LTX header with the given range and timestamp plus
// a payload: the backend only looks at the header.
func ltxBytes(t *testing.T, minTXID, maxTXID ltx.TXID, ts time.Time, payload []byte) []byte {
	t.Helper()
	hdr := ltx.Header{Version: ltx.Version, PageSize: 4096, Commit: 1, MinTXID: minTXID, MaxTXID: maxTXID, Timestamp: ts.UnixMilli()}
	b, err := hdr.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return append(b, payload...)
}

func readAll(t *testing.T, c litestream.ReplicaClient, level int, minTXID, maxTXID ltx.TXID, offset, size int64) []byte {
	t.Helper()
	rc, err := c.OpenLTXFile(t.Context(), level, minTXID, maxTXID, offset, size)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// localFiles lists every file under dir on disk, relative to dir.
func localFiles(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return names
}

func TestReplicaClient_WriteListReadDelete(t *testing.T) {
	ctx := t.Context()
	cfg := testConfig(t)
	c := newClient(t, cfg)

	ts := time.Date(2024, 5, 6, 7, 8, 9, 123_000_000, time.UTC)
	data := ltxBytes(t, 1, 2, ts, bytes.Repeat([]byte("0123456789"), 10_000))
	before := time.Now().Add(-time.Minute)
	info, err := c.WriteLTXFile(ctx, 0, 1, 2, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(data)) || !info.CreatedAt.Equal(ts) {
		t.Fatalf("WriteLTXFile info = %+v, want size %d created %v", info, len(data), ts)
	}

	// The temp file was moved, not copied: only the final file is left.
	if got := localFiles(t, localDir(cfg)); len(got) != 1 || got[0] != "ltx/0/"+ltx.FormatFilename(1, 2) {
		t.Fatalf("server holds %v, want only the final file", got)
	}

	// Exact time from the header with useMetadata; the upload time
	// (server mtime) without.
	infos, err := litestream.LTXFileInfos(ctx, c, 0, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Size != int64(len(data)) || !infos[0].CreatedAt.Equal(ts) {
		t.Fatalf("useMetadata: listed %+v, want one file created %v", infos, ts)
	}
	infos, err = litestream.LTXFileInfos(ctx, c, 0, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].CreatedAt.Before(before) {
		t.Fatalf("no metadata: listed %+v, want the upload time (after %v)", infos, before)
	}

	if got := readAll(t, c, 0, 1, 2, 0, 0); !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, want the %d written", len(got), len(data))
	}
	if got := readAll(t, c, 0, 1, 2, 1000, 25); !bytes.Equal(got, data[1000:1025]) {
		t.Fatalf("range read = %q, want %q", got, data[1000:1025])
	}
	if got := readAll(t, c, 0, 1, 2, int64(len(data))-5, 0); !bytes.Equal(got, data[len(data)-5:]) {
		t.Fatalf("offset read = %q, want %q", got, data[len(data)-5:])
	}
	if got := readAll(t, c, 0, 1, 2, int64(len(data))+10, 0); len(got) != 0 {
		t.Fatalf("read past the end = %d bytes, want none", len(got))
	}

	if err := c.DeleteLTXFiles(ctx, []*ltx.FileInfo{info, {Level: 0, MinTXID: 7, MaxTXID: 7}}); err != nil {
		t.Fatalf("delete (one file missing): %v", err)
	}
	for _, off := range []int64{0, 10} {
		if _, err := c.OpenLTXFile(ctx, 0, 1, 2, off, 0); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("open deleted file at %d: err = %v, want os.ErrNotExist", off, err)
		}
	}
}

func TestReplicaClient_CancelledWriteLeavesNoTempFile(t *testing.T) {
	cfg := testConfig(t)
	c := newClient(t, cfg)
	if _, err := c.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(ltxBytes(t, 1, 1, time.Now(), nil))); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	r := &cancelAfter{r: bytes.NewReader(ltxBytes(t, 2, 2, time.Now(), make([]byte, 1<<20))), n: 64 << 10, cancel: cancel}
	if _, err := c.WriteLTXFile(ctx, 0, 2, 2, r); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if got := localFiles(t, localDir(cfg)); len(got) != 1 || got[0] != "ltx/0/"+ltx.FormatFilename(1, 1) {
		t.Fatalf("server holds %v, want only the first file", got)
	}
}

// cancelAfter cancels its context once n bytes were read.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (r *cancelAfter) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if r.n -= n; r.n <= 0 {
		r.cancel()
	}
	return n, err
}

func TestReplicaClient_WrongPassword(t *testing.T) {
	cfg := testConfig(t)
	cfg.Password = "wrong-secret-pw"
	_, err := newClient(t, cfg).LTXFiles(t.Context(), 0, 0, false)
	if err == nil || !strings.Contains(err.Error(), "access denied (HTTP 401)") || !strings.Contains(err.Error(), "webdav-password") {
		t.Fatalf("err = %v, want an access-denied error naming the settings to check", err)
	}
	if strings.Contains(err.Error(), cfg.Password) {
		t.Fatalf("error leaks the password: %v", err)
	}
}

func TestReplicaClient_CredentialsInURL(t *testing.T) {
	cfg := testConfig(t)
	cfg.URL = strings.Replace(cfg.URL, "://", "://"+cfg.Username+":"+cfg.Password+"@", 1)
	cfg.Username, cfg.Password = "", ""
	c := newClient(t, cfg)
	if strings.Contains(c.URL(), os.Getenv("WEBDAV_PASSWORD")) {
		t.Fatalf("URL() = %s keeps the password", c.URL())
	}
	if _, err := c.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(ltxBytes(t, 1, 1, time.Now(), nil))); err != nil {
		t.Fatalf("credentials from the URL were not used: %v", err)
	}
}

// A server that is down gives the network error, not a made-up status.
func TestReplicaClient_ServerDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := webdav.NewReplicaClient(webdav.Config{URL: "http://" + addr, Username: "u", Password: "secret-pw", Path: "db"})
	if err != nil {
		t.Fatal(err)
	}
	err = c.DeleteLTXFiles(t.Context(), []*ltx.FileInfo{{Level: 0, MinTXID: 1, MaxTXID: 1}})
	if err == nil || !strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "secret-pw") {
		t.Fatalf("err = %v, want connection refused", err)
	}
}

func TestNewReplicaClient_Validation(t *testing.T) {
	for _, u := range []string{"", "ftp://host/x", "http://", "://bad"} {
		if _, err := webdav.NewReplicaClient(webdav.Config{URL: u}); err == nil {
			t.Errorf("URL %q accepted", u)
		}
	}
}
