package abs

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
)

func TestNewReplicaClientValidation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"no container", Config{AccountName: "a", AccountKey: "AAAA"}, "container"},
		{"no account, no endpoint", Config{Container: "c", SASToken: "sv=1&sig=x"}, "account-name required"},
		{"key without account", Config{Container: "c", Endpoint: "http://127.0.0.1:1/acct", AccountKey: "AAAA"}, "account-name required with account-key"},
		{"key not base64", Config{Container: "c", AccountName: "a", AccountKey: "not*base64!secret"}, "not valid base64"},
		{"endpoint without scheme", Config{Container: "c", AccountName: "a", AccountKey: "AAAA", Endpoint: "127.0.0.1:10000/a"}, "http(s) URL"},
		{"endpoint with query", Config{Container: "c", AccountName: "a", AccountKey: "AAAA", Endpoint: "https://a.blob.core.windows.net/?sig=secret"}, "must not contain a query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewReplicaClient(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error leaks a credential: %v", err)
			}
		})
	}
}

func TestServiceURLAndAccount(t *testing.T) {
	for _, tc := range []struct {
		cfg         Config
		url, acount string
	}{
		{Config{AccountName: "acct", Container: "c", AccountKey: "AAAA"}, "https://acct.blob.core.windows.net/", "acct"},
		{Config{Container: "c", SASToken: "sv=1", Endpoint: "https://acct.blob.core.chinacloudapi.cn"}, "https://acct.blob.core.chinacloudapi.cn/", "acct"},
		{Config{Container: "c", SASToken: "?sv=1", Endpoint: "http://127.0.0.1:10000/devstoreaccount1/"}, "http://127.0.0.1:10000/devstoreaccount1/", "devstoreaccount1"},
	} {
		u, err := serviceURL(tc.cfg)
		if err != nil || u != tc.url {
			t.Errorf("serviceURL(%v) = %q, %v; want %q", tc.cfg, u, err, tc.url)
		}
		c, err := NewReplicaClient(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if c.Account() != tc.acount {
			t.Errorf("account = %q, want %q", c.Account(), tc.acount)
		}
	}
}

func TestConfigStringHidesCredentials(t *testing.T) {
	cfg := Config{AccountName: "a", AccountKey: "KEYSECRET", SASToken: "sig=SASSECRET", Container: "c"}
	for _, s := range []string{cfg.String(), cfg.GoString()} {
		if strings.Contains(s, "SECRET") {
			t.Fatalf("Config string leaks a credential: %s", s)
		}
	}
}

func TestKeyLayoutAndTimestampMetadata(t *testing.T) {
	c := newTestClient(t)
	ctx := context.Background()
	ts := time.Date(2024, 5, 6, 7, 8, 9, 123e6, time.UTC)
	data := writeFile(t, c, 3, 5, 9, ts)

	key := c.Path() + "/ltx/3/0000000000000005-0000000000000009.ltx"
	props, err := requireAzurite(t).rawContainer(t).NewBlobClient(key).GetProperties(ctx, nil)
	if err != nil {
		t.Fatalf("blob not at %s: %v", key, err)
	}
	var stamp string
	for k, v := range props.Metadata {
		if strings.EqualFold(k, "litestreamtimestamp") && v != nil {
			stamp = *v
		}
	}
	if stamp != "2024-05-06T07:08:09.123Z" {
		t.Fatalf("metadata litestreamtimestamp = %q (metadata %v)", stamp, props.Metadata)
	}
	if props.ContentLength == nil || *props.ContentLength != int64(len(data)) {
		t.Fatalf("size = %v, want %d", props.ContentLength, len(data))
	}
	infos, err := litestream.LTXFileInfos(ctx, c, 3, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || !infos[0].CreatedAt.Equal(ts) || infos[0].Size != int64(len(data)) {
		t.Fatalf("listing = %+v, want one file created at %v", infos, ts)
	}
}

func TestCreatedAtFallsBackToBlobCreation(t *testing.T) {
	c := newTestClient(t)
	ctx := context.Background()
	bb := requireAzurite(t).rawContainer(t).NewBlockBlobClient(c.key(0, 1, 1))
	if _, err := bb.UploadBuffer(ctx, ltxBytes(t, 1, 1, time.Unix(0, 0)), nil); err != nil {
		t.Fatal(err)
	}
	props, err := bb.GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	infos, err := litestream.LTXFileInfos(ctx, c, 0, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || !infos[0].CreatedAt.Equal(props.CreationTime.UTC()) {
		t.Fatalf("listing = %+v, want CreatedAt = blob creation %v", infos, props.CreationTime)
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
	assertNames(t, err, "abs: open", c.Account(), c.Container(), c.key(0, 7, 7), "404", "BlobNotFound")
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
	// A blob beside the ltx tree is not the replica's and survives.
	other := requireAzurite(t).rawContainer(t).NewBlockBlobClient(c.Path() + "/other")
	if _, err := other.UploadBuffer(ctx, []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Delete(context.Background(), nil) })
	if err := c.DeleteAll(ctx); err != nil {
		t.Fatal(err)
	}
	for _, level := range []int{0, 9} {
		if infos, err := litestream.LTXFileInfos(ctx, c, level, 0, true); err != nil || len(infos) != 0 {
			t.Fatalf("level %d after DeleteAll: %+v, %v", level, infos, err)
		}
	}
	if _, err := other.GetProperties(ctx, nil); err != nil {
		t.Fatalf("blob outside ltx/ was deleted: %v", err)
	}
}

func TestMissingContainerIsAnError(t *testing.T) {
	cfg := requireAzurite(t).config(t)
	cfg.Container = "no-such-container"
	c, err := NewReplicaClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = c.LTXFiles(ctx, 0, 0, true)
	assertNames(t, err, "abs: list", cfg.AccountName, "no-such-container", cfg.Path+"/ltx/0/", "404", "ContainerNotFound")
	if errors.Is(err, os.ErrNotExist) {
		t.Error("a missing container must not look like a missing file")
	}
	_, err = c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(ltxBytes(t, 1, 1, time.Now())))
	assertNames(t, err, "abs: write", "no-such-container", "ContainerNotFound")
}

// TestWrongAccountKey: a key that does not sign correctly is refused with
// Azure's code, on listing and on writing alike.
func TestWrongAccountKey(t *testing.T) {
	cfg := requireAzurite(t).config(t)
	cfg.AccountKey = base64.StdEncoding.EncodeToString([]byte("definitely-not-the-account-key!!"))
	c, err := NewReplicaClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = c.LTXFiles(ctx, 0, 0, true)
	assertNames(t, err, "abs: list", cfg.AccountName, cfg.Container, "403", "AuthorizationFailure")
	if !errors.Is(err, os.ErrPermission) {
		t.Errorf("err = %v, want os.ErrPermission", err)
	}
	_, err = c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(ltxBytes(t, 1, 1, time.Now())))
	assertNames(t, err, "abs: write", cfg.AccountName, cfg.Container, c.key(0, 1, 1), "403")
}

// TestPermissionErrorsAreNotSwallowed (upstream issue #1016): with a SAS
// token lacking a permission, the failing operation reports Azure's 403
// with the operation, account, container and key, and the token's
// signature appears nowhere.
func TestPermissionErrorsAreNotSwallowed(t *testing.T) {
	az := requireAzurite(t)
	ctx := context.Background()
	sasClient := func(perms sas.ContainerPermissions) (*ReplicaClient, string) {
		cfg := az.config(t)
		token := az.sasToken(t, perms)
		cfg.AccountKey, cfg.SASToken = "", token
		c, err := NewReplicaClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c, token
	}

	t.Run("write without write permission", func(t *testing.T) {
		c, token := sasClient(sas.ContainerPermissions{Read: true, List: true})
		if _, err := c.LTXFiles(ctx, 0, 0, true); err != nil {
			t.Fatalf("list with read+list SAS: %v", err)
		}
		_, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(ltxBytes(t, 1, 1, time.Now())))
		assertNames(t, err, "abs: write", az.account, az.container, c.key(0, 1, 1), "403")
		assertPermissionError(t, err, token)
	})
	t.Run("list without list permission", func(t *testing.T) {
		c, token := sasClient(sas.ContainerPermissions{Read: true, Create: true, Write: true})
		if _, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(ltxBytes(t, 1, 1, time.Now()))); err != nil {
			t.Fatalf("write with create+write SAS: %v", err)
		}
		t.Cleanup(func() { newTestClientAt(t, c.Path()).DeleteAll(context.Background()) })
		_, err := c.LTXFiles(ctx, 0, 0, true)
		assertNames(t, err, "abs: list", az.account, az.container, c.Path()+"/ltx/0/", "403")
		assertPermissionError(t, err, token)
	})
}

func assertPermissionError(t *testing.T, err error, token string) {
	t.Helper()
	if !errors.Is(err, os.ErrPermission) {
		t.Errorf("err = %v, want os.ErrPermission", err)
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.ErrorCode == "" {
		t.Errorf("err = %v, want an *azcore.ResponseError with an error code", err)
	} else if !strings.Contains(err.Error(), re.ErrorCode) {
		t.Errorf("error %q does not show the server's code %q", err, re.ErrorCode)
	}
	assertNoSecret(t, err, token)
}

// newTestClientAt is a shared-key client on an existing path (cleanup).
func newTestClientAt(t *testing.T, p string) *ReplicaClient {
	cfg := requireAzurite(t).config(t)
	cfg.Path = p
	c, err := NewReplicaClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestUnreachableEndpoint(t *testing.T) {
	token := "sv=2021-08-06&sr=c&sp=rl&sig=SIGNATURESECRET"
	c, err := NewReplicaClient(Config{
		Endpoint:   "http://" + closedPort(t) + "/acct",
		Container:  "cont",
		Path:       "db",
		SASToken:   token,
		MaxRetries: 1,
		RetryDelay: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = c.LTXFiles(ctx, 0, 0, true)
	assertNames(t, err, "abs: list", "account=acct", "container=cont", "db/ltx/0/", "connection refused")
	assertNoSecret(t, err, token)
	if ctx.Err() != nil {
		t.Fatal("retries were not bounded: the call ran until the test deadline")
	}
}

func assertNoSecret(t *testing.T, err error, token string) {
	t.Helper()
	sig := token[strings.Index(token, "sig=")+4:]
	if sig, _, _ = strings.Cut(sig, "&"); sig == "" {
		t.Fatal("token has no signature")
	}
	if strings.Contains(err.Error(), sig) || strings.Contains(err.Error(), "sig=") {
		t.Errorf("error leaks the SAS signature: %v", err)
	}
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
