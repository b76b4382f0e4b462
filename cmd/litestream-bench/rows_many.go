package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// rowMany: one replicate process with -many-dbs small idle databases:
// time until every database is in its replica, then memory and CPU over
// -many-idle.
func (b *bench) rowMany(ctx context.Context) (metrics, error) {
	dir, err := b.rowDir("many")
	if err != nil {
		return nil, err
	}
	entries := make([]dbEntry, b.s.ManyDBs)
	for i := range entries {
		entries[i] = dbEntry{
			Path:    filepath.Join(dir, "dbs", fmt.Sprintf("db%04d.db", i)),
			Replica: filepath.Join(dir, "replicas", fmt.Sprintf("db%04d", i)),
		}
		if err := os.MkdirAll(filepath.Dir(entries[i].Path), 0o755); err != nil {
			return nil, err
		}
		a, err := openApp(entries[i].Path)
		if err != nil {
			return nil, err
		}
		_, err = a.insert(newMarker())
		a.close()
		if err != nil {
			return nil, err
		}
	}
	cfg := filepath.Join(dir, "litestream.yml")
	if err := writeConfig(cfg, entries, b.s.ConfigExtra); err != nil {
		return nil, err
	}
	start := time.Now()
	c, err := startReplicate(b.bin, cfg, filepath.Join(dir, "replicate.log"))
	if err != nil {
		return nil, err
	}
	b.live = append(b.live, c)
	if err := waitAllReplicated(ctx, c, entries, 5*time.Minute); err != nil {
		return nil, err
	}
	ready := time.Since(start)
	if err := sleepCtx(ctx, 2*time.Second); err != nil {
		return nil, err
	}
	w, err := c.begin()
	if err != nil {
		return nil, err
	}
	if err := sleepCtx(ctx, b.s.ManyIdle); err != nil {
		return nil, err
	}
	if err := c.end(w); err != nil {
		return nil, err
	}
	mem, err := c.mem()
	if err != nil {
		return nil, err
	}
	peak, err := c.stop(2 * time.Minute)
	if err != nil {
		return nil, err
	}
	return metrics{
		"many_ready_s": ready.Seconds(), "many_rss_mb": mb(mem.RSS), "many_hwm_mb": mb(peak),
		"many_idle_cpu_pct": w.cpuPercent(), "many_idle_lines": float64(w.Lines),
	}, nil
}

// waitAllReplicated polls (every 100 ms, bounded) until every replica
// holds a level-0 file or its initial snapshot.
func waitAllReplicated(ctx context.Context, c *child, entries []dbEntry, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	left := entries
	for len(left) > 0 {
		if err := c.exited(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d databases not in their replica after %s", len(left), len(entries), timeout)
		}
		var still []dbEntry
		for _, e := range left {
			if !hasLTX(filepath.Join(e.Replica, "ltx", "0")) && !hasLTX(filepath.Join(e.Replica, "ltx", "9")) {
				still = append(still, e)
			}
		}
		left = still
		if len(left) > 0 {
			if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
				return err
			}
		}
	}
	return nil
}

func hasLTX(dir string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".ltx") {
			return true
		}
	}
	return false
}
