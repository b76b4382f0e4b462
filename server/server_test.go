package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sqlitebackup/litestream"
)

func startControl(t *testing.T, store *litestream.Store) (*Control, *Client) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "ls.sock")
	c := &Control{Store: store, Version: "v-test", NewDB: func(path, replicaURL string) (*litestream.DB, error) {
		if replicaURL != "file-replica" {
			return nil, errors.New("unsupported replica URL")
		}
		return newDB(path, path+"-replica"), nil
	}}
	if err := c.Listen(sock, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c, &Client{SocketPath: sock, Timeout: 10 * time.Second}
}

func wantAPIError(t *testing.T, err error, code int) {
	t.Helper()
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != code {
		t.Fatalf("want HTTP %d, got %v", code, err)
	}
}

func TestSocketControlEndpoints(t *testing.T) {
	dir := t.TempDir()
	a := newTestDB(t, dir, "a.db")
	store := openStore(t, a.db)
	ctrl, client := startControl(t, store)
	ctx := context.Background()

	info, err := client.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != "v-test" || info.PID != os.Getpid() || info.DatabaseCount != 1 || info.StartedAt.IsZero() {
		t.Fatalf("info: %+v", info)
	}

	// sync -wait: the write committed before the call is in the replica.
	a.write(t)
	sr, err := client.Sync(ctx, SyncRequest{Path: a.path, Wait: true})
	if err != nil {
		t.Fatal(err)
	}
	if sr.Status != StatusSynced || sr.TXID == 0 || sr.ReplicatedTXID < sr.TXID {
		t.Fatalf("sync -wait: %+v", sr)
	}
	// In level 0, or, as the replica's first file, in the snapshot level.
	if _, err := os.Stat(litestream.LTXFilePath(a.replica, 0, sr.TXID, sr.TXID)); err != nil {
		if _, err := os.Stat(litestream.LTXFilePath(a.replica, litestream.SnapshotLevel, 1, sr.TXID)); err != nil || sr.TXID != 1 {
			t.Fatalf("replica lacks the synced TXID %s: %v", sr.TXID, err)
		}
	}
	tx, err := client.TXID(ctx, a.path)
	if err != nil || tx.TXID < sr.TXID {
		t.Fatalf("txid: %+v %v", tx, err)
	}

	list, err := client.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Databases) != 1 || list.Databases[0].Path != a.path || list.Databases[0].Status != StateReplicating || list.Databases[0].LastSyncAt == nil {
		t.Fatalf("list: %+v", list)
	}

	// stop keeps the database registered; sync is refused until start.
	st, err := client.Stop(ctx, a.path)
	if err != nil || st.Status != StatusStopped {
		t.Fatalf("stop: %+v %v", st, err)
	}
	if st, err = client.Stop(ctx, a.path); err != nil || st.Status != StatusAlreadyStopped {
		t.Fatalf("second stop: %+v %v", st, err)
	}
	if len(ctrl.ActiveDBs()) != 0 {
		t.Fatal("a stopped database is still active")
	}
	_, err = client.Sync(ctx, SyncRequest{Path: a.path})
	wantAPIError(t, err, http.StatusConflict)
	a.write(t) // written while stopped: replicated after start
	if st, err = client.Start(ctx, a.path); err != nil || st.Status != StatusStarted {
		t.Fatalf("start: %+v %v", st, err)
	}
	if st, err = client.Start(ctx, a.path); err != nil || st.Status != StatusAlreadyRunning {
		t.Fatalf("second start: %+v %v", st, err)
	}
	if sr, err = client.Sync(ctx, SyncRequest{Path: a.path, Wait: true}); err != nil || sr.TXID <= tx.TXID {
		t.Fatalf("sync after start: %+v %v", sr, err)
	}

	// register and unregister a second database.
	b := newTestDB(t, dir, "b.db")
	reg, err := client.Register(ctx, RegisterRequest{Path: b.path, ReplicaURL: "file-replica"})
	if err != nil || reg.Status != StatusRegistered || reg.Path != b.path {
		t.Fatalf("register: %+v %v", reg, err)
	}
	if reg, err = client.Register(ctx, RegisterRequest{Path: b.path, ReplicaURL: "file-replica"}); err != nil || reg.Status != StatusAlreadyRegistered {
		t.Fatalf("second register: %+v %v", reg, err)
	}
	_, err = client.Register(ctx, RegisterRequest{Path: filepath.Join(dir, "c.db"), ReplicaURL: "bogus://x"})
	wantAPIError(t, err, http.StatusBadRequest)
	b.write(t)
	if sr, err = client.Sync(ctx, SyncRequest{Path: b.path, Wait: true}); err != nil || sr.ReplicatedTXID == 0 {
		t.Fatalf("sync registered db: %+v %v", sr, err)
	}
	un, err := client.Unregister(ctx, b.path)
	if err != nil || un.Status != StatusUnregistered || un.TXID != sr.TXID {
		t.Fatalf("unregister: %+v %v (synced %s)", un, err, sr.TXID)
	}
	if un, err = client.Unregister(ctx, b.path); err != nil || un.Status != StatusAlreadyUnregistered {
		t.Fatalf("second unregister: %+v %v", un, err)
	}
	if store.DB(b.path) != nil {
		t.Fatal("unregistered database still in the store")
	}

	_, err = client.Sync(ctx, SyncRequest{Path: filepath.Join(dir, "nope.db")})
	wantAPIError(t, err, http.StatusNotFound)
	_, err = client.TXID(ctx, filepath.Join(dir, "nope.db"))
	wantAPIError(t, err, http.StatusNotFound)
}

// TestSocketShutdownRefusesStateChanges: once Close begins, nothing may
// reopen a database the daemon is about to close.
func TestSocketShutdownRefusesStateChanges(t *testing.T) {
	a := newTestDB(t, t.TempDir(), "a.db")
	ctrl, client := startControl(t, openStore(t, a.db))
	if err := ctrl.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(client.SocketPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket not removed on close: %v", err)
	}
	if _, err := client.Info(context.Background()); err == nil {
		t.Fatal("closed socket still answers")
	}
	rec := httptest.NewRecorder()
	body, _ := json.Marshal(PathRequest{Path: a.path})
	ctrl.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/start", bytes.NewReader(body)))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("start after close: HTTP %d %s", rec.Code, rec.Body)
	}
}

func TestSocketClientWithoutDaemon(t *testing.T) {
	c := &Client{SocketPath: filepath.Join(t.TempDir(), "none.sock"), Timeout: time.Second}
	_, err := c.Info(context.Background())
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("want a not-exist error naming the socket, got %v", err)
	}
}
