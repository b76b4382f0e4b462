package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type statusRow struct {
	Database    string   `json:"database"`
	Status      string   `json:"status"`
	LocalTXID   *string  `json:"local_txid"`
	ReplicaTXID *string  `json:"replica_txid"`
	WALSize     int64    `json:"wal_size"`
	LastSyncAt  *string  `json:"last_sync_at"`
	LagSeconds  *float64 `json:"lag_seconds"`
	Replica     string   `json:"replica"`
	Error       string   `json:"error"`
}

func statusRows(t *testing.T, args ...string) map[string]statusRow {
	t.Helper()
	var rows []statusRow
	runJSON(t, &rows, append([]string{"status", "-json"}, args...)...)
	m := map[string]statusRow{}
	for _, r := range rows {
		for _, id := range []*string{r.LocalTXID, r.ReplicaTXID} {
			if id != nil && !txidPattern.MatchString(*id) {
				t.Fatalf("TXID %q is not 16 hex digits: %+v", *id, r)
			}
		}
		m[r.Database] = r
	}
	return m
}

func str(p *string) string {
	if p == nil {
		return "<null>"
	}
	return *p
}

func TestStatusCommand(t *testing.T) {
	f := newInspectFixture(t)
	// Not yet replicated, missing, and not a database: all in the config.
	fresh := filepath.Join(f.dir, "data", "sub", "fresh.db")
	missing := filepath.Join(f.dir, "missing.db")
	notDB := filepath.Join(f.dir, "notdb.db")
	os.WriteFile(notDB, []byte("this is plain text, not a database"), 0o644)
	body, _ := os.ReadFile(f.cfg)
	for _, p := range []string{missing, notDB} {
		body = append(body, fmt.Sprintf("  - path: %s\n    replica:\n      path: %s\n", p, p+"-replica")...)
	}
	os.WriteFile(f.cfg, body, 0o600)
	createDB(t, fresh, 1)

	before := time.Now()
	app := openApp(t, f.dirA)
	mustExec(t, app, "INSERT INTO t (v) VALUES ('x')")
	rows := statusRows(t, "-config", f.cfg)
	if len(rows) != 6 {
		t.Fatalf("%d rows, want 6: %+v", len(rows), rows)
	}
	for _, p := range []string{f.single, f.dirB} {
		r := rows[p]
		if r.Status != "ok" || r.LocalTXID == nil || str(r.LocalTXID) != str(r.ReplicaTXID) || r.LagSeconds == nil || *r.LagSeconds != 0 || r.Replica != "file" {
			t.Fatalf("%s: %+v (local %s, replica %s)", p, r, str(r.LocalTXID), str(r.ReplicaTXID))
		}
		if ts, err := time.Parse(time.RFC3339Nano, str(r.LastSyncAt)); err != nil || ts.After(before) {
			t.Fatalf("%s: last_sync_at %s: %v", p, str(r.LastSyncAt), err)
		}
	}
	if r := rows[f.dirA]; r.Status != "ok" || r.WALSize == 0 {
		t.Fatalf("a.db has an unsynced write in its WAL: %+v", r)
	}
	if r := rows[fresh]; r.Status != "not initialized" || r.LocalTXID != nil || r.ReplicaTXID != nil || r.LastSyncAt != nil || r.LagSeconds != nil {
		t.Fatalf("fresh.db: %+v", r)
	}
	if r := rows[missing]; r.Status != "no database" || r.LocalTXID != nil {
		t.Fatalf("missing.db: %+v", r)
	}
	if r := rows[notDB]; r.Status != "error" || !strings.Contains(r.Error, "not a SQLite database") {
		t.Fatalf("notdb.db: %+v", r)
	}

	// A replica that lost its files: the replica is behind, so there is lag.
	if err := os.RemoveAll(f.singleReplica); err != nil {
		t.Fatal(err)
	}
	rows = statusRows(t, "-config", f.cfg, f.single)
	if r := rows[f.single]; len(rows) != 1 || r.Status != "ok" || r.ReplicaTXID != nil || r.LagSeconds == nil || *r.LagSeconds <= 0 {
		t.Fatalf("single.db without replica: %+v", rows)
	}

	// One database under the dir: entry, even after it is gone.
	os.Remove(f.dirB)
	rows = statusRows(t, "-config", f.cfg, f.dirB)
	if r := rows[f.dirB]; len(rows) != 1 || r.Status != "no database" || r.LocalTXID == nil || r.ReplicaTXID == nil {
		t.Fatalf("removed b.db: %+v", rows)
	}

	// Text: an aligned table, errors below it.
	code, stdout, _ := runCLI(t, "status", "-config", f.cfg)
	if code != 0 {
		t.Fatalf("status: %d", code)
	}
	lines := checkTable(t, stdout, "database", "status", "local txid", "replica txid", "wal size", "last sync", "lag")
	if !strings.Contains(stdout, "not initialized") || !strings.Contains(stdout, "\n"+notDB+": ") || !strings.Contains(lines[0], "0000000000000001") {
		t.Fatalf("text output:\n%s", stdout)
	}
}

func TestStatusCommandBadInput(t *testing.T) {
	f := newInspectFixture(t)
	expectError(t, []string{"not in the config file"}, "status", "-config", f.cfg, filepath.Join(f.dir, "nope.db"))
	expectError(t, []string{"at most one database path"}, "status", "-config", f.cfg, f.single, f.dirA)
	expectError(t, []string{"must come before"}, "status", f.single, "-json")
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 999: "999 B", 4096: "4.1 kB", 32768: "33 kB", 1_500_000: "1.5 MB", 5 << 30: "5.4 GB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
