package file_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/file"
	"github.com/sqlitebackup/litestream/replicatest"
)

func TestLeaseConformance(t *testing.T) {
	replicatest.RunLeaseConformance(t, func(t *testing.T) (litestream.Leaser, litestream.Leaser) {
		dir := filepath.Join(t.TempDir(), "replica")
		return file.NewReplicaClient(dir), file.NewReplicaClient(dir)
	})
}

// TestLeaseFileLayout: the lease is <root>/lock.json holding
// {"owner","expires"}, and nothing else is left behind.
func TestLeaseFileLayout(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "replica")
	c := file.NewReplicaClient(dir)
	lease, err := c.AcquireLease(ctx, "host-a pid 1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := litestream.UnmarshalLease(b)
	if err != nil || got.Owner != "host-a pid 1" || !got.Expires.Equal(lease.Expires) {
		t.Fatalf("lock.json = %s (%v)", b, err)
	}
	if _, err := c.RenewLease(ctx, lease, time.Minute); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "lock.json" {
		t.Fatalf("replica root holds %v, want only lock.json", entries)
	}
}

// TestLeaseUnreadableFile: a damaged lease file counts as held by an
// unknown process until its mtime plus the TTL, then is taken over.
func TestLeaseUnreadableFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := filepath.Join(dir, "lock.json")
	if err := os.WriteFile(p, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := file.NewReplicaClient(dir)
	_, err := c.AcquireLease(ctx, "owner-a", time.Minute)
	var held *litestream.LeaseHeldError
	if !errors.As(err, &held) || !strings.Contains(held.Owner, "unreadable") {
		t.Fatalf("AcquireLease over a damaged lease file: %v", err)
	}
	old := time.Now().Add(-2 * time.Minute)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AcquireLease(ctx, "owner-a", time.Minute); err != nil {
		t.Fatalf("AcquireLease over a damaged, expired lease file: %v", err)
	}
}

// TestLeaseAbandonedMutex: a mutex file left by a process that died while
// changing the lease delays others only until it is stale.
func TestLeaseAbandonedMutex(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m := filepath.Join(dir, "lock.json.mutex")
	if err := os.WriteFile(m, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c := file.NewReplicaClient(dir)
	if _, err := c.AcquireLease(ctx, "owner-a", time.Minute); err == nil || !strings.Contains(err.Error(), m) {
		t.Fatalf("AcquireLease with a fresh mutex file present: %v; want an error naming %s", err, m)
	}
	old := time.Now().Add(-2 * time.Minute)
	if err := os.Chtimes(m, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AcquireLease(ctx, "owner-a", time.Minute); err != nil {
		t.Fatalf("AcquireLease with an abandoned mutex file: %v", err)
	}
	if _, err := os.Stat(m); !os.IsNotExist(err) {
		t.Fatalf("mutex file left behind: %v", err)
	}
}

// TestLeaseMissingDirectory: renewing or releasing a lease in a replica
// directory that does not exist reports the lease as not held.
func TestLeaseMissingDirectory(t *testing.T) {
	ctx := context.Background()
	c := file.NewReplicaClient(filepath.Join(t.TempDir(), "missing"))
	_, err := c.RenewLease(ctx, &litestream.Lease{Owner: "a", Token: "x"}, time.Minute)
	if !errors.Is(err, litestream.ErrLeaseHeld) {
		t.Fatalf("RenewLease in a missing directory: %v", err)
	}
	if err := c.ReleaseLease(ctx, &litestream.Lease{Owner: "a", Token: "x"}); err != nil {
		t.Fatalf("ReleaseLease in a missing directory: %v", err)
	}
}
