package webdav_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/replicatest"
)

// TestLeaseConformance runs the shared lease suite against the WebDAV
// test server (Apache mod_dav_fs): two clients on one collection.
func TestLeaseConformance(t *testing.T) {
	testConfig(t) // skips with a message when the server is not configured
	replicatest.RunLeaseConformance(t, func(t *testing.T) (litestream.Leaser, litestream.Leaser) {
		cfg := testConfig(t)
		return newClient(t, cfg), newClient(t, cfg)
	})
}

// TestLeaseFileLayout: the lease is <path>/lock.json holding
// {"owner","expires"}, the collection is created on first acquisition,
// and no WebDAV lock is left behind.
func TestLeaseFileLayout(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	c := newClient(t, cfg)
	lease, err := c.AcquireLease(ctx, "host-a pid 1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(localDir(cfg), "lock.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := litestream.UnmarshalLease(b)
	if err != nil || got.Owner != "host-a pid 1" || !got.Expires.Equal(lease.Expires) {
		t.Fatalf("lock.json = %s (%v)", b, err)
	}
	if lease, err = c.RenewLease(ctx, lease, time.Minute); err != nil {
		t.Fatal(err)
	}
	// No lock is left on the file: an unconditional PUT (an operator
	// replacing the lease by hand) is accepted, and the holder notices.
	body := litestream.MarshalLease("host-b pid 2", time.Now().Add(time.Hour))
	rq, err := http.NewRequestWithContext(ctx, http.MethodPut, strings.TrimSuffix(cfg.URL, "/")+cfg.Path+"/lock.json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	rq.SetBasicAuth(cfg.Username, cfg.Password)
	rs, err := http.DefaultClient.Do(rq)
	if err != nil {
		t.Fatal(err)
	}
	rs.Body.Close()
	if rs.StatusCode/100 != 2 {
		t.Fatalf("plain PUT of lock.json after a renewal: HTTP %d (a WebDAV lock left behind?)", rs.StatusCode)
	}
	if _, err := c.RenewLease(ctx, lease, time.Minute); !errors.Is(err, litestream.ErrLeaseHeld) {
		t.Fatalf("renewal after the lease file changed: %v, want ErrLeaseHeld", err)
	}
}

// TestLeaseMissingCollection: renewing or releasing in a replica whose
// collection is gone reports the lease as not ours, without creating it.
func TestLeaseMissingCollection(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	c := newClient(t, cfg)
	stale := &litestream.Lease{Owner: "a", Expires: time.Now().Add(time.Minute), Token: "x"}
	if _, err := c.RenewLease(ctx, stale, time.Minute); !errors.Is(err, litestream.ErrLeaseHeld) {
		t.Fatalf("RenewLease without a collection: %v, want ErrLeaseHeld", err)
	}
	if err := c.ReleaseLease(ctx, stale); err != nil {
		t.Fatalf("ReleaseLease without a collection: %v", err)
	}
	if _, err := os.Stat(localDir(cfg)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("collection created by a renewal (stat: %v)", err)
	}
}
