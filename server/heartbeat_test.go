package server

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqlitebackup/litestream"
)

// pingServer is the dead-man's-switch endpoint, on 127.0.0.1.
type pingServer struct {
	*httptest.Server
	pings  atomic.Int64
	status atomic.Int64
}

func newPingServer(t *testing.T) *pingServer {
	p := &pingServer{}
	p.status.Store(http.StatusOK)
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/ping/secret-token" {
			p.pings.Add(1)
		}
		w.WriteHeader(int(p.status.Load()))
	}))
	t.Cleanup(p.Close)
	return p
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestHeartbeatPingsWhileReplicating runs the heartbeat for real with a
// short interval: it pings repeatedly while the database replicates.
func TestHeartbeatPingsWhileReplicating(t *testing.T) {
	srv := newPingServer(t)
	a := newTestDB(t, t.TempDir(), "a.db")
	store := openStore(t, a.db)
	a.write(t)
	if err := a.db.SyncAndWait(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := &Heartbeat{URL: srv.URL + "/ping/secret-token", Interval: 50 * time.Millisecond, DBs: store.DBs, checkEvery: 5 * time.Millisecond}
	h.Start()
	defer h.Stop()
	eventually(t, "three heartbeats", func() bool { return srv.pings.Load() >= 3 })
}

// TestHeartbeatWithheld drives check with explicit times: no ping while a
// replica is failing, none without databases, failures and recovery
// logged once each, and the URL's token never logged.
func TestHeartbeatWithheld(t *testing.T) {
	srv := newPingServer(t)
	dir := t.TempDir()
	a := newTestDB(t, dir, "a.db")
	store := openStore(t, a.db)
	ctx := context.Background()
	var logs syncBuffer
	const interval = time.Minute
	h := &Heartbeat{URL: srv.URL + "/ping/secret-token", Interval: interval, DBs: store.DBs,
		Client: srv.Client(), Logger: slog.New(slog.NewTextHandler(&logs, nil))}

	// A database whose replica never completed a pass is not healthy.
	fresh := &Heartbeat{URL: h.URL, Interval: interval, Client: srv.Client(), Logger: h.Logger,
		DBs: func() []*litestream.DB { return []*litestream.DB{newDB(dir+"/never.db", dir+"/never-replica")} }}
	fresh.check(ctx, time.Now())
	if srv.pings.Load() != 0 {
		t.Fatal("pinged before the replica ever synced")
	}
	a.write(t)
	if err := a.db.SyncAndWait(ctx); err != nil {
		t.Fatal(err)
	}
	h.check(ctx, time.Now())
	if n := srv.pings.Load(); n != 1 {
		t.Fatalf("pings = %d after a healthy check, want 1", n)
	}
	h.check(ctx, time.Now()) // within the interval: no second ping
	if n := srv.pings.Load(); n != 1 {
		t.Fatalf("pings = %d within one interval, want 1", n)
	}

	// An idle database that is caught up stays healthy after the interval.
	later := time.Now().Add(2 * interval)
	h.check(ctx, later)
	if n := srv.pings.Load(); n != 2 {
		t.Fatalf("pings = %d for an idle caught-up database, want 2", n)
	}

	// The endpoint fails, then recovers: one line each.
	srv.status.Store(http.StatusServiceUnavailable)
	later = later.Add(interval)
	h.check(ctx, later)
	srv.status.Store(http.StatusOK)
	later = later.Add(interval)
	h.check(ctx, later)
	if n := srv.pings.Load(); n != 4 {
		t.Fatalf("pings = %d, want 4", n)
	}

	// The replica breaks (its directory becomes a file): pending changes
	// are not uploaded, so after the interval no ping is sent.
	if err := os.RemoveAll(a.replica); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.replica, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(a.replica) }) // lets the store's final sync succeed
	a.write(t)
	if err := a.db.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.db.Replica.Sync(ctx); err == nil {
		t.Fatal("replica sync into a file should fail")
	}
	if a.db.Replica.Pos() >= a.db.Pos() {
		t.Fatal("replica should be behind")
	}
	later = later.Add(interval)
	if later.Sub(a.db.Replica.LastSyncAt()) <= interval {
		t.Fatal("test clock: the last successful sync must be older than the interval")
	}
	h.check(ctx, later)
	if n := srv.pings.Load(); n != 4 {
		t.Fatalf("pings = %d while the replica fails, want 4", n)
	}

	// No databases: no ping.
	empty := &Heartbeat{URL: h.URL, Interval: interval, DBs: func() []*litestream.DB { return nil }, Client: srv.Client(), Logger: h.Logger}
	empty.check(ctx, time.Now())
	if n := srv.pings.Load(); n != 4 {
		t.Fatalf("pinged with no databases")
	}

	out := logs.String()
	for _, want := range []string{"heartbeat failed", "503", "heartbeat recovered", "heartbeat withheld", "has not synced", "has not synced to its replica yet"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "heartbeat failed") != 1 {
		t.Errorf("failure logged more than once:\n%s", out)
	}
	if strings.Contains(out, "secret-token") {
		t.Errorf("heartbeat URL token in the log:\n%s", out)
	}
}
