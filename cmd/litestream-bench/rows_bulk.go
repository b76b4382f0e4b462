package main

import (
	"context"
	"time"
)

// rowBulk: -bulk-txns transactions of -bulk-size each, back to back; the
// figure is the time from the last commit to the level-0 file holding it.
func (b *bench) rowBulk(ctx context.Context) (metrics, error) {
	r, err := b.startReplicated("bulk", 0, 0)
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
	}, nil
}
