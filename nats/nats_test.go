package nats_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/nats"
)

// testBucket creates a fresh object store bucket on the test server and
// returns a config for it plus the bucket handle, or skips when the
// server's variables are not set. The bucket is deleted when the test
// ends.
func testBucket(t *testing.T) (nats.Config, jetstream.ObjectStore) {
	t.Helper()
	for _, k := range []string{"NATS_URL", "NATS_USER", "NATS_PASSWORD"} {
		if os.Getenv(k) == "" {
			t.Skipf("%s not set: start the NATS test server (TESTINFRA_SERVERS=nats shared/testinfra/start-servers.sh) to run this test", k)
		}
	}
	nc, err := natsgo.Connect(os.Getenv("NATS_URL"), natsgo.UserInfo(os.Getenv("NATS_USER"), os.Getenv("NATS_PASSWORD")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	bucket := "test-" + randomHex(t, 8)
	store, err := js.CreateObjectStore(t.Context(), jetstream.ObjectStoreConfig{Bucket: bucket})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = js.DeleteObjectStore(context.Background(), bucket) })
	return nats.Config{
		URL:      os.Getenv("NATS_URL"),
		Bucket:   bucket,
		Username: os.Getenv("NATS_USER"),
		Password: os.Getenv("NATS_PASSWORD"),
	}, store
}

func newClient(t *testing.T, cfg nats.Config) *nats.ReplicaClient {
	t.Helper()
	c, err := nats.NewReplicaClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
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

func write(t *testing.T, c litestream.ReplicaClient, level int, minTXID, maxTXID ltx.TXID, ts time.Time) *ltx.FileInfo {
	t.Helper()
	info, err := c.WriteLTXFile(t.Context(), level, minTXID, maxTXID, bytes.NewReader(ltxBytes(t, minTXID, maxTXID, ts, []byte("payload"))))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func list(t *testing.T, c litestream.ReplicaClient, level int) []*ltx.FileInfo {
	t.Helper()
	infos, err := litestream.LTXFileInfos(t.Context(), c, level, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	return infos
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

func TestReplicaClient_WriteListReadDelete(t *testing.T) {
	ctx := t.Context()
	cfg, store := testBucket(t)
	c := newClient(t, cfg)

	ts := time.Date(2024, 5, 6, 7, 8, 9, 123_000_000, time.UTC)
	data := ltxBytes(t, 1, 2, ts, bytes.Repeat([]byte("0123456789"), 50_000)) // several chunks
	info, err := c.WriteLTXFile(ctx, 0, 1, 2, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(data)) || !info.CreatedAt.Equal(ts) {
		t.Fatalf("WriteLTXFile info = %+v, want size %d created %v", info, len(data), ts)
	}

	// Without a path the object is named as upstream names it.
	oi, err := store.GetInfo(ctx, "ltx/0/"+ltx.FormatFilename(1, 2))
	if err != nil {
		t.Fatalf("object not under the upstream name: %v", err)
	}
	if got := oi.Headers.Get(nats.TimestampHeader); got != "2024-05-06T07:08:09.123Z" {
		t.Fatalf("%s header = %q", nats.TimestampHeader, got)
	}

	for _, useMetadata := range []bool{false, true} {
		infos, err := litestream.LTXFileInfos(ctx, c, 0, 0, useMetadata)
		if err != nil {
			t.Fatal(err)
		}
		if len(infos) != 1 || infos[0].Size != int64(len(data)) || !infos[0].CreatedAt.Equal(ts) {
			t.Fatalf("useMetadata=%v: listed %+v, want one file created %v", useMetadata, infos, ts)
		}
	}
	if infos := list(t, c, 1); len(infos) != 0 {
		t.Fatalf("level 1 lists %v, want nothing", infos)
	}

	if got := readAll(t, c, 0, 1, 2, 0, 0); !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, want the %d written", len(got), len(data))
	}
	if got := readAll(t, c, 0, 1, 2, 300_000, 25); !bytes.Equal(got, data[300_000:300_025]) {
		t.Fatalf("range read = %q, want %q", got, data[300_000:300_025])
	}
	if got := readAll(t, c, 0, 1, 2, int64(len(data))-5, 0); !bytes.Equal(got, data[len(data)-5:]) {
		t.Fatalf("offset read = %q, want %q", got, data[len(data)-5:])
	}

	if err := c.DeleteLTXFiles(ctx, []*ltx.FileInfo{info, {Level: 0, MinTXID: 7, MaxTXID: 7}}); err != nil {
		t.Fatalf("delete (one file missing): %v", err)
	}
	if _, err := c.OpenLTXFile(ctx, 0, 1, 2, 0, 0); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("open deleted file: err = %v, want os.ErrNotExist", err)
	}
}

func TestReplicaClient_MissingBucket(t *testing.T) {
	cfg, _ := testBucket(t)
	cfg.Bucket = "missing-" + randomHex(t, 8)
	c := newClient(t, cfg)
	_, err := c.LTXFiles(t.Context(), 0, 0, false)
	if err == nil || !strings.Contains(err.Error(), "bucket does not exist") || !strings.Contains(err.Error(), cfg.Bucket) {
		t.Fatalf("err = %v, want a clear missing-bucket error naming %s", err, cfg.Bucket)
	}
	// Nothing was created behind our back.
	if _, err := c.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(ltxBytes(t, 1, 1, time.Now(), nil))); err == nil {
		t.Fatal("write into a missing bucket succeeded")
	}
}

func TestReplicaClient_PrefixIsolation(t *testing.T) {
	ctx := t.Context()
	cfg, store := testBucket(t)
	a := newClient(t, withPath(cfg, "app/a"))
	b := newClient(t, withPath(cfg, "/app/b/")) // slashes are trimmed
	bare := newClient(t, cfg)                   // upstream layout in the same bucket

	ts := time.Now().UTC().Truncate(time.Millisecond)
	write(t, a, 0, 1, 1, ts)
	write(t, a, 0, 2, 2, ts)
	write(t, b, 0, 1, 1, ts)
	write(t, bare, 0, 5, 5, ts)

	if _, err := store.GetInfo(ctx, "app/b/ltx/0/"+ltx.FormatFilename(1, 1)); err != nil {
		t.Fatalf("object not under <path>/ltx/<level>/: %v", err)
	}
	for name, tc := range map[string]struct {
		c    *nats.ReplicaClient
		want []ltx.TXID
	}{"a": {a, []ltx.TXID{1, 2}}, "b": {b, []ltx.TXID{1}}, "bare": {bare, []ltx.TXID{5}}} {
		if got := minTXIDs(list(t, tc.c, 0)); !slices.Equal(got, tc.want) {
			t.Fatalf("client %s lists %v, want %v", name, got, tc.want)
		}
	}

	if err := a.DeleteAll(ctx); err != nil {
		t.Fatal(err)
	}
	if got := minTXIDs(list(t, a, 0)); len(got) != 0 {
		t.Fatalf("after DeleteAll client a lists %v", got)
	}
	if got := minTXIDs(list(t, b, 0)); !slices.Equal(got, []ltx.TXID{1}) {
		t.Fatalf("DeleteAll of a removed b's files: b lists %v", got)
	}
	if got := minTXIDs(list(t, bare, 0)); !slices.Equal(got, []ltx.TXID{5}) {
		t.Fatalf("DeleteAll of a removed the bare layout's files: %v", got)
	}
}

func TestReplicaClient_ModTimeFallback(t *testing.T) {
	cfg, store := testBucket(t)
	c := newClient(t, cfg)
	// An object written by another tool, without the timestamp header.
	if _, err := store.PutBytes(t.Context(), "ltx/0/"+ltx.FormatFilename(3, 3), ltxBytes(t, 3, 3, time.Unix(0, 0), nil)); err != nil {
		t.Fatal(err)
	}
	oi, err := store.GetInfo(t.Context(), "ltx/0/"+ltx.FormatFilename(3, 3))
	if err != nil {
		t.Fatal(err)
	}
	infos := list(t, c, 0)
	if len(infos) != 1 || !infos[0].CreatedAt.Equal(oi.ModTime) {
		t.Fatalf("listed %+v, want CreatedAt = object mtime %v", infos, oi.ModTime)
	}
}

func TestReplicaClient_WrongPassword(t *testing.T) {
	cfg, _ := testBucket(t)
	cfg.Password = "wrong-secret-pw"
	cfg.MaxReconnects = new(int) // 0: fail at once
	_, err := newClient(t, cfg).LTXFiles(t.Context(), 0, 0, false)
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("err = %v, want an authorization error", err)
	}
	if strings.Contains(err.Error(), cfg.Password) {
		t.Fatalf("error leaks the password: %v", err)
	}
}

func TestReplicaClient_InvalidNKeyNotEchoed(t *testing.T) {
	cfg, _ := testBucket(t)
	cfg.Username = ""
	cfg.NKey = "SUNOTAVALIDSEEDATALL"
	_, err := newClient(t, cfg).LTXFiles(t.Context(), 0, 0, false)
	if err == nil || strings.Contains(err.Error(), cfg.NKey) {
		t.Fatalf("err = %v, want an nkey error that does not echo the seed", err)
	}
}

func TestNewReplicaClient_Validation(t *testing.T) {
	for name, cfg := range map[string]nats.Config{
		"no bucket":        {},
		"cert without key": {Bucket: "b", ClientCert: "c.pem"},
		"jwt without seed": {Bucket: "b", JWT: "eyJ..."},
	} {
		if _, err := nats.NewReplicaClient(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func withPath(cfg nats.Config, p string) nats.Config {
	cfg.Path = p
	return cfg
}

func minTXIDs(infos []*ltx.FileInfo) []ltx.TXID {
	var a []ltx.TXID
	for _, info := range infos {
		a = append(a, info.MinTXID)
	}
	return a
}
