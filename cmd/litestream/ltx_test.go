package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// txidPattern is how every TXID must look in JSON output.
var txidPattern = regexp.MustCompile(`^[0-9a-f]{16}$`)

// inspectFixture is a config with a `path:` database and a recursive
// `dir:` entry holding two databases, all replicated once.
type inspectFixture struct {
	dir, cfg       string
	single         string // the path: database
	dirA, dirB     string // databases under the dir: entry
	singleReplica  string
	dirReplicaRoot string
}

func newInspectFixture(t *testing.T) *inspectFixture {
	t.Helper()
	f := &inspectFixture{dir: t.TempDir()}
	f.single = filepath.Join(f.dir, "single.db")
	f.dirA = filepath.Join(f.dir, "data", "a.db")
	f.dirB = filepath.Join(f.dir, "data", "sub", "b.db")
	f.singleReplica = filepath.Join(f.dir, "replica-single")
	f.dirReplicaRoot = filepath.Join(f.dir, "replica-dir")
	createDB(t, f.single, 2)
	createDB(t, f.dirA, 3)
	createDB(t, f.dirB, 4)
	f.cfg = writeConfig(t, f.dir, fmt.Sprintf(`dbs:
  - path: %s
    replica:
      url: file://%s
  - dir: %s
    pattern: "*.db"
    recursive: true
    meta-dir: %s
    replica:
      path: %s
`, f.single, f.singleReplica, filepath.Join(f.dir, "data"), filepath.Join(f.dir, "meta"), f.dirReplicaRoot))
	f.replicate(t)
	return f
}

func (f *inspectFixture) replicate(t *testing.T, flags ...string) {
	t.Helper()
	args := append([]string{"replicate", "-once"}, flags...)
	if code, _, stderr := runCLI(t, append(args, "-config", f.cfg)...); code != 0 {
		t.Fatalf("replicate -once: %s", stderr)
	}
}

// runJSON runs a command that must succeed and decodes its stdout.
func runJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	code, stdout, stderr := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("%v: exit %d: %s", args, code, stderr)
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%v: decode %q: %v", args, stdout, err)
	}
}

// checkTable asserts text output is a header plus rows whose columns
// start at the same offsets as the header's.
func checkTable(t *testing.T, out string, header ...string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	for i, h := range header {
		if !strings.Contains(lines[0], h) {
			t.Fatalf("header %q lacks column %d %q", lines[0], i, h)
		}
	}
	last := header[len(header)-1]
	col := strings.Index(lines[0], last)
	for _, l := range lines[1:] {
		if l == "" {
			break // anything after a blank line is not part of the table
		}
		if len(l) < col || l[col-1] != ' ' || l[col] == ' ' {
			t.Fatalf("row %q is not aligned with header %q", l, lines[0])
		}
	}
	return lines[1:]
}

type ltxRow struct {
	Level     int    `json:"level"`
	MinTXID   string `json:"min_txid"`
	MaxTXID   string `json:"max_txid"`
	Size      int64  `json:"size"`
	Timestamp string `json:"timestamp"`
}

func checkLTXRows(t *testing.T, rows []ltxRow) {
	t.Helper()
	for _, r := range rows {
		if !txidPattern.MatchString(r.MinTXID) || !txidPattern.MatchString(r.MaxTXID) {
			t.Fatalf("TXIDs not 16 hex digits: %+v", r)
		}
		if _, err := time.Parse(time.RFC3339Nano, r.Timestamp); err != nil || r.Size <= 0 {
			t.Fatalf("bad row %+v: %v", r, err)
		}
	}
}

func TestLTXCommand(t *testing.T) {
	f := newInspectFixture(t)
	app := openApp(t, f.dirA)
	mustExec(t, app, "INSERT INTO t (v) VALUES ('second sync')")
	f.replicate(t, "-force-snapshot")

	// By database path, through the dir: entry: level 0 by default.
	var rows []ltxRow
	runJSON(t, &rows, "ltx", "-json", "-config", f.cfg, f.dirA)
	checkLTXRows(t, rows)
	// TXID 1, the replica's first file, is in the snapshot level only.
	if len(rows) < 1 || rows[0].Level != 0 || rows[0].MinTXID != "0000000000000002" {
		t.Fatalf("level 0 of a.db: %+v", rows)
	}
	latest := rows[len(rows)-1].MaxTXID

	// All levels by URL: level 0 and the snapshot in level 9.
	runJSON(t, &rows, "ltx", "-json", "-level", "all", "file://"+filepath.Join(f.dirReplicaRoot, "a.db"))
	checkLTXRows(t, rows)
	if last := rows[len(rows)-1]; last.Level != 9 || last.MinTXID != "0000000000000001" || last.MaxTXID != latest {
		t.Fatalf("snapshot row: %+v, want level 9 up to %s (all %+v)", last, latest, rows)
	}
	runJSON(t, &rows, "ltx", "-json", "-level", "9", "-config", f.cfg, f.single)
	// The replica's first file and the forced snapshot.
	if len(rows) != 2 || rows[0].Level != 9 || rows[1].Level != 9 || rows[1].MinTXID != "0000000000000001" {
		t.Fatalf("level 9 of single.db: %+v", rows)
	}
	runJSON(t, &rows, "ltx", "-json", "-level", "3", "-config", f.cfg, f.single)
	if rows == nil || len(rows) != 0 {
		t.Fatalf("empty level must be [], got %+v", rows)
	}

	// Text: an aligned table.
	code, stdout, stderr := runCLI(t, "ltx", "-config", f.cfg, f.dirB)
	if code != 0 {
		t.Fatal(stderr)
	}
	if lines := checkTable(t, stdout, "level", "min_txid", "max_txid", "size", "created"); len(lines) == 0 || !strings.HasPrefix(lines[0], "0 ") || !strings.Contains(lines[0], "0000000000000002") {
		t.Fatalf("text output:\n%s", stdout)
	}

	// The deprecated alias still works, with a warning.
	code, _, stderr = runCLI(t, "wal", "-config", f.cfg, f.dirB)
	if code != 0 || !strings.Contains(stderr, "deprecated") {
		t.Fatalf("wal alias: %d %s", code, stderr)
	}
}

func TestLTXCommandBadInput(t *testing.T) {
	f := newInspectFixture(t)
	for _, level := range []string{"10", "-1", "x", "", "ALL", "1.5"} {
		expectError(t, []string{"invalid -level", "0-9 or all"}, "ltx", "-level", level, "-config", f.cfg, f.single)
	}
	expectError(t, []string{"not in the config file"}, "ltx", "-config", f.cfg, filepath.Join(f.dir, "nope.db"))
	expectError(t, []string{"cannot specify a replica URL and -config"}, "ltx", "-config", f.cfg, "file://"+f.singleReplica)
	expectError(t, []string{"database path or replica URL required"}, "ltx", "-config", f.cfg)
	expectError(t, []string{"must come before"}, "ltx", f.single, "-json")
	os.WriteFile(filepath.Join(f.dir, "bad.yml"), []byte("dbs: [\n"), 0o600)
	expectError(t, []string{"bad.yml"}, "ltx", "-config", filepath.Join(f.dir, "bad.yml"), f.single)
}
