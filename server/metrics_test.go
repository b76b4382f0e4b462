package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMetricsServer: the listener binds the address as given, serves the
// default registry, and serves pprof only when enabled.
func TestMetricsServer(t *testing.T) {
	for _, bad := range []string{"localhost", "127.0.0.1:", ":notaport"} {
		if _, err := ServeMetrics(bad, false, slog.Default()); err == nil {
			t.Errorf("ServeMetrics(%q) accepted an address without a valid port", bad)
		}
	}
	for _, pprofOn := range []bool{false, true} {
		m, err := ServeMetrics("127.0.0.1:0", pprofOn, slog.Default())
		if err != nil {
			t.Fatal(err)
		}
		base := "http://" + m.Addr().String()
		if !strings.HasPrefix(m.Addr().String(), "127.0.0.1:") {
			t.Fatalf("bound %s, want 127.0.0.1", m.Addr())
		}
		code, body := get(t, base+"/metrics")
		if code != http.StatusOK || !strings.Contains(body, "# TYPE go_goroutines gauge") {
			t.Fatalf("/metrics: HTTP %d\n%s", code, body)
		}
		want := http.StatusNotFound
		if pprofOn {
			want = http.StatusOK
		}
		if code, _ := get(t, base+"/debug/pprof/cmdline"); code != want {
			t.Fatalf("pprof %v: /debug/pprof/cmdline HTTP %d, want %d", pprofOn, code, want)
		}
		if err := m.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}
