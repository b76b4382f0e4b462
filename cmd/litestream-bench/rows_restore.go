package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// rowRestore builds a -restore-size database without replication, starts
// replicating it (initial sync time, replica size after -size-settle,
// memory), then restores it -restores times, each right after a cp+fsync
// of the same database file, so both see the same machine load.
func (b *bench) rowRestore(ctx context.Context) (metrics, error) {
	dir, err := b.rowDir("restore")
	if err != nil {
		return nil, err
	}
	r := &replicated{dir: dir, entry: dbEntry{Path: filepath.Join(dir, "big.db"), Replica: filepath.Join(dir, "replica")}}
	defer r.close()
	b.logf("restore: creating a %d MB database", b.s.RestoreSize/1e6)
	if err := createBig(r.entry.Path, b.s.RestoreSize); err != nil {
		return nil, err
	}
	if r.app, err = openApp(r.entry.Path); err != nil {
		return nil, err
	}
	marker := newMarker()
	if _, err := r.app.insert(marker); err != nil {
		return nil, err
	}
	if err := b.startChild(r, marker, 30*time.Minute); err != nil {
		return nil, err
	}
	m := metrics{"bigdb_sync_s": r.synced.Sub(r.started).Seconds()}
	if err := sleepCtx(ctx, b.s.SizeSettle); err != nil {
		return nil, err
	}
	replicaSize, files, err := dirSize(r.entry.Replica)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(r.entry.Path)
	if err != nil {
		return nil, err
	}
	m["db_mb"] = mb(fi.Size())
	m["replica_ratio"] = float64(replicaSize) / float64(fi.Size())
	m["replica_files"] = float64(files)
	peak, err := r.close()
	if err != nil {
		return nil, err
	}
	m["rss_bigdb_mb"] = mb(peak)

	var cps, restores, rss []float64
	for i := 0; i < b.s.Restores; i++ {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		cp, err := cpFsync(r.entry.Path, filepath.Join(dir, "copy.db"))
		if err != nil {
			return nil, err
		}
		out := filepath.Join(dir, "restored.db")
		wall, peakRSS, _, err := runTimed(b.bin, "restore", "-o", out, "file://"+r.entry.Replica)
		if err != nil {
			return nil, err
		}
		if err := checkRestored(out, marker); err != nil {
			return nil, err
		}
		cps, restores, rss = append(cps, cp.Seconds()), append(restores, wall.Seconds()), append(rss, mb(peakRSS))
		for _, p := range []string{out, out + "-wal", out + "-shm"} {
			_ = os.Remove(p)
		}
	}
	m["cp_s"], m["restore_s"], m["restore_rss_mb"] = percentile(cps, 50), percentile(restores, 50), percentile(rss, 100)
	m["restore_ratio"] = m["restore_s"] / m["cp_s"]
	return m, nil
}

// cpFsync times `cp src dst` plus an fsync of dst, then removes dst.
func cpFsync(src, dst string) (time.Duration, error) {
	start := time.Now()
	if out, err := exec.Command("cp", src, dst).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("cp: %w: %s", err, out)
	}
	f, err := os.Open(dst)
	if err != nil {
		return 0, err
	}
	err = f.Sync()
	f.Close()
	d := time.Since(start)
	if rerr := os.Remove(dst); err == nil {
		err = rerr
	}
	return d, err
}

// checkRestored checks the restored database ends with the marker row.
func checkRestored(path string, marker []byte) error {
	v, err := lastValue(path)
	if err != nil {
		return err
	}
	if !bytes.Equal(v, marker) {
		return fmt.Errorf("restored database %s does not end with the last committed row", path)
	}
	return nil
}
