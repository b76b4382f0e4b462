package litestream_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
)

// gather reads one labelled series (gauge or counter) from the default
// registry; ok is false when it does not exist yet.
func gather(name string, labels map[string]string) (v float64, ok bool) {
	families, _ := prometheus.DefaultGatherer.Gather()
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue(), true
			}
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

// metricValue is gather for a series that must exist.
func metricValue(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok := gather(name, labels)
	if !ok {
		t.Fatalf("metric %s%v not found", name, labels)
	}
	return v
}

// counterOrZero reads a series that may not exist yet.
func counterOrZero(name string, labels map[string]string) float64 {
	v, _ := gather(name, labels)
	return v
}

// failingClient fails every upload, as a replica server that is down.
type failingClient struct{ litestream.ReplicaClient }

func (failingClient) WriteLTXFile(context.Context, int, ltx.TXID, ltx.TXID, io.Reader) (*ltx.FileInfo, error) {
	return nil, errors.New("replica server is down")
}

func TestMetricsMove(t *testing.T) {
	h := newHarness(t, 4096, nil)
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	db := map[string]string{"db": h.dbPath}
	putsBefore := counterOrZero("litestream_replica_operation_total", map[string]string{"replica_type": "file", "operation": "PUT"})
	for i := 0; i < 3; i++ {
		insertRows(t, h, 5)
		h.sync()
	}
	if got, want := metricValue(t, "litestream_txid", db), float64(h.db.Pos()); got != want {
		t.Fatalf("litestream_txid %v, want %v", got, want)
	}
	if got := metricValue(t, "litestream_replica_txid", db); got != float64(h.db.Pos()) {
		t.Fatalf("litestream_replica_txid %v, want %v", got, h.db.Pos())
	}
	if got := metricValue(t, "litestream_sync_count", db); got < 3 {
		t.Fatalf("litestream_sync_count %v", got)
	}
	if got := metricValue(t, "litestream_replication_lag_seconds", db); got != 0 {
		t.Fatalf("lag %v after SyncAndWait, want 0", got)
	}
	if got := metricValue(t, "litestream_replica_operation_total", map[string]string{"replica_type": "file", "operation": "PUT"}); got-putsBefore < 3 {
		t.Fatalf("PUT count grew by %v, want >= 3", got-putsBefore)
	}
	if metricValue(t, "litestream_total_wal_bytes", db) <= 0 || metricValue(t, "litestream_db_size", db) <= 0 {
		t.Fatal("WAL bytes or db size not recorded")
	}

	// With the replica down, lag grows and upload errors are counted.
	h.db.Replica.Client = litestream.Instrument(failingClient{h.client})
	insertRows(t, h, 5)
	if err := h.db.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := h.db.Replica.Sync(context.Background()); err == nil || !strings.Contains(err.Error(), "down") {
		t.Fatalf("upload to a down replica: %v", err)
	}
	if got := metricValue(t, "litestream_replica_operation_errors_total", map[string]string{"replica_type": "file", "operation": "PUT"}); got < 1 {
		t.Fatalf("PUT errors %v", got)
	}
	if lag := h.db.ReplicationLag(); lag <= 0 {
		t.Fatalf("lag %v while the replica is behind", lag)
	}
	h.db.Replica.Client = litestream.Instrument(h.client)
	if err := h.db.SyncAndWait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, "litestream_replication_lag_seconds", db); got != 0 {
		t.Fatalf("lag %v after recovery", got)
	}
}
