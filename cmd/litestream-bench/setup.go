package main

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"time"
)

// metrics are the figures one row measured, by key (see report.go).
type metrics map[string]float64

// row is one line group of the table.
type row struct {
	name string
	fn   func(ctx context.Context) (metrics, error)
}

func (b *bench) rows() []row {
	all := map[string]func(context.Context) (metrics, error){
		"lag":        b.rowLag,
		"aggressive": b.rowAggressive,
		"idle":       b.rowIdle,
		"uploads":    b.rowUploads,
		"throughput": b.rowThroughput,
		"bulk":       b.rowBulk,
		"restore":    b.rowRestore,
		"many":       b.rowMany,
	}
	var rs []row
	for _, name := range b.s.Rows {
		rs = append(rs, row{name: name, fn: all[name]})
	}
	return rs
}

// replicated is one database with an application connection, a running
// replicate child and a watcher on its file replica.
type replicated struct {
	dir     string
	entry   dbEntry
	app     *app
	child   *child
	rw      *replicaWatcher
	started time.Time // when the child was started
	synced  time.Time // when the initial marker reached the replica
	closed  bool
}

// startReplicated creates a database with one marker row, starts the
// child on it and waits until the marker is in the replica.
func (b *bench) startReplicated(name string, monitor, sync time.Duration) (*replicated, error) {
	dir, err := b.rowDir(name)
	if err != nil {
		return nil, err
	}
	r := &replicated{dir: dir, entry: dbEntry{
		Path: filepath.Join(dir, "app.db"), Replica: filepath.Join(dir, "replica"),
		MonitorInterval: monitor, SyncInterval: sync,
	}}
	if r.app, err = openApp(r.entry.Path); err != nil {
		return nil, err
	}
	marker := newMarker()
	if _, err := r.app.insert(marker); err != nil {
		r.close()
		return nil, err
	}
	if err := b.startChild(r, marker, 2*time.Minute); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// startChild starts replicating r and waits for marker in the replica.
func (b *bench) startChild(r *replicated, marker []byte, timeout time.Duration) error {
	cfg := filepath.Join(r.dir, "litestream.yml")
	if err := writeConfig(cfg, []dbEntry{r.entry}, b.s.ConfigExtra); err != nil {
		return err
	}
	var err error
	if r.rw, err = newReplicaWatcher(r.entry.Replica); err != nil {
		return err
	}
	found := r.rw.expect(marker)
	r.started = time.Now()
	if r.child, err = startReplicate(b.bin, cfg, filepath.Join(r.dir, "replicate.log")); err != nil {
		return err
	}
	b.live = append(b.live, r.child)
	if r.synced, err = waitMarker(found, r.child, timeout); err != nil {
		return fmt.Errorf("initial sync: %w", err)
	}
	return nil
}

// close stops the child (final sync included) and returns its peak RSS.
func (r *replicated) close() (peakRSS int64, err error) {
	if r.closed {
		return 0, nil
	}
	r.closed = true
	if r.child != nil {
		peakRSS, err = r.child.stop(time.Minute)
	}
	if r.rw != nil {
		r.rw.close()
		if werr := r.rw.err(); werr != nil && err == nil {
			err = werr
		}
	}
	if r.app != nil {
		r.app.close()
	}
	return peakRSS, err
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// percentile returns the nearest-rank percentile p (0..100) of xs.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[max(rank, 1)-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func mb(n int64) float64         { return float64(n) / (1 << 20) }
