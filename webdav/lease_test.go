package webdav_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	xwebdav "golang.org/x/net/webdav"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/replicatest"
	"github.com/sqlitebackup/litestream/webdav"
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

// TestLeaseWithoutLocking: on a server that answers LOCK with 405 (a
// class-1 WebDAV server such as nginx's dav module; here x/net/webdav
// with locking refused) the lease still works for processes that do not
// race each other.
func TestLeaseWithoutLocking(t *testing.T) {
	dav := &xwebdav.Handler{FileSystem: xwebdav.NewMemFS(), LockSystem: xwebdav.NewMemLS()}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "LOCK" || r.Method == "UNLOCK" {
			http.Error(w, "no locking here", http.StatusMethodNotAllowed)
			return
		}
		dav.ServeHTTP(w, r)
	}))
	defer srv.Close()
	newClient := func() *webdav.ReplicaClient {
		c, err := webdav.NewReplicaClient(webdav.Config{URL: srv.URL, Path: "/db"})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctx := context.Background()
	a, b := newClient(), newClient()
	la, err := a.AcquireLease(ctx, "owner-a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var held *litestream.LeaseHeldError
	if _, err := b.AcquireLease(ctx, "owner-b", time.Minute); !errors.As(err, &held) || held.Owner != "owner-a" {
		t.Fatalf("second acquisition: %v, want held by owner-a", err)
	}
	if la, err = a.RenewLease(ctx, la, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := a.ReleaseLease(ctx, la); err != nil {
		t.Fatal(err)
	}
	lb, err := b.AcquireLease(ctx, "owner-b", time.Minute)
	if err != nil {
		t.Fatalf("acquisition after release: %v", err)
	}
	if _, err := a.RenewLease(ctx, la, time.Minute); !errors.As(err, &held) || held.Owner != "owner-b" || !held.Expires.Equal(lb.Expires) {
		t.Fatalf("renewal of a released lease: %v, want held by owner-b", err)
	}
}
