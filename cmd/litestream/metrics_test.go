package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestMetricsFromReplicateProcess scrapes /metrics from a real replicate
// process: under a write load litestream_txid rises, the replication lag
// returns to 0 once writes stop, and when the replica directory is
// replaced by a regular file the replica operation errors rise and the
// lag grows. pprof is off unless configured.
func TestMetricsFromReplicateProcess(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	replicaDir := filepath.Join(dir, "replica")
	cfg := writeConfig(t, dir, fmt.Sprintf(`addr: 127.0.0.1:0
dbs:
  - path: %s
    monitor-interval: 10ms
    replica:
      path: %s
      sync-interval: 10ms
`, dbPath, replicaDir))
	app := openApp(t, dbPath)
	mustExec(t, app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	d := startDaemon(t, cfg)
	addr := d.metricsAddr(t)
	db := map[string]string{"db": dbPath}

	// A write load: the local TXID must be seen rising across scrapes.
	var stop atomic.Bool
	writerDone := make(chan error, 1)
	go func() {
		for !stop.Load() {
			if _, err := app.Exec("INSERT INTO t (v) VALUES (randomblob(200))"); err != nil {
				writerDone <- err
				return
			}
			time.Sleep(time.Millisecond)
		}
		writerDone <- nil
	}()
	var rises int
	last := -1.0
	poll(t, 30*time.Second, "litestream_txid rising three times under load", func() (bool, string) {
		v := metricSum(scrape(t, addr), "litestream_txid", db)
		if last >= 0 && v > last {
			rises++
		}
		last = v
		return rises >= 3, fmt.Sprintf("txid=%v rises=%d", v, rises)
	})
	stop.Store(true)
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}

	// Writes stopped: the replica catches up and the lag is 0.
	poll(t, 30*time.Second, "lag back to 0 with the replica at the local TXID", func() (bool, string) {
		m := scrape(t, addr)
		txid, rtxid := metricSum(m, "litestream_txid", db), metricSum(m, "litestream_replica_txid", db)
		lag := metricSum(m, "litestream_replication_lag_seconds", db)
		return txid > 0 && rtxid == txid && lag == 0, fmt.Sprintf("txid=%v replica_txid=%v lag=%v", txid, rtxid, lag)
	})
	m := scrape(t, addr)
	if metricSum(m, "litestream_sync_count", db) == 0 || metricSum(m, "litestream_replica_operation_total", map[string]string{"replica_type": "file", "operation": "PUT"}) == 0 {
		t.Fatal("sync and PUT counters did not move")
	}
	fileErrs := map[string]string{"replica_type": "file"}
	errsBefore := metricSum(m, "litestream_replica_operation_errors_total", fileErrs)

	// The replica directory becomes a regular file (chmod does not stop
	// root): uploads fail, errors are counted and the lag grows.
	if err := os.Rename(replicaDir, replicaDir+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(replicaDir, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustExec(t, app, "INSERT INTO t (v) VALUES (randomblob(200))")
	poll(t, 30*time.Second, "replica errors counted and lag above 0", func() (bool, string) {
		m := scrape(t, addr)
		errs := metricSum(m, "litestream_replica_operation_errors_total", fileErrs)
		lag := metricSum(m, "litestream_replication_lag_seconds", db)
		return errs > errsBefore && lag > 0, fmt.Sprintf("errors=%v (before %v) lag=%v", errs, errsBefore, lag)
	})

	// The replica comes back: the lag returns to 0.
	if err := os.Remove(replicaDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(replicaDir+".moved", replicaDir); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "lag back to 0 after the replica recovered", func() (bool, string) {
		lag := metricSum(scrape(t, addr), "litestream_replication_lag_seconds", db)
		return lag == 0, fmt.Sprintf("lag=%v", lag)
	})
	if code := httpStatus(t, "http://"+addr+"/debug/pprof/"); code != 404 {
		t.Fatalf("pprof served without pprof: true (HTTP %d)", code)
	}
	d.stop(t)
}
