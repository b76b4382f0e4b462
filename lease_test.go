package litestream_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/file"
)

// leaseSide is one replicator of a shared replica: its own database.
type leaseSide struct {
	path string
	app  *sql.DB
	db   *litestream.DB
}

func newLeaseSide(t *testing.T, name, replicaDir string, configure func(r *litestream.Replica)) *leaseSide {
	t.Helper()
	s := &leaseSide{path: filepath.Join(t.TempDir(), name+".db")}
	s.app = openApp(t, s.path, 4096)
	mustExec(t, s.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
	s.db = litestream.NewDB(s.path)
	s.db.MonitorInterval = 0
	r := litestream.NewReplica(s.db, file.NewReplicaClient(replicaDir))
	if configure != nil {
		configure(r)
	}
	if err := s.db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.db.Close(context.Background()) })
	return s
}

func (s *leaseSide) insert(t *testing.T, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		mustExec(t, s.app, "INSERT INTO t (v) VALUES (?)", filepath.Base(s.path))
	}
}

// wantLeaseHeld checks err is a refusal naming holder.
func wantLeaseHeld(t *testing.T, what string, err error, holder string) {
	t.Helper()
	var held *litestream.LeaseHeldError
	if !errors.Is(err, litestream.ErrLeaseHeld) || !errors.As(err, &held) || !strings.Contains(held.Owner, holder) {
		t.Fatalf("%s: got %v, want the lease held by %s", what, err, holder)
	}
}

// sameLevelZero checks that every level-0 file of the replica is the
// file of the same name in db's meta directory.
func sameLevelZero(t *testing.T, replicaDir string, db *litestream.DB) int {
	t.Helper()
	n := 0
	// The first file of an empty replica goes to the snapshot level.
	for _, level := range []string{"0", "9"} {
		entries, err := os.ReadDir(filepath.Join(replicaDir, "ltx", level))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range entries {
			got, err := os.ReadFile(filepath.Join(replicaDir, "ltx", level, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join(db.LTXDir(), e.Name()))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("replica file %s of level %s is not the holder's (%v)", e.Name(), level, err)
			}
		}
		n += len(entries)
	}
	return n
}

// TestLeaseSecondWriterRefused: while one replicator holds the lease,
// every write path of another (upload, compaction, snapshot, both
// retentions) is refused and writes nothing; once the holder stops, the
// other takes the lease and continues the replica after the holder's
// files with its own database.
func TestLeaseSecondWriterRefused(t *testing.T) {
	ctx := context.Background()
	replicaDir := filepath.Join(t.TempDir(), "replica")
	a := newLeaseSide(t, "a", replicaDir, nil)
	a.insert(t, 3)
	if err := a.db.SyncAndWait(ctx); err != nil {
		t.Fatal(err)
	}
	if !a.db.Replica.HoldsLease() {
		t.Fatal("holder does not hold the lease after uploading")
	}

	b := newLeaseSide(t, "b", replicaDir, nil)
	b.insert(t, 5)
	if err := b.db.Sync(ctx); err != nil {
		t.Fatal(err) // local level-0 files need no lease
	}
	r := b.db.Replica
	wantLeaseHeld(t, "upload", r.Sync(ctx), a.path)
	_, err := r.Compact(ctx, 1)
	wantLeaseHeld(t, "compaction", err, a.path)
	_, err = r.Snapshot(ctx)
	wantLeaseHeld(t, "snapshot", err, a.path)
	wantLeaseHeld(t, "retention", r.EnforceRetention(ctx, time.Now(), litestream.RetentionPolicy{SnapshotRetention: time.Hour, DeleteRemote: true}), a.path)
	wantLeaseHeld(t, "level-0 retention", r.EnforceL0Retention(ctx, time.Now(), time.Nanosecond, true), a.path)
	if r.HoldsLease() {
		t.Fatal("second replicator claims the lease")
	}
	n := sameLevelZero(t, replicaDir, a.db)
	// sameLevelZero checked that levels 0 and 9 hold only the holder's files.
	if entries, _ := os.ReadDir(filepath.Join(replicaDir, "ltx", "1")); len(entries) != 0 {
		t.Fatalf("level 1 has %d files written without the lease", len(entries))
	}

	// The holder keeps writing, compaction included.
	a.insert(t, 1)
	if err := a.db.SyncAndWait(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.db.Replica.Compact(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if got := sameLevelZero(t, replicaDir, a.db); got != n+1 {
		t.Fatalf("replica has %d level-0 and snapshot files, want %d", got, n+1)
	}

	// The holder stops and releases; the other continues after it.
	if err := a.db.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.db.SyncAndWait(ctx); err != nil {
		t.Fatal(err)
	}
	if !r.HoldsLease() || b.db.Pos() <= ltx.TXID(n+1) {
		t.Fatalf("after takeover: holds lease %v, position %s", r.HoldsLease(), b.db.Pos())
	}
	client := file.NewReplicaClient(replicaDir)
	if problems, err := litestream.ValidateLevels(ctx, client); err != nil || len(problems) != 0 {
		t.Fatalf("replica after takeover: %v %v", problems, err)
	}
	out := filepath.Join(t.TempDir(), "restored.db")
	if _, err := litestream.Restore(ctx, client, litestream.RestoreOptions{OutputPath: out, IntegrityCheck: "full"}); err != nil {
		t.Fatal(err)
	}
	if got, want := contentHash(t, out), contentHash(t, b.path); got != want {
		t.Fatal("replica does not restore to the new holder's database")
	}
}

// TestLeaseLostStopsWrites: when another process takes the lease (here:
// overwrites it, as after a stall past its expiry) the holder notices at
// its next renewal and writes nothing more; with LeaseWait off it
// reports the failure.
func TestLeaseLostStopsWrites(t *testing.T) {
	ctx := context.Background()
	replicaDir := filepath.Join(t.TempDir(), "replica")
	a := newLeaseSide(t, "a", replicaDir, func(r *litestream.Replica) {
		r.LeaseTTL, r.LeaseWait = litestream.MinLeaseTTL, false
	})
	a.insert(t, 2)
	if err := a.db.SyncAndWait(ctx); err != nil {
		t.Fatal(err)
	}
	n := sameLevelZero(t, replicaDir, a.db)
	intruder := litestream.MarshalLease("intruder on host-b", time.Now().Add(time.Minute))
	if err := os.WriteFile(filepath.Join(replicaDir, "lock.json"), intruder, 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.db.Replica.LeaseFailed():
	case <-time.After(10 * time.Second):
		t.Fatal("lease loss not noticed within 10s (renewal every TTL/3)")
	}
	wantLeaseHeld(t, "LeaseErr", a.db.Replica.LeaseErr(), "intruder")
	if a.db.Replica.HoldsLease() {
		t.Fatal("replica still claims the lost lease")
	}
	a.insert(t, 2)
	if err := a.db.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	wantLeaseHeld(t, "upload after loss", a.db.Replica.Sync(ctx), "intruder")
	if got := sameLevelZero(t, replicaDir, a.db); got != n {
		t.Fatalf("replica has %d level-0 files after the lease was lost, want %d", got, n)
	}
	if b, _ := os.ReadFile(filepath.Join(replicaDir, "lock.json")); !bytes.Equal(b, intruder) {
		t.Fatalf("the new holder's lease was changed: %s", b)
	}
}

// TestLeaseOnlyWithLeaser: a client without lease support replicates as
// before and no lease object appears.
func TestLeaseOnlyWithLeaser(t *testing.T) {
	dir := t.TempDir()
	replicaDir := filepath.Join(dir, "replica")
	db := newReplicatedDB(t, filepath.Join(dir, "app.db"), &countingClient{ReplicaClient: file.NewReplicaClient(replicaDir)})
	app := openApp(t, db.Path(), 4096)
	mustExec(t, app, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
	if err := db.SyncAndWait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(replicaDir, "lock.json")); !os.IsNotExist(err) {
		t.Fatalf("lock.json written through a client without lease support: %v", err)
	}
}

// TestIdleLeaseLapses: an idle replica stops renewing its lease (no
// storage requests while nothing changes) and takes it again on the next
// write.
func TestIdleLeaseLapses(t *testing.T) {
	ctx := context.Background()
	replicaDir := filepath.Join(t.TempDir(), "replica")
	a := newLeaseSide(t, "a", replicaDir, func(r *litestream.Replica) { r.LeaseTTL = litestream.MinLeaseTTL })
	a.insert(t, 1)
	if err := a.db.SyncAndWait(ctx); err != nil {
		t.Fatal(err)
	}
	if !a.db.Replica.HoldsLease() {
		t.Fatal("no lease after a write")
	}
	waitFor(t, "the idle lease to lapse", func() bool { return !a.db.Replica.HoldsLease() })
	a.insert(t, 1)
	if err := a.db.SyncAndWait(ctx); err != nil {
		t.Fatal(err)
	}
	if !a.db.Replica.HoldsLease() {
		t.Fatal("lease not re-acquired for a write")
	}
	sameLevelZero(t, replicaDir, a.db)
	out := filepath.Join(t.TempDir(), "restored.db")
	if _, err := litestream.Restore(ctx, file.NewReplicaClient(replicaDir), litestream.RestoreOptions{OutputPath: out, IntegrityCheck: "full"}); err != nil {
		t.Fatal(err)
	}
	if contentHash(t, out) != contentHash(t, a.path) {
		t.Fatal("replica does not restore to the database")
	}
}

// gatedClient holds uploads until its gate opens; Unwrap exposes the
// file client's lease support.
type gatedClient struct {
	litestream.ReplicaClient
	entered chan struct{}
	gate    chan struct{}
}

func (c *gatedClient) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	select {
	case c.entered <- struct{}{}:
	default:
	}
	select {
	case <-c.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return c.ReplicaClient.WriteLTXFile(ctx, level, minTXID, maxTXID, r)
}

func (c *gatedClient) Unwrap() litestream.ReplicaClient { return c.ReplicaClient }

// TestLeaseRenewedDuringLongWrite: an upload that outlasts several
// renewal periods keeps the lease renewed (it is in use, not idle) and
// completes under it.
func TestLeaseRenewedDuringLongWrite(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	replicaDir := filepath.Join(dir, "replica")
	client := &gatedClient{ReplicaClient: file.NewReplicaClient(replicaDir), entered: make(chan struct{}, 1), gate: make(chan struct{})}
	path := filepath.Join(dir, "app.db")
	app := openApp(t, path, 4096)
	mustExec(t, app, "CREATE TABLE t (x)")
	db := litestream.NewDB(path)
	db.MonitorInterval = 0
	r := litestream.NewReplica(db, client)
	r.LeaseTTL = litestream.MinLeaseTTL
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(ctx) })
	var once sync.Once
	open := func() { once.Do(func() { close(client.gate) }) }
	t.Cleanup(open) // runs first: a failed test must not leave the upload held

	done := make(chan error, 1)
	go func() { done <- db.SyncAndWait(ctx) }()
	select {
	case <-client.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("upload did not start")
	}
	expiry := func() time.Time {
		b, err := os.ReadFile(filepath.Join(replicaDir, "lock.json"))
		if err != nil {
			t.Fatal(err)
		}
		l, err := litestream.UnmarshalLease(b)
		if err != nil {
			t.Fatal(err)
		}
		return l.Expires
	}
	first := expiry()
	waitFor(t, "three renewals during the upload", func() bool {
		if !r.HoldsLease() {
			t.Fatal("lease dropped while an upload runs under it")
		}
		return expiry().After(first.Add(litestream.MinLeaseTTL))
	})
	open()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("upload under a renewed lease: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("upload did not finish")
	}
	if _, err := os.Stat(filepath.Join(replicaDir, "ltx", "9", ltx.FormatFilename(1, 1))); err != nil {
		t.Fatal(err)
	}
}
