package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// allRows lists the rows in the order they run.
var allRows = []string{"lag", "aggressive", "idle", "uploads", "throughput", "bulk", "restore", "many"}

// settings are the sizes and durations of every row. Defaults are the
// issue's; -quick shrinks every row so a full pass takes about 2 minutes.
type settings struct {
	Bin  string
	Dir  string
	JSON string
	Keep bool
	Runs int
	Rows []string

	ConfigExtra string // YAML copied to the top of every replicate config

	LagSamples int           // sparse commits at default settings
	LagGap     time.Duration // time between sparse commits
	AggrSample int           // commits at aggressive settings
	AggrGap    time.Duration
	AggrIdle   time.Duration // idle window at aggressive settings
	Aggressive time.Duration // monitor-interval and sync-interval of the aggressive row

	IdleSettle time.Duration // wait after the initial sync before the idle window
	Idle       time.Duration // idle window at default settings

	UploadFor time.Duration // continuous writes for the upload count
	UploadGap time.Duration // time between those commits
	SyncEvery time.Duration // the binary's default sync-interval, for the bound

	Txns       int // one-row transactions per throughput run
	TxnReps    int // alternating without/with pairs
	BulkTxns   int
	BulkSize   int64
	SizeSettle time.Duration // wait after the initial sync before measuring the replica size
	Restores   int           // interleaved cp+fsync / restore pairs
	ManyDBs    int
	ManyIdle   time.Duration

	RestoreSize int64
}

func parseSettings(args []string) (*settings, error) {
	fs := flag.NewFlagSet("litestream-bench", flag.ContinueOnError)
	s := &settings{}
	quick := fs.Bool("quick", false, "run every row small (about 2 minutes in all); explicit flags still win")
	rows := fs.String("rows", strings.Join(allRows, ","), "rows to run: "+strings.Join(allRows, ","))
	fs.StringVar(&s.Bin, "bin", "", "binary with Litestream's CLI (default: build ./cmd/litestream)")
	fs.StringVar(&s.Dir, "dir", os.TempDir(), "where to create the work directory")
	fs.StringVar(&s.JSON, "json", "", "also write all measurements to this JSON file")
	fs.BoolVar(&s.Keep, "keep", false, "keep the work directory (databases, replicas, child logs)")
	fs.StringVar(&s.ConfigExtra, "config-extra", "", "YAML lines added at the top of every replicate config (e.g. to enable pprof on the child)")
	fs.IntVar(&s.Runs, "runs", 1, "repeat every row this many times; the table shows medians")

	fs.IntVar(&s.LagSamples, "lag-samples", 20, "sparse commits measured at default settings")
	fs.DurationVar(&s.LagGap, "lag-gap", 2*time.Second, "time between sparse commits")
	fs.IntVar(&s.AggrSample, "aggr-samples", 50, "commits measured at aggressive settings")
	fs.DurationVar(&s.AggrGap, "aggr-gap", 200*time.Millisecond, "time between commits at aggressive settings")
	fs.DurationVar(&s.AggrIdle, "aggr-idle", time.Minute, "idle window at aggressive settings")
	fs.DurationVar(&s.Aggressive, "aggr-interval", time.Millisecond, "monitor-interval and sync-interval of the aggressive row")
	fs.DurationVar(&s.IdleSettle, "idle-settle", 35*time.Second, "wait after the initial sync before the idle window (past the first level-1 compaction)")
	fs.DurationVar(&s.Idle, "idle", 10*time.Minute, "idle window at default settings")
	fs.DurationVar(&s.UploadFor, "upload-for", 30*time.Second, "continuous writes for the upload count")
	fs.DurationVar(&s.UploadGap, "upload-gap", 10*time.Millisecond, "time between commits of the continuous writes")
	fs.DurationVar(&s.SyncEvery, "sync-interval", time.Second, "the binary's default sync-interval (for the upload bound)")
	fs.IntVar(&s.Txns, "txns", 200000, "one-row transactions per throughput run")
	fs.IntVar(&s.TxnReps, "txn-reps", 1, "alternating without/with replication pairs per throughput row")
	fs.IntVar(&s.BulkTxns, "bulk-txns", 20, "bulk transactions")
	bulk := fs.String("bulk-size", "10MB", "size of each bulk transaction")
	restore := fs.String("restore-size", "1.2GB", "database size of the restore and replica-size rows")
	fs.DurationVar(&s.SizeSettle, "size-settle", 65*time.Second, "wait after the initial sync before measuring the replica size (past the first level-1 compaction)")
	fs.IntVar(&s.Restores, "restores", 3, "interleaved cp+fsync / restore pairs")
	fs.IntVar(&s.ManyDBs, "many-dbs", 500, "idle databases in one process")
	fs.DurationVar(&s.ManyIdle, "many-idle", 30*time.Second, "idle window with many databases")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *quick {
		applyQuick(fs, set)
	}
	var err error
	if s.BulkSize, err = parseSize(*bulk); err != nil {
		return nil, err
	}
	if s.RestoreSize, err = parseSize(*restore); err != nil {
		return nil, err
	}
	for _, r := range strings.Split(*rows, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		if !slices.Contains(allRows, r) {
			return nil, fmt.Errorf("unknown row %q (rows: %s)", r, strings.Join(allRows, ","))
		}
		s.Rows = append(s.Rows, r)
	}
	if s.Runs < 1 || s.Restores < 1 || s.TxnReps < 1 {
		return nil, fmt.Errorf("-runs, -restores and -txn-reps must be at least 1")
	}
	return s, nil
}

// applyQuick sets the small sizes of -quick on every flag not given
// explicitly.
func applyQuick(fs *flag.FlagSet, set map[string]bool) {
	quick := map[string]string{
		"lag-samples": "6", "aggr-samples": "20", "aggr-idle": "10s",
		"idle-settle": "2s", "idle": "10s",
		"upload-for":   "5s",
		"txns":         "20000",
		"bulk-size":    "1MB",
		"restore-size": "100MB", "size-settle": "3s", "restores": "2",
		"many-idle": "5s",
	}
	for name, v := range quick {
		if !set[name] {
			_ = fs.Set(name, v)
		}
	}
}

// parseSize parses "1.2GB", "10MB", "512KB" or a byte count (decimal
// units: 1 MB = 10^6 bytes, as in the issue).
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{{"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	u := strings.ToUpper(strings.TrimSpace(s))
	mult := 1.0
	for _, x := range units {
		if strings.HasSuffix(u, x.suffix) {
			u, mult = strings.TrimSuffix(u, x.suffix), x.mult
			break
		}
	}
	var f float64
	if _, err := fmt.Sscanf(u, "%g", &f); err != nil || f <= 0 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	return int64(f * mult), nil
}
