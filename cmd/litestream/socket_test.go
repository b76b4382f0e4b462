package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream/server"
)

// controlCLI runs a daemon-control command in-process against sock and
// fails the test unless it exits 0.
func controlCLI(t *testing.T, sock string, args ...string) string {
	t.Helper()
	full := append([]string{args[0], "-socket", sock}, args[1:]...)
	code, stdout, stderr := runCLI(t, full...)
	if code != 0 {
		t.Fatalf("litestream %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(full, " "), code, stdout, stderr)
	}
	return stdout
}

// controlJSON runs a command with -json and decodes its output strictly
// into a map, so tests see exactly the fields printed.
func controlJSON(t *testing.T, sock string, args ...string) map[string]any {
	t.Helper()
	out := controlCLI(t, sock, append([]string{args[0], "-json"}, args[1:]...)...)
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("%s -json output is not a JSON object: %v\n%s", args[0], err, out)
	}
	return m
}

var hexTXID = regexp.MustCompile(`^[0-9a-f]{16}$`)

// txidField checks a JSON TXID is a 16-hex-digit string and returns it.
func txidField(t *testing.T, m map[string]any, key string) ltx.TXID {
	t.Helper()
	s, ok := m[key].(string)
	if !ok || !hexTXID.MatchString(s) {
		t.Fatalf("%s = %#v, want a 16-hex-digit string (in %v)", key, m[key], m)
	}
	txid, err := ltx.ParseTXID(s)
	if err != nil {
		t.Fatal(err)
	}
	return txid
}

func wantFields(t *testing.T, m map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if m[k] != v {
			t.Fatalf("%s = %#v, want %#v (in %v)", k, m[k], v, m)
		}
	}
}

func listJSON(t *testing.T, sock string) map[string]map[string]any {
	t.Helper()
	out := controlCLI(t, sock, "list", "-json")
	var resp struct {
		Databases []map[string]any `json:"databases"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("list -json: %v\n%s", err, out)
	}
	byPath := map[string]map[string]any{}
	for _, db := range resp.Databases {
		byPath[db["path"].(string)] = db
	}
	return byPath
}

// TestSocketCommandsAgainstDaemon runs every daemon-control command
// against a real replicate process and checks its JSON and text output,
// and what the daemon did.
func TestSocketCommandsAgainstDaemon(t *testing.T) {
	dir := t.TempDir()
	aPath, bPath := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
	aReplica, bReplica := filepath.Join(dir, "a-replica"), filepath.Join(dir, "b-replica")
	sock := filepath.Join(dir, "ls.sock")
	cfg := writeConfig(t, dir, fmt.Sprintf(`addr: 127.0.0.1:0
pprof: true
socket:
  enabled: true
  path: %s
  permissions: 0640
dbs:
  - path: %s
    monitor-interval: 10ms
    replica:
      path: %s
      sync-interval: 10ms
`, sock, aPath, aReplica))
	a := openApp(t, aPath)
	mustExec(t, a, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
	d := startDaemon(t, cfg)
	d.waitLog(t, `msg="control socket (listening)"`)
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o640 {
		t.Fatalf("socket %s: %v %v, want a socket with mode 0640", sock, fi.Mode(), err)
	}
	if code := httpStatus(t, "http://"+d.metricsAddr(t)+"/debug/pprof/cmdline"); code != 200 {
		t.Fatalf("pprof: true but /debug/pprof/cmdline answers HTTP %d", code)
	}

	// info
	info := controlJSON(t, sock, "info")
	if info["pid"] != float64(d.cmd.Process.Pid) || info["database_count"] != float64(1) || info["version"] == "" {
		t.Fatalf("info -json: %v", info)
	}
	if _, err := time.Parse(time.RFC3339, info["started_at"].(string)); err != nil {
		t.Fatalf("info started_at: %v", err)
	}
	if _, ok := info["uptime_seconds"].(float64); !ok {
		t.Fatalf("info uptime_seconds: %v", info)
	}
	text := controlCLI(t, sock, "info")
	for _, want := range []string{"Litestream ", "PID: " + strconv.Itoa(d.cmd.Process.Pid), "Uptime: ", "Started at: ", "Databases: 1"} {
		if !strings.Contains(text, want) {
			t.Fatalf("info output lacks %q:\n%s", want, text)
		}
	}

	// sync -wait: once it returns, a restore has every committed row.
	for i := 0; i < 50; i++ {
		mustExec(t, a, "INSERT INTO t (v) VALUES (?)", fmt.Sprintf("row %d", i))
	}
	sync := controlJSON(t, sock, "sync", "-wait", aPath)
	txid := txidField(t, sync, "txid")
	if txidField(t, sync, "replica_txid") < txid || sync["db_path"] != aPath {
		t.Fatalf("sync -wait -json: %v", sync)
	}
	if _, ok := sync["duration_ms"].(float64); !ok {
		t.Fatalf("sync duration_ms: %v", sync)
	}
	out := filepath.Join(dir, "restored.db")
	if code, _, stderr := runCLI(t, "restore", "-o", out, "file://"+aReplica); code != 0 {
		t.Fatalf("restore right after sync -wait: %s", stderr)
	}
	if n := queryInt(t, out, "SELECT COUNT(*) FROM t"); n != 50 {
		t.Fatalf("restore right after sync -wait has %d rows, want 50", n)
	}
	sync = controlJSON(t, sock, "sync", aPath)
	if _, ok := sync["replica_txid"]; ok {
		t.Fatalf("sync without -wait printed replica_txid: %v", sync)
	}
	text = controlCLI(t, sock, "sync", "-wait", aPath)
	if !regexp.MustCompile(`(?m)^db_path: .*a\.db\ntxid: [0-9a-f]{16}\nreplica_txid: [0-9a-f]{16}\nduration_ms: \d+\n$`).MatchString(text) {
		t.Fatalf("sync -wait text output:\n%s", text)
	}

	// txid endpoint (no command of its own).
	client := &server.Client{SocketPath: sock, Timeout: 10 * time.Second}
	if resp, err := client.TXID(context.Background(), aPath); err != nil || resp.TXID < txid {
		t.Fatalf("/txid: %+v %v", resp, err)
	}

	// register a second database at run time, replicate it, list both.
	b := openApp(t, bPath)
	mustExec(t, b, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
	reg := controlJSON(t, sock, "register", "-replica", "file://"+bReplica, bPath)
	wantFields(t, reg, map[string]any{"status": "registered", "db_path": bPath, "replica": "file://" + bReplica, "socket": sock})
	reg = controlJSON(t, sock, "register", "-replica", "file://"+bReplica, bPath)
	wantFields(t, reg, map[string]any{"status": "already_registered"})
	mustExec(t, b, "INSERT INTO t (v) VALUES ('b')")
	bSync := controlJSON(t, sock, "sync", "-wait", bPath)
	bTXID := txidField(t, bSync, "replica_txid")
	// b's first file: an empty replica keeps it in the snapshot level;
	// when the insert came in a later file than the table, that one is in
	// level 0 (merged with others by an upload pass, maybe).
	if _, err := os.Stat(filepath.Join(bReplica, "ltx", "9", ltx.FormatFilename(1, 1))); err != nil {
		t.Fatalf("registered database not replicated: %v", err)
	}
	if m, err := filepath.Glob(filepath.Join(bReplica, "ltx", "0", "*-"+bTXID.String()+".ltx")); bTXID > 1 && (err != nil || len(m) != 1) {
		t.Fatalf("registered database's TXID %s not in the replica's level 0: %v %v", bTXID, m, err)
	}
	list := listJSON(t, sock)
	if len(list) != 2 || list[aPath]["status"] != "replicating" || list[bPath]["status"] != "replicating" {
		t.Fatalf("list -json: %v", list)
	}
	if _, err := time.Parse(time.RFC3339, list[aPath]["last_sync_at"].(string)); err != nil {
		t.Fatalf("list last_sync_at: %v", list[aPath])
	}
	text = controlCLI(t, sock, "register", "-replica", "file://"+bReplica, bPath)
	if text != fmt.Sprintf("status: already_registered\ndb_path: %s\nreplica: file://%s\nsocket: %s\n", bPath, bReplica, sock) {
		t.Fatalf("register text output:\n%s", text)
	}

	// stop: the database stays listed, sync is refused, start resumes.
	mustExec(t, a, "INSERT INTO t (v) VALUES ('before stop')")
	stop := controlJSON(t, sock, "stop", aPath)
	wantFields(t, stop, map[string]any{"status": "stopped", "db_path": aPath, "state": "stopped", "socket": sock})
	stopTXID := txidField(t, stop, "txid")
	if stopTXID <= txid {
		t.Fatalf("stop did not make a final sync: txid %s after %s", stopTXID, txid)
	}
	// The final pass may have merged several local files into one level-0
	// file: one of them must end at stopTXID.
	if m, err := filepath.Glob(filepath.Join(aReplica, "ltx", "0", "*-"+stopTXID.String()+".ltx")); err != nil || len(m) != 1 {
		t.Fatalf("final sync of stop not in the replica: %v %v", m, err)
	}
	wantFields(t, controlJSON(t, sock, "stop", aPath), map[string]any{"status": "already_stopped"})
	if list := listJSON(t, sock); list[aPath]["status"] != "stopped" {
		t.Fatalf("list after stop: %v", list)
	}
	if code, _, stderr := runCLI(t, "sync", "-socket", sock, aPath); code != 1 || !strings.Contains(stderr, "sync failed: database is stopped") {
		t.Fatalf("sync of a stopped database: exit %d %s", code, stderr)
	}
	start := controlJSON(t, sock, "start", aPath)
	wantFields(t, start, map[string]any{"status": "started", "db_path": aPath, "state": "running", "socket": sock})
	text = controlCLI(t, sock, "start", aPath)
	if !regexp.MustCompile(`^status: already_running\ndb_path: .*a\.db\nstate: running\ntxid: [0-9a-f]{16}\nsocket: .*\n$`).MatchString(text) {
		t.Fatalf("start text output:\n%s", text)
	}
	mustExec(t, a, "INSERT INTO t (v) VALUES ('after start')")
	if after := txidField(t, controlJSON(t, sock, "sync", "-wait", aPath), "replica_txid"); after <= stopTXID {
		t.Fatalf("no replication after start: %s", after)
	}

	// unregister: -dry-run sends nothing; then the final TXID is reported.
	text = controlCLI(t, sock, "unregister", "-dry-run", bPath)
	if !strings.Contains(text, "dry run") || len(listJSON(t, sock)) != 2 {
		t.Fatalf("unregister -dry-run: %s", text)
	}
	un := controlJSON(t, sock, "unregister", bPath)
	wantFields(t, un, map[string]any{"status": "unregistered", "db_path": bPath, "socket": sock})
	if got := txidField(t, un, "final_txid"); got != bTXID {
		t.Fatalf("unregister final_txid %s, want %s", got, bTXID)
	}
	if list := listJSON(t, sock); len(list) != 1 || list[aPath] == nil {
		t.Fatalf("list after unregister: %v", list)
	}
	text = controlCLI(t, sock, "unregister", bPath)
	if !strings.HasPrefix(text, "status: already_unregistered\n") {
		t.Fatalf("second unregister:\n%s", text)
	}
	if text = controlCLI(t, sock, "list"); !regexp.MustCompile(`^.*a\.db \[replicating\] \(last sync: \S+\)\n$`).MatchString(text) {
		t.Fatalf("list text output:\n%s", text)
	}

	d.stop(t)
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left behind after shutdown: %v", err)
	}
}

// TestSocketCommandErrors checks the errors that need no daemon.
func TestSocketCommandErrors(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"info", "-socket", sock}, "cannot reach the control socket " + sock},
		{[]string{"list", "-socket", sock, "-timeout", "0"}, "timeout must be greater than 0"},
		{[]string{"sync", "-socket", sock}, "database path required\nTry: litestream sync DB_PATH"},
		{[]string{"register", "-socket", sock, "x.db"}, "replica URL required"},
		{[]string{"start", "-socket", sock, "a.db", "b.db"}, "database path required"},
		{[]string{"stop", "-socket", sock, "a.db", "-json"}, "must come before the database path"},
		{[]string{"info", "-socket", sock, "extra"}, "too many arguments"},
	} {
		code, _, stderr := runCLI(t, tc.args...)
		if code != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("litestream %s: exit %d, stderr %q, want %q", strings.Join(tc.args, " "), code, stderr, tc.want)
		}
	}
	// unregister -dry-run needs no daemon.
	code, stdout, _ := runCLI(t, "unregister", "-dry-run", "-json", "-socket", sock, "/data/x.db")
	var m map[string]any
	if code != 0 || json.Unmarshal([]byte(stdout), &m) != nil || m["status"] != "dry_run" || m["db_path"] != "/data/x.db" {
		t.Fatalf("unregister -dry-run -json: %d %s", code, stdout)
	}
}
