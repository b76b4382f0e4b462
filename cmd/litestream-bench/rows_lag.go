package main

import (
	"context"
	"fmt"
	"math"
	"time"
)

// sparseLags commits n markers, one every gap, and returns the time from
// each commit to the appearance of the first level-0 file holding it.
func (r *replicated) sparseLags(ctx context.Context, n int, gap time.Duration) ([]float64, error) {
	type sent struct {
		at    time.Time
		found <-chan time.Time
	}
	var all []sent
	for i := 0; i < n; i++ {
		if err := sleepCtx(ctx, gap); err != nil {
			return nil, err
		}
		m := newMarker()
		found := r.rw.expect(m)
		at, err := r.app.insert(m)
		if err != nil {
			return nil, err
		}
		all = append(all, sent{at, found})
	}
	lags := make([]float64, 0, n)
	for i, s := range all {
		at, err := waitMarker(s.found, r.child, 30*time.Second+gap)
		if err != nil {
			return nil, fmt.Errorf("commit %d: %w", i, err)
		}
		lags = append(lags, ms(at.Sub(s.at)))
	}
	return lags, nil
}

// rowLag: lag from commit to level-0 file in the replica at default
// settings, one commit every -lag-gap.
func (b *bench) rowLag(ctx context.Context) (metrics, error) {
	r, err := b.startReplicated("lag", 0, 0)
	if err != nil {
		return nil, err
	}
	lags, err := r.sparseLags(ctx, b.s.LagSamples, b.s.LagGap)
	mem, _ := r.child.mem()
	if _, cerr := r.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return metrics{
		"lag_p50_ms": percentile(lags, 50), "lag_p95_ms": percentile(lags, 95), "lag_max_ms": percentile(lags, 100),
		"initial_sync_ms": ms(r.synced.Sub(r.started)),
		"rss_sparse_mb":   mb(mem.HWM),
	}, nil
}

// rowAggressive: lag at -aggr-interval monitor and sync intervals, then
// the CPU the child burns while idle at those settings.
func (b *bench) rowAggressive(ctx context.Context) (metrics, error) {
	r, err := b.startReplicated("aggressive", b.s.Aggressive, b.s.Aggressive)
	if err != nil {
		return nil, err
	}
	defer r.close()
	lags, err := r.sparseLags(ctx, b.s.AggrSample, b.s.AggrGap)
	if err != nil {
		return nil, err
	}
	if err := sleepCtx(ctx, time.Second); err != nil {
		return nil, err
	}
	w, err := r.child.begin()
	if err != nil {
		return nil, err
	}
	if err := sleepCtx(ctx, b.s.AggrIdle); err != nil {
		return nil, err
	}
	if err := r.child.end(w); err != nil {
		return nil, err
	}
	if _, err := r.close(); err != nil {
		return nil, err
	}
	return metrics{
		"aggr_p50_ms": percentile(lags, 50), "aggr_p95_ms": percentile(lags, 95),
		"aggr_idle_cpu_pct": w.cpuPercent(), "aggr_idle_lines": float64(w.Lines),
	}, nil
}

// rowIdle: what an idle database costs at default settings: CPU, writes
// to the replica and log lines over -idle, after -idle-settle.
func (b *bench) rowIdle(ctx context.Context) (metrics, error) {
	r, err := b.startReplicated("idle", 0, 0)
	if err != nil {
		return nil, err
	}
	defer r.close()
	if err := sleepCtx(ctx, b.s.IdleSettle); err != nil {
		return nil, err
	}
	events0, files0 := r.rw.counts()
	w, err := r.child.begin()
	if err != nil {
		return nil, err
	}
	if err := sleepCtx(ctx, b.s.Idle); err != nil {
		return nil, err
	}
	if err := r.child.end(w); err != nil {
		return nil, err
	}
	events1, files1 := r.rw.counts()
	mem, _ := r.child.mem()
	if _, err := r.close(); err != nil {
		return nil, err
	}
	return metrics{
		"idle_cpu_pct": w.cpuPercent(), "idle_events": float64(events1 - events0),
		"idle_files": float64(len(files1) - len(files0)), "idle_lines": float64(w.Lines),
		"idle_s": w.Duration.Seconds(), "rss_idle_mb": mb(mem.RSS),
	}, nil
}

// rowUploads: level-0 files written to the replica while the application
// commits every -upload-gap for -upload-for, against the bound of one
// immediate upload plus one per sync-interval.
func (b *bench) rowUploads(ctx context.Context) (metrics, error) {
	r, err := b.startReplicated("uploads", 0, 0)
	if err != nil {
		return nil, err
	}
	defer r.close()
	if err := sleepCtx(ctx, 2*b.s.SyncEvery); err != nil { // start from idle
		return nil, err
	}
	_, before := r.rw.counts()
	start := time.Now()
	var commits int
	for time.Since(start) < b.s.UploadFor {
		if _, err = r.app.insert(newMarker()); err != nil {
			return nil, err
		}
		commits++
		if err := sleepCtx(ctx, b.s.UploadGap); err != nil {
			return nil, err
		}
	}
	m := newMarker() // the last commit: wait until it is in the replica
	found := r.rw.expect(m)
	last, err := r.app.insert(m)
	if err != nil {
		return nil, err
	}
	commits++
	arrived, err := waitMarker(found, r.child, 30*time.Second)
	if err != nil {
		return nil, err
	}
	_, after := r.rw.counts()
	uploads := 0
	for _, o := range after[len(before):] {
		if o.Level == 0 && !o.At.After(arrived) {
			uploads++
		}
	}
	span := arrived.Sub(start)
	bound := 1 + math.Ceil(span.Seconds()/b.s.SyncEvery.Seconds())
	if _, err := r.close(); err != nil {
		return nil, err
	}
	return metrics{
		"uploads": float64(uploads), "upload_bound": bound, "upload_commits": float64(commits),
		"upload_span_s": span.Seconds(), "upload_last_lag_ms": ms(arrived.Sub(last)),
	}, nil
}
