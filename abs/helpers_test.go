package abs

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

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream/ltxfile"
)

// azurite holds start-servers.sh's Azurite variables.
type azurite struct {
	account, key, endpoint, container string
}

// requireAzurite skips the test unless the Azurite variables are set.
func requireAzurite(t *testing.T) azurite {
	t.Helper()
	a := azurite{
		account:   os.Getenv("AZURE_STORAGE_ACCOUNT"),
		key:       os.Getenv("AZURE_STORAGE_KEY"),
		endpoint:  os.Getenv("AZURE_BLOB_ENDPOINT"),
		container: os.Getenv("AZURE_CONTAINER"),
	}
	if a.account == "" || a.key == "" || a.endpoint == "" || a.container == "" {
		t.Skip("Azurite not configured: set AZURE_STORAGE_ACCOUNT, AZURE_STORAGE_KEY, AZURE_BLOB_ENDPOINT and AZURE_CONTAINER (see shared/testinfra/start-servers.sh)")
	}
	return a
}

// config returns a shared-key config for a fresh path, quick to give up.
func (a azurite) config(t *testing.T) Config {
	return Config{
		AccountName: a.account,
		AccountKey:  a.key,
		Endpoint:    a.endpoint,
		Container:   a.container,
		Path:        uniquePath(t),
		MaxRetries:  1,
		RetryDelay:  10 * time.Millisecond,
	}
}

// sasToken signs a container SAS with the given permissions.
func (a azurite) sasToken(t *testing.T, perms sas.ContainerPermissions) string {
	t.Helper()
	cred, err := azblob.NewSharedKeyCredential(a.account, a.key)
	if err != nil {
		t.Fatal(err)
	}
	qp, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		StartTime:     time.Now().Add(-time.Hour).UTC(),
		ExpiryTime:    time.Now().Add(time.Hour).UTC(),
		Permissions:   perms.String(),
		ContainerName: a.container,
	}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	return qp.Encode()
}

// rawContainer is a plain SDK client for checking what the client stored.
func (a azurite) rawContainer(t *testing.T) *container.Client {
	t.Helper()
	cred, err := azblob.NewSharedKeyCredential(a.account, a.key)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := azblob.NewClientWithSharedKeyCredential(a.endpoint+"/", cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	return svc.ServiceClient().NewContainerClient(a.container)
}

func uniquePath(t *testing.T) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return path.Join("test", t.Name(), hex.EncodeToString(b[:]))
}

// newTestClient returns an empty shared-key replica under a unique path.
func newTestClient(t *testing.T) *ReplicaClient {
	t.Helper()
	c, err := NewReplicaClient(requireAzurite(t).config(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteAll(context.Background()) })
	return c
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
