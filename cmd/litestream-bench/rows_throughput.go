package main

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"time"
)

// throughputRun is one pass of one-row transactions.
type throughputRun struct {
	tps      float64
	stall    time.Duration // slowest commit
	walMax   int64         // largest WAL size seen
	childCPU time.Duration // replication CPU during the pass
	rss      int64         // child's peak RSS
}

// rowThroughput: the application's commit rate with and without
// replication, measured alternately in the same row so load from other
// processes hits both alike.
func (b *bench) rowThroughput(ctx context.Context) (metrics, error) {
	var without, with []throughputRun
	for i := 0; i < b.s.TxnReps; i++ {
		for _, repl := range []bool{false, true} {
			res, err := b.throughputOnce(ctx, repl)
			if err != nil {
				return nil, err
			}
			if repl {
				with = append(with, res)
			} else {
				without = append(without, res)
			}
		}
	}
	med := func(rs []throughputRun, f func(throughputRun) float64) float64 {
		xs := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = f(r)
		}
		return percentile(xs, 50)
	}
	tps := func(r throughputRun) float64 { return r.tps }
	stall := func(r throughputRun) float64 { return ms(r.stall) }
	wal := func(r throughputRun) float64 { return mb(r.walMax) }
	return metrics{
		"tps_without": med(without, tps), "tps_with": med(with, tps),
		"tput_ratio":       med(with, tps) / med(without, tps),
		"stall_without_ms": med(without, stall), "stall_with_ms": med(with, stall),
		"wal_without_mb": med(without, wal), "wal_with_mb": med(with, wal),
		"repl_cpu_s":  med(with, func(r throughputRun) float64 { return r.childCPU.Seconds() }),
		"rss_busy_mb": med(with, func(r throughputRun) float64 { return mb(r.rss) }),
	}, nil
}

func (b *bench) throughputOnce(ctx context.Context, repl bool) (throughputRun, error) {
	var res throughputRun
	var a *app
	var r *replicated
	if repl {
		var err error
		if r, err = b.startReplicated("throughput-with", 0, 0); err != nil {
			return res, err
		}
		defer r.close()
		a = r.app
	} else {
		dir, err := b.rowDir("throughput-without")
		if err != nil {
			return res, err
		}
		if a, err = openApp(filepath.Join(dir, "app.db")); err != nil {
			return res, err
		}
		defer a.close()
	}
	var w *window
	if r != nil {
		var err error
		if w, err = r.child.begin(); err != nil {
			return res, err
		}
		memCtx, stop := context.WithCancel(ctx)
		defer stop()
		go r.child.sampleMem(memCtx, 50*time.Millisecond)
	}
	wal := sampleWAL(a.path+"-wal", 5*time.Millisecond)
	payload := make([]byte, 100)
	start := time.Now()
	prev := start
	for i := 0; i < b.s.Txns; i++ {
		if i%1024 == 0 && ctx.Err() != nil {
			wal.stop()
			return res, ctx.Err()
		}
		_, _ = rand.Read(payload)
		at, err := a.insert(payload)
		if err != nil {
			wal.stop()
			return res, err
		}
		res.stall = max(res.stall, at.Sub(prev))
		prev = at
	}
	res.tps = float64(b.s.Txns) / time.Since(start).Seconds()
	res.walMax = wal.stop()
	if r != nil {
		if err := r.child.end(w); err != nil {
			return res, err
		}
		res.childCPU = w.CPU
		peak, err := r.close()
		if err != nil {
			return res, err
		}
		res.rss = peak
	}
	return res, nil
}
