package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestHeartbeatFromReplicate runs replicate (in-process, so the interval
// can be shortened) with heartbeat-url pointing at a local server on
// 127.0.0.1, and waits for repeated pings while the database replicates.
func TestHeartbeatFromReplicate(t *testing.T) {
	var pings atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/ping/token" {
			pings.Add(1)
		}
	}))
	defer srv.Close()

	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	app := openApp(t, dbPath)
	mustExec(t, app, "CREATE TABLE t (v TEXT)")
	cfg := writeConfig(t, dir, fmt.Sprintf(`heartbeat-url: %s/ping/token
dbs:
  - path: %s
    monitor-interval: 10ms
    replica:
      path: %s
      sync-interval: 10ms
`, srv.URL, dbPath, filepath.Join(dir, "replica")))

	testHeartbeatInterval = 50 * time.Millisecond
	defer func() { testHeartbeatInterval = 0 }()
	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"replicate", "-config", cfg}, out, out) }()

	poll(t, 20*time.Second, "three heartbeats", func() (bool, string) {
		mustExec(t, app, "INSERT INTO t VALUES ('x')")
		return pings.Load() >= 3, fmt.Sprintf("%d pings", pings.Load())
	})
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("replicate exited %d:\n%s", code, out)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("replicate did not stop")
	}
}
