package main

import (
	"context"
	"time"
)

// rowBulk: -bulk-txns transactions of -bulk-size each, back to back; the
// figure is the time from the last commit to the level-0 file holding it.
// It runs at default settings, then at -aggr-interval, where the
// intervals no longer pace the syncs, to separate waiting from work.
func (b *bench) rowBulk(ctx context.Context) (metrics, error) {
	m, err := b.bulkOnce(ctx, "bulk", 0)
	if err != nil {
		return nil, err
	}
	aggr, err := b.bulkOnce(ctx, "bulk-aggressive", b.s.Aggressive)
	if err != nil {
		return nil, err
	}
	m["bulk_aggr_lag_ms"], m["bulk_aggr_mbps"] = aggr["bulk_lag_ms"], aggr["bulk_mbps"]
	return m, nil
}

func (b *bench) bulkOnce(ctx context.Context, name string, interval time.Duration) (metrics, error) {
	r, err := b.startReplicated(name, interval, interval)
	if err != nil {
		return nil, err
	}
	defer r.close()
	if err := sleepCtx(ctx, 2*b.s.SyncEvery); err != nil { // start from idle
		return nil, err
	}
	marker := newMarker()
	found := r.rw.expect(marker)
	var first, last time.Time
	for i := 0; i < b.s.BulkTxns; i++ {
		var m []byte
		if i == b.s.BulkTxns-1 {
			m = marker
		}
		if i == 0 {
			first = time.Now()
		}
		if last, err = r.app.bulk(b.s.BulkSize, m); err != nil {
			return nil, err
		}
	}
	arrived, err := waitMarker(found, r.child, 5*time.Minute)
	if err != nil {
		return nil, err
	}
	if _, err := r.close(); err != nil {
		return nil, err
	}
	lag := arrived.Sub(last)
	total := float64(b.s.BulkTxns) * float64(b.s.BulkSize)
	return metrics{
		"bulk_lag_ms":   ms(lag),
		"bulk_mbps":     total / 1e6 / lag.Seconds(),
		"bulk_write_s":  last.Sub(first).Seconds(),
		"bulk_total_mb": total / 1e6,
		"bulk_files":    float64(countL0(r.rw, first, arrived)),
	}, nil
}

// countL0 counts the level-0 files that appeared after t and by end.
func countL0(rw *replicaWatcher, t, end time.Time) int {
	_, files := rw.counts()
	n := 0
	for _, o := range files {
		if o.Level == 0 && o.At.After(t) && !o.At.After(end) {
			n++
		}
	}
	return n
}
