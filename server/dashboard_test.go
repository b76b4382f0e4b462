package server

import (
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// declaredMetrics reads the root package's metrics.go and returns every
// litestream_* metric it declares with its label names, and which are
// histograms (queried through _bucket, _sum and _count series).
func declaredMetrics(t *testing.T) (labels map[string][]string, histograms map[string]bool) {
	t.Helper()
	src, err := os.ReadFile("../metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	labels, histograms = map[string][]string{}, map[string]bool{}
	// promauto.NewXxxVec(prometheus.XxxOpts{ Name: "...", ... }, []string{...})
	vec := regexp.MustCompile(`(?s)New(\w+)Vec\(prometheus\.\w+Opts\{\s*Name:\s*"(litestream_\w+)".*?\},\s*\[\]string\{([^}]*)\}`)
	for _, m := range vec.FindAllStringSubmatch(string(src), -1) {
		labels[m[2]] = splitLabels(m[3])
		histograms[m[2]] = m[1] == "Histogram"
	}
	// prometheus.NewDesc("...", "help", []string{...}, nil) for collectors.
	desc := regexp.MustCompile(`(?s)NewDesc\(\s*"(litestream_\w+)",.*?\[\]string\{([^}]*)\}`)
	for _, m := range desc.FindAllStringSubmatch(string(src), -1) {
		labels[m[1]] = splitLabels(m[2])
	}
	if len(labels) < 20 {
		t.Fatalf("found only %d metrics in metrics.go; has its declaration style changed?", len(labels))
	}
	return labels, histograms
}

func splitLabels(s string) []string {
	var a []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.Trim(strings.TrimSpace(f), `"`); f != "" {
			a = append(a, f)
		}
	}
	return a
}

// dashboardExprs returns every PromQL expression of the dashboard: panel
// targets (nested rows included) and template variable queries.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../grafana/litestream-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "definition") {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	return exprs
}

// TestDashboardMetricsExist checks that every litestream_* metric the
// Grafana dashboard queries is declared, and that every label it filters
// on exists on that metric (job and instance are added by Prometheus).
func TestDashboardMetricsExist(t *testing.T) {
	declared, histograms := declaredMetrics(t)
	exprs := dashboardExprs(t)
	if len(exprs) < 20 {
		t.Fatalf("dashboard has only %d expressions", len(exprs))
	}
	selector := regexp.MustCompile(`(litestream_\w+)(\{([^}]*)\})?`)
	matcher := regexp.MustCompile(`(\w+)\s*(=~|!~|!=|=)`)
	used := map[string]bool{}
	for _, expr := range exprs {
		for _, m := range selector.FindAllStringSubmatch(expr, -1) {
			name, extra := resolveMetric(m[1], declared, histograms)
			if name == "" {
				t.Errorf("dashboard queries %s, which metrics.go does not declare (in %q)", m[1], expr)
				continue
			}
			used[name] = true
			allowed := append([]string{"job", "instance"}, declared[name]...)
			allowed = append(allowed, extra...)
			for _, lm := range matcher.FindAllStringSubmatch(m[3], -1) {
				if !contains(allowed, lm[1]) {
					t.Errorf("dashboard filters %s on label %q; its labels are %v (in %q)", name, lm[1], declared[name], expr)
				}
			}
		}
	}
	// The issue asks for lag, replica position and error rates at least.
	for _, name := range []string{"litestream_replication_lag_seconds", "litestream_replica_txid", "litestream_txid",
		"litestream_replica_operation_errors_total", "litestream_sync_error_count"} {
		if !used[name] {
			t.Errorf("dashboard does not show %s", name)
		}
	}
	var unused []string
	for name := range declared {
		if !used[name] {
			unused = append(unused, name)
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Logf("metrics not on the dashboard: %v", unused)
	}
}

// resolveMetric maps a queried series name to its declared metric; for a
// histogram's _bucket series the "le" label is allowed too.
func resolveMetric(series string, declared map[string][]string, histograms map[string]bool) (string, []string) {
	if _, ok := declared[series]; ok {
		return series, nil
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(series, suffix); ok && histograms[base] {
			return base, []string{"le"}
		}
	}
	return "", nil
}

func contains(a []string, s string) bool {
	for _, x := range a {
		if x == s {
			return true
		}
	}
	return false
}
