package s3

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/replicatest"
)

// leasePair returns two clients on one fresh prefix, as two processes
// would have them; the prefix (lease included) is deleted at cleanup.
func leasePair(t *testing.T, srv testServer) (*ReplicaClient, *ReplicaClient) {
	t.Helper()
	cfg := srv.config(uniquePath(t))
	var clients [2]*ReplicaClient
	for i := range clients {
		c, err := NewReplicaClient(cfg)
		if err != nil {
			t.Fatalf("NewReplicaClient: %v", err)
		}
		clients[i] = c
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := clients[0].DeleteAll(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return clients[0], clients[1]
}

func TestLeaseConformance(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testServer) {
		replicatest.RunLeaseConformance(t, func(t *testing.T) (litestream.Leaser, litestream.Leaser) {
			return leasePair(t, srv)
		})
	})
}

// TestLeaseObject: the lease is <path>/lock.json with {"owner","expires"};
// a release leaves an expired lease with no owner (MinIO would ignore a
// condition on DeleteObject).
func TestLeaseObject(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testServer) {
		ctx := context.Background()
		c, _ := leasePair(t, srv)
		lease, err := c.AcquireLease(ctx, "host-a pid 1", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		got := readLeaseObject(t, srv, c.Path()+"/lock.json")
		if got.Owner != "host-a pid 1" || !got.Expires.Equal(lease.Expires) {
			t.Fatalf("lock.json holds %+v, want %+v", got, lease)
		}
		if err := c.ReleaseLease(ctx, lease); err != nil {
			t.Fatal(err)
		}
		got = readLeaseObject(t, srv, c.Path()+"/lock.json")
		if got.Owner != "" || !got.Expired(time.Now()) {
			t.Fatalf("released lease is %+v", got)
		}
	})
}

func readLeaseObject(t *testing.T, srv testServer, key string) *litestream.Lease {
	t.Helper()
	out, err := srv.rawClient().GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(srv.config("").Bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	lease, err := litestream.UnmarshalLease(b)
	if err != nil {
		t.Fatalf("%s: %v (%s)", key, err, b)
	}
	return lease
}
