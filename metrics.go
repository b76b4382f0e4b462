package litestream

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/superfly/ltx"
)

// Metrics use Litestream v0.5's names, types and labels so existing
// dashboards and alerts keep working; the ones upstream lacks (replica
// position, lag, last sync, compaction) are added under new names.
var (
	dbSizeGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "litestream_db_size", Help: "Size of the database file, in bytes.",
	}, []string{"db"})
	walSizeGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "litestream_wal_size", Help: "Synced end of the WAL, in bytes.",
	}, []string{"db"})
	totalWALBytesCounter = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "litestream_total_wal_bytes", Help: "WAL bytes copied into level-0 LTX files.",
	}, []string{"db"})
	txidGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "litestream_txid", Help: "Last level-0 TXID written locally.",
	}, []string{"db"})
	syncCounter = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "litestream_sync_count", Help: "Sync passes.",
	}, []string{"db"})
	syncErrorCounter = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "litestream_sync_error_count", Help: "Failed sync passes.",
	}, []string{"db"})
	syncSecondsCounter = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "litestream_sync_seconds", Help: "Time spent syncing, in seconds.",
	}, []string{"db"})
	diskFullGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "litestream_disk_full", Help: "1 while replication is paused because the disk is full.",
	}, []string{"db"})
	checkpointCounter = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "litestream_checkpoint_count", Help: "Checkpoints.",
	}, []string{"db", "mode"})
	checkpointErrorCounter = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "litestream_checkpoint_error_count", Help: "Failed checkpoints.",
	}, []string{"db", "mode"})
	checkpointSecondsCounter = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "litestream_checkpoint_seconds", Help: "Time spent checkpointing, in seconds.",
	}, []string{"db", "mode"})
	compactionVerifyErrorCounter = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "litestream_compaction_verify_error_count", Help: "Replica validation problems found.",
	}, []string{"db"})
	replicaOpCounter = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "litestream_replica_operation_total", Help: "Replica operations.",
	}, []string{"replica_type", "operation"})
	replicaOpBytesCounter = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "litestream_replica_operation_bytes", Help: "Bytes moved by replica operations.",
	}, []string{"replica_type", "operation"})
	replicaOpDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name: "litestream_replica_operation_duration_seconds", Help: "Duration of replica operations.",
		Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"replica_type", "operation"})
	replicaOpErrorCounter = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "litestream_replica_operation_errors_total", Help: "Failed replica operations.",
	}, []string{"replica_type", "operation", "code"})
	l0RetentionGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "litestream_l0_retention_files_total", Help: "Level-0 files by retention status at the last scan.",
	}, []string{"db", "status"})

	// Added: upstream has none of these.
	replicaTXIDGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "litestream_replica_txid", Help: "Highest TXID known to be in the replica.",
	}, []string{"db"})
	lastReplicaSyncGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "litestream_replica_last_sync_timestamp_seconds", Help: "Unix time of the last successful upload pass.",
	}, []string{"db"})
	compactionCounter = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "litestream_compaction_count", Help: "Files written by compaction, per destination level (9 = snapshots).",
	}, []string{"db", "level"})
	compactionErrorCounter = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "litestream_compaction_error_count", Help: "Failed compactions, per destination level.",
	}, []string{"db", "level"})
	compactionSecondsCounter = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "litestream_compaction_seconds", Help: "Time spent compacting, per destination level.",
	}, []string{"db", "level"})
	validationProblemsGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "litestream_validation_problems", Help: "Problems found by the last replica validation.",
	}, []string{"db"})
	verifyProblemsGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "litestream_verify_problems", Help: "Problems found by the last periodic verify (0 = healthy).",
	}, []string{"db"})
	verifyTimestampGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "litestream_verify_last_run_timestamp_seconds", Help: "Unix time of the last periodic verify.",
	}, []string{"db"})
	restoreCounter = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "litestream_restore_count", Help: "Restores, by result (ok or error).",
	}, []string{"result"})
	leaseOpCounter = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "litestream_lease_operation_total",
		Help: "Single-writer lease requests, by operation (acquire, renew, release) and result (ok, held: another process holds it, error).",
	}, []string{"db", "op", "result"})
)

// observeLease counts one lease request. A refusal because another
// process holds the lease is "held", not an error: it is the lease doing
// its job.
func observeLease(db, op string, err error) {
	result := "ok"
	switch {
	case errors.Is(err, ErrLeaseHeld):
		result = "held"
	case err != nil:
		result = "error"
	}
	leaseOpCounter.WithLabelValues(db, op, result).Inc()
}

// lagCollector reports, at scrape time, each database's replication lag
// (the age of the oldest local change not yet in the replica) and, for
// replicas that take the single-writer lease, whether it is held now.
type lagCollector struct {
	mu  sync.Mutex
	dbs map[*DB]struct{}
}

var lagDesc = prometheus.NewDesc("litestream_replication_lag_seconds",
	"Age of the oldest local change not yet in the replica; 0 when caught up.", []string{"db"}, nil)

var leaseHeldDesc = prometheus.NewDesc("litestream_lease_held",
	"1 while the replica's single-writer lease is held by this process, 0 otherwise; absent for backends without a lease.", []string{"db"}, nil)

var lags = &lagCollector{dbs: map[*DB]struct{}{}}

func init() { prometheus.MustRegister(lags) }

func (c *lagCollector) add(db *DB)    { c.mu.Lock(); c.dbs[db] = struct{}{}; c.mu.Unlock() }
func (c *lagCollector) remove(db *DB) { c.mu.Lock(); delete(c.dbs, db); c.mu.Unlock() }

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- lagDesc; ch <- leaseHeldDesc }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	dbs := make([]*DB, 0, len(c.dbs))
	for db := range c.dbs {
		dbs = append(dbs, db)
	}
	c.mu.Unlock()
	for _, db := range dbs {
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, db.ReplicationLag().Seconds(), db.Path())
		if r := db.Replica; r != nil {
			if _, ok := asLeaser(r.Client); ok {
				ch <- prometheus.MustNewConstMetric(leaseHeldDesc, prometheus.GaugeValue, boolFloat(r.HoldsLease()), db.Path())
			}
		}
	}
}

// ReplicationLag returns how long the oldest level-0 file not yet in the
// replica has been waiting; 0 when the replica is caught up.
func (db *DB) ReplicationLag() time.Duration {
	if db.Replica == nil {
		return 0
	}
	local, remote := db.Pos(), db.Replica.Pos()
	if remote >= local {
		return 0
	}
	fi, err := db.FS.Stat(db.LTXPath(remote+1, remote+1))
	if err != nil {
		return 0 // being written or already gone; the next scrape sees it
	}
	return time.Since(fi.ModTime())
}

// observeSync records one sync pass.
func (db *DB) observeSync(start time.Time, err error) {
	syncCounter.WithLabelValues(db.path).Inc()
	syncSecondsCounter.WithLabelValues(db.path).Add(time.Since(start).Seconds())
	if err != nil {
		syncErrorCounter.WithLabelValues(db.path).Inc()
	}
	full := isDiskFull(err)
	diskFullGauge.WithLabelValues(db.path).Set(boolFloat(full))
	txidGauge.WithLabelValues(db.path).Set(float64(db.pos.txid))
	walSizeGauge.WithLabelValues(db.path).Set(float64(db.pos.offset))
	if fi, err := os.Stat(db.path); err == nil {
		dbSizeGauge.WithLabelValues(db.path).Set(float64(fi.Size()))
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// instrumentedClient wraps any ReplicaClient so every backend reports the
// same operation counts, bytes, durations and errors.
type instrumentedClient struct {
	ReplicaClient
}

// Instrument returns c wrapped with operation metrics.
func Instrument(c ReplicaClient) ReplicaClient {
	if _, ok := c.(*instrumentedClient); ok {
		return c
	}
	return &instrumentedClient{c}
}

func (c *instrumentedClient) observe(op string, start time.Time, n int64, err error) {
	typ := c.Type()
	replicaOpCounter.WithLabelValues(typ, op).Inc()
	replicaOpBytesCounter.WithLabelValues(typ, op).Add(float64(n))
	replicaOpDuration.WithLabelValues(typ, op).Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, context.Canceled) {
		code := "error"
		if errors.Is(err, os.ErrNotExist) {
			code = "not_found"
		}
		replicaOpErrorCounter.WithLabelValues(typ, op, code).Inc()
	}
}

func (c *instrumentedClient) LTXFiles(ctx context.Context, level int, seek ltx.TXID, useMetadata bool) (ltx.FileIterator, error) {
	start := time.Now()
	itr, err := c.ReplicaClient.LTXFiles(ctx, level, seek, useMetadata)
	c.observe("LIST", start, 0, err)
	return itr, err
}

func (c *instrumentedClient) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	start := time.Now()
	rc, err := c.ReplicaClient.OpenLTXFile(ctx, level, minTXID, maxTXID, offset, size)
	if err != nil {
		c.observe("GET", start, 0, err)
		return nil, err
	}
	return &countingReadCloser{ReadCloser: rc, done: func(n int64, err error) { c.observe("GET", start, n, err) }}, nil
}

func (c *instrumentedClient) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	start := time.Now()
	info, err := c.ReplicaClient.WriteLTXFile(ctx, level, minTXID, maxTXID, r)
	var n int64
	if info != nil {
		n = info.Size
	}
	c.observe("PUT", start, n, err)
	return info, err
}

func (c *instrumentedClient) DeleteLTXFiles(ctx context.Context, a []*ltx.FileInfo) error {
	start := time.Now()
	err := c.ReplicaClient.DeleteLTXFiles(ctx, a)
	c.observe("DELETE", start, 0, err)
	return err
}

// Unwrap returns the wrapped client.
func (c *instrumentedClient) Unwrap() ReplicaClient { return c.ReplicaClient }

// countingReadCloser reports the bytes read when it is closed.
type countingReadCloser struct {
	io.ReadCloser
	n    int64
	err  error
	done func(n int64, err error)
	once sync.Once
}

func (r *countingReadCloser) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.n += int64(n)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

func (r *countingReadCloser) Close() error {
	err := r.ReadCloser.Close()
	r.once.Do(func() { r.done(r.n, r.err) })
	return err
}

// dbLabel is the label upstream uses for level-0 retention: the base name.
func dbLabel(path string) string { return filepath.Base(path) }

func levelLabel(level int) string { return strconv.Itoa(level) }
