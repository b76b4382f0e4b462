package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
)

// runResult is every metric of one pass over the rows.
type runResult struct {
	Metrics metrics  `json:"metrics"`
	Errors  []string `json:"errors,omitempty"`
}

func (r *runResult) merge(m metrics) {
	if r.Metrics == nil {
		r.Metrics = metrics{}
	}
	for k, v := range m {
		r.Metrics[k] = v
	}
}

type report struct {
	Bin      string            `json:"bin"`
	Version  string            `json:"version"`
	Machine  map[string]string `json:"machine"`
	Settings *settings         `json:"settings"`
	Runs     []runResult       `json:"runs"`
	Median   metrics           `json:"median"`
	Min      metrics           `json:"min"`
	Max      metrics           `json:"max"`
}

// summarize computes the median, min and max of every metric over runs.
func (rep *report) summarize() {
	rep.Median, rep.Min, rep.Max = metrics{}, metrics{}, metrics{}
	keys := map[string][]float64{}
	for _, r := range rep.Runs {
		for k, v := range r.Metrics {
			if !math.IsNaN(v) {
				keys[k] = append(keys[k], v)
			}
		}
	}
	for k, xs := range keys {
		sort.Float64s(xs)
		rep.Median[k] = median(xs)
		rep.Min[k], rep.Max[k] = xs[0], xs[len(xs)-1]
	}
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// figure is one line of the table.
type figure struct {
	row    string // the row whose load average applies
	name   string
	anchor string // Litestream v0.5, from the issue
	target string
	keys   []string // metrics needed
	show   func(m metrics) string
	pass   func(m metrics) bool
}

var figures = []figure{
	{"lag", "lag commit->L0 in replica, defaults, 1 commit / lag-gap", "p95 ~1000 ms", "p95 <= 20 ms",
		[]string{"lag_p95_ms"},
		func(m metrics) string {
			return fmt.Sprintf("p50 %.1f ms, p95 %.1f ms, max %.1f ms", m["lag_p50_ms"], m["lag_p95_ms"], m["lag_max_ms"])
		},
		func(m metrics) bool { return m["lag_p95_ms"] <= 20 }},
	{"aggressive", "lag, aggressive settings (aggr-interval)", "p50 4 / p95 7 ms; idle 12% of a core", "p95 <= 10 ms, idle <= 0.2% of a core",
		[]string{"aggr_p95_ms", "aggr_idle_cpu_pct"},
		func(m metrics) string {
			return fmt.Sprintf("p50 %.1f ms, p95 %.1f ms; idle %.3f%% of a core", m["aggr_p50_ms"], m["aggr_p95_ms"], m["aggr_idle_cpu_pct"])
		},
		func(m metrics) bool { return m["aggr_p95_ms"] <= 10 && m["aggr_idle_cpu_pct"] <= 0.2 }},
	{"idle", "idle cost, defaults, no writes", "0.6% CPU; a log line every second", "~0 CPU, 0 replica writes, 0 log lines",
		[]string{"idle_cpu_pct", "idle_files", "idle_lines"},
		func(m metrics) string {
			return fmt.Sprintf("%.3f%% CPU, %.0f replica files (%.0f fs events), %.0f log lines over %.0f s",
				m["idle_cpu_pct"], m["idle_files"], m["idle_events"], m["idle_lines"], m["idle_s"])
		},
		func(m metrics) bool {
			return m["idle_cpu_pct"] <= 0.1 && m["idle_files"] == 0 && m["idle_events"] == 0 && m["idle_lines"] == 0
		}},
	{"uploads", "uploads under continuous writes", "<= 1 per sync-interval", "<= 1 + 1 per sync-interval",
		[]string{"uploads", "upload_bound"},
		func(m metrics) string {
			return fmt.Sprintf("%.0f L0 uploads in %.1f s (bound %.0f), %.0f commits", m["uploads"], m["upload_span_s"], m["upload_bound"], m["upload_commits"])
		},
		func(m metrics) bool { return m["uploads"] <= m["upload_bound"] }},
	{"throughput", "throughput, one-row txns, with / without replication", "0.70x", ">= 0.90x",
		[]string{"tput_ratio"},
		func(m metrics) string {
			return fmt.Sprintf("%.2fx (%.0f vs %.0f txn/s)", m["tput_ratio"], m["tps_with"], m["tps_without"])
		},
		func(m metrics) bool { return m["tput_ratio"] >= 0.90 }},
	{"throughput", "worst commit stall, with replication", "332 ms", "<= 50 ms",
		[]string{"stall_with_ms"},
		func(m metrics) string {
			return fmt.Sprintf("%.1f ms (without: %.1f ms)", m["stall_with_ms"], m["stall_without_ms"])
		},
		func(m metrics) bool { return m["stall_with_ms"] <= 50 }},
	{"throughput", "largest WAL, with replication", "0.5 GB", "bounded by checkpoint thresholds",
		[]string{"wal_with_mb"},
		func(m metrics) string {
			return fmt.Sprintf("%.1f MB (without: %.1f MB)", m["wal_with_mb"], m["wal_without_mb"])
		},
		// 1000-page PASSIVE threshold at 4 KiB pages is ~4 MB; allow a
		// backlog of a few monitor intervals on top.
		func(m metrics) bool { return m["wal_with_mb"] <= 64 }},
	{"bulk", "bulk txns, last commit -> in replica", "2.56 s (~90 MB/s of WAL)", "<= 0.3 s (>= 500 MB/s)",
		[]string{"bulk_lag_ms"},
		func(m metrics) string {
			return fmt.Sprintf("%.0f ms (%.0f MB/s of %.0f MB, %.0f L0 files); at aggr-interval: %.0f ms (%.0f MB/s)",
				m["bulk_lag_ms"], m["bulk_mbps"], m["bulk_total_mb"], m["bulk_files"], m["bulk_aggr_lag_ms"], m["bulk_aggr_mbps"])
		},
		func(m metrics) bool { return m["bulk_lag_ms"] <= 300 }},
	{"restore", "restore from file replica, / cp+fsync", "9.2 s, 12x; 151 MB peak RSS", "<= 2x; peak RSS <= 64 MB",
		[]string{"restore_ratio", "restore_rss_mb"},
		func(m metrics) string {
			return fmt.Sprintf("%.2f s vs %.2f s = %.2fx; peak RSS %.1f MB (%.0f MB db)",
				m["restore_s"], m["cp_s"], m["restore_ratio"], m["restore_rss_mb"], m["db_mb"])
		},
		func(m metrics) bool { return m["restore_ratio"] <= 2 && m["restore_rss_mb"] <= 64 }},
	{"restore", "replica size right after starting on an existing db", "1.6x (3 copies)", "<= 1.1x",
		[]string{"replica_ratio"},
		func(m metrics) string {
			return fmt.Sprintf("%.2fx (%.0f files; initial sync %.1f s)", m["replica_ratio"], m["replica_files"], m["bigdb_sync_s"])
		},
		func(m metrics) bool { return m["replica_ratio"] <= 1.1 }},
	{"throughput", "memory while replicating one db (peak, continuous writes)", "37-47 MB", "<= 40 MB",
		[]string{"rss_busy_mb"},
		func(m metrics) string {
			s := fmt.Sprintf("%.1f MB", m["rss_busy_mb"])
			if v, ok := m["rss_bigdb_mb"]; ok {
				s += fmt.Sprintf(" (big db initial sync: %.1f MB)", v)
			}
			return s
		},
		func(m metrics) bool { return m["rss_busy_mb"] <= 40 }},
	{"many", "memory, idle dbs in one process", "-", "<= 200 MB for 500",
		[]string{"many_rss_mb"},
		func(m metrics) string {
			return fmt.Sprintf("RSS %.1f MB, peak %.1f MB; idle %.3f%% CPU; all in replica after %.1f s",
				m["many_rss_mb"], m["many_hwm_mb"], m["many_idle_cpu_pct"], m["many_ready_s"])
		},
		func(m metrics) bool { return m["many_rss_mb"] <= 200 }},
}

func (rep *report) print(w io.Writer) {
	fmt.Fprintf(w, "\nbinary: %s (%s)\n", rep.Bin, rep.Version)
	fmt.Fprintf(w, "machine: %s, %s CPUs, %s; %d run(s), medians shown\n\n",
		rep.Machine["cpu"], rep.Machine["nproc"], rep.Machine["memory"], len(rep.Runs))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tmeasured\tload\ttarget\tLitestream v0.5 (issue)\tverdict")
	for _, f := range figures {
		if !hasAll(rep.Median, f.keys) {
			continue
		}
		verdict := "MISS"
		if f.pass(rep.Median) {
			verdict = "ok"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%s\t%s\t%s\n", f.name, f.show(rep.Median), rep.Median["load_"+f.row], f.target, f.anchor, verdict)
	}
	tw.Flush()
	if len(rep.Runs) > 1 {
		fmt.Fprintln(w, "\nspread over runs (min .. max):")
		keys := make([]string, 0, len(rep.Median))
		for k := range rep.Median {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, "  %-20s %10.3f  (%.3f .. %.3f)\n", k, rep.Median[k], rep.Min[k], rep.Max[k])
		}
		fmt.Fprint(w, b.String())
	}
	for i, r := range rep.Runs {
		for _, e := range r.Errors {
			fmt.Fprintf(w, "run %d error: %s\n", i+1, e)
		}
	}
}

func hasAll(m metrics, keys []string) bool {
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			return false
		}
	}
	return true
}
