package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// expectError runs a command that must fail with a message containing
// every one of want.
func expectError(t *testing.T, want []string, args ...string) {
	t.Helper()
	code, _, stderr := runCLI(t, args...)
	if code == 0 {
		t.Fatalf("%v succeeded; want an error", args)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Fatalf("%v: error %q does not mention %q", args, stderr, w)
		}
	}
}

func TestReplicateBadInput(t *testing.T) {
	dir := t.TempDir()
	notSQLite := filepath.Join(dir, "notes.txt")
	os.WriteFile(notSQLite, []byte("hello, this is not a database at all"), 0o644)
	plainFile := filepath.Join(dir, "plain")
	os.WriteFile(plainFile, nil, 0o644)
	replica := "file://" + filepath.Join(dir, "replica")

	t.Run("missing directory", func(t *testing.T) {
		expectError(t, []string{"database directory", "no such file"}, "replicate", "-once", filepath.Join(dir, "nope", "app.db"), replica)
	})
	t.Run("path through a file", func(t *testing.T) {
		expectError(t, []string{"not a directory"}, "replicate", "-once", filepath.Join(plainFile, "app.db"), replica)
	})
	t.Run("not sqlite", func(t *testing.T) {
		expectError(t, []string{notSQLite, "not a SQLite database"}, "replicate", "-once", notSQLite, replica)
	})
	t.Run("directory as database", func(t *testing.T) {
		expectError(t, []string{"is a directory"}, "replicate", "-once", dir, replica)
	})
	t.Run("bad url", func(t *testing.T) {
		expectError(t, []string{"invalid replica URL"}, "replicate", "-once", filepath.Join(dir, "a.db"), "not-a-url")
	})
	t.Run("unknown scheme", func(t *testing.T) {
		expectError(t, []string{`unknown replica type "bogus"`}, "replicate", "-once", filepath.Join(dir, "a.db"), "bogus://x/y")
	})
	t.Run("two urls", func(t *testing.T) {
		expectError(t, []string{"multiple replicas"}, "replicate", filepath.Join(dir, "a.db"), replica, replica)
	})
	t.Run("flag after path", func(t *testing.T) {
		expectError(t, []string{"must come before"}, "replicate", filepath.Join(dir, "a.db"), "-once")
	})
	t.Run("unknown command", func(t *testing.T) {
		expectError(t, []string{"unknown command"}, "replikate")
	})
}

func TestConfigBadInput(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	cases := []struct {
		name, body string
		want       []string
	}{
		{"unknown key", "dbs:\n  - path: " + db + "\n    replica:\n      path: /tmp/r\n      sync-intervall: 1s\n", []string{"line 5", "sync-intervall"}},
		{"unknown top-level key", "dbz: []\n", []string{"line 1", "dbz"}},
		{"bad duration", "dbs:\n  - path: " + db + "\n    monitor-interval: fast\n    replica:\n      path: /tmp/r\n", []string{"line 3", `"fast"`}},
		{"negative duration", "dbs:\n  - path: " + db + "\n    checkpoint-interval: -1s\n    replica:\n      path: /tmp/r\n", []string{"checkpoint-interval", "negative"}},
		{"zero page count", "dbs:\n  - path: " + db + "\n    min-checkpoint-page-count: 0\n    replica:\n      path: /tmp/r\n", []string{"min-checkpoint-page-count", "greater than 0"}},
		{"no replica", "dbs:\n  - path: " + db + "\n", []string{"dbs[0]", "replica is required"}},
		{"two replicas", "dbs:\n  - path: " + db + "\n    replicas:\n      - path: /tmp/a\n      - path: /tmp/b\n", []string{"multiple replicas"}},
		{"bad log level", "logging:\n  level: loud\ndbs: []\n", []string{"logging.level", "loud"}},
		{"bad log type", "logging:\n  type: xml\ndbs: []\n", []string{"logging.type", "xml"}},
		{"path is url", "dbs:\n  - path: " + db + "\n    replica:\n      path: s3://bucket/x\n", []string{"not a URL"}},
		{"bad yaml", "dbs: [\n", []string{"invalid config"}},
		{"short heartbeat", "heartbeat-interval: 10s\ndbs: []\n", []string{"heartbeat-interval", "at least 1m"}},
		{"too many levels", "levels: [{interval: 1s},{interval: 1s},{interval: 1s},{interval: 1s},{interval: 1s},{interval: 1s},{interval: 1s},{interval: 1s},{interval: 1s}]\ndbs: []\n", []string{"at most 8"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := writeConfig(t, t.TempDir(), c.body)
			expectError(t, c.want, "replicate", "-once", "-config", cfg)
			_ = i
		})
	}
	t.Run("missing config file", func(t *testing.T) {
		expectError(t, []string{"read config", "no such file"}, "replicate", "-config", filepath.Join(dir, "nope.yml"))
	})
}

// buildReplica replicates a small database with three syncs and returns
// the replica directory.
func buildReplica(t *testing.T) (dir, replicaDir string) {
	t.Helper()
	dir = t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	app := openApp(t, dbPath)
	mustExec(t, app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	replicaDir = filepath.Join(dir, "replica")
	for i := 0; i < 3; i++ {
		mustExec(t, app, "INSERT INTO t (v) VALUES (randomblob(20000))")
		if code, _, stderr := runCLI(t, "replicate", "-once", dbPath, "file://"+replicaDir); code != 0 {
			t.Fatalf("replicate: %s", stderr)
		}
	}
	return dir, replicaDir
}

func assertNoOutput(t *testing.T, out string) {
	t.Helper()
	for _, p := range []string{out, out + ".tmp"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("%s exists after a failed restore", p)
		}
	}
}

func TestRestoreBadReplica(t *testing.T) {
	l0 := func(replicaDir string, txid int) string {
		return filepath.Join(replicaDir, "ltx", "0", fmt.Sprintf("%016x-%016x.ltx", txid, txid))
	}
	t.Run("bit flip", func(t *testing.T) {
		dir, replicaDir := buildReplica(t)
		p := l0(replicaDir, 2)
		b, _ := os.ReadFile(p)
		b[len(b)/2] ^= 0x40
		os.WriteFile(p, b, 0o644)
		out := filepath.Join(dir, "out.db")
		expectError(t, []string{"level 0 file 0000000000000002-0000000000000002.ltx"}, "restore", "-o", out, "file://"+replicaDir)
		assertNoOutput(t, out)
	})
	t.Run("truncated", func(t *testing.T) {
		dir, replicaDir := buildReplica(t)
		p := l0(replicaDir, 3)
		b, _ := os.ReadFile(p)
		os.WriteFile(p, b[:len(b)/3], 0o644)
		out := filepath.Join(dir, "out.db")
		expectError(t, []string{"level 0 file 0000000000000003-0000000000000003.ltx"}, "restore", "-o", out, "file://"+replicaDir)
		assertNoOutput(t, out)
	})
	t.Run("truncated header", func(t *testing.T) {
		dir, replicaDir := buildReplica(t)
		os.WriteFile(l0(replicaDir, 3), []byte("LTX1"), 0o644)
		out := filepath.Join(dir, "out.db")
		expectError(t, []string{"0000000000000003-0000000000000003.ltx", "truncated"}, "restore", "-o", out, "file://"+replicaDir)
		assertNoOutput(t, out)
	})
	t.Run("gap", func(t *testing.T) {
		dir, replicaDir := buildReplica(t)
		os.Remove(l0(replicaDir, 2))
		out := filepath.Join(dir, "out.db")
		expectError(t, []string{"gap", "0000000000000002"}, "restore", "-o", out, "file://"+replicaDir)
		assertNoOutput(t, out)
	})
	t.Run("swapped files", func(t *testing.T) {
		dir, replicaDir := buildReplica(t)
		a, _ := os.ReadFile(l0(replicaDir, 2))
		b, _ := os.ReadFile(l0(replicaDir, 3))
		os.WriteFile(l0(replicaDir, 2), b, 0o644)
		os.WriteFile(l0(replicaDir, 3), a, 0o644)
		out := filepath.Join(dir, "out.db")
		expectError(t, []string{"0000000000000002-0000000000000002.ltx"}, "restore", "-o", out, "file://"+replicaDir)
		assertNoOutput(t, out)
	})
	t.Run("empty replica", func(t *testing.T) {
		dir := t.TempDir()
		out := filepath.Join(dir, "out.db")
		expectError(t, []string{"no matching backup"}, "restore", "-o", out, "file://"+filepath.Join(dir, "empty"))
		if code, _, _ := runCLI(t, "restore", "-if-replica-exists", "-o", out, "file://"+filepath.Join(dir, "empty")); code != 0 {
			t.Fatal("-if-replica-exists with no backup must succeed")
		}
		assertNoOutput(t, out)
	})
	t.Run("bad flags", func(t *testing.T) {
		expectError(t, []string{"invalid txid"}, "restore", "-txid", "12", "-o", "x.db", "file:///tmp/x")
		expectError(t, []string{"invalid -timestamp"}, "restore", "-timestamp", "yesterday", "-o", "x.db", "file:///tmp/x")
		expectError(t, []string{"both -txid and -timestamp"}, "restore", "-txid", "0000000000000001", "-timestamp", "2026-01-01T00:00:00Z", "-o", "x.db", "file:///tmp/x")
		expectError(t, []string{"output path required"}, "restore", "file:///tmp/x")
		expectError(t, []string{"invalid -integrity-check"}, "restore", "-integrity-check", "some", "-o", "x.db", "file:///tmp/x")
	})
}

// TestReplicateRollbackJournalDatabase: a database in rollback-journal
// mode is switched to WAL and replicated.
func TestReplicateRollbackJournalDatabase(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	db := openAppJournal(t, dbPath)
	mustExec(t, db, "CREATE TABLE t (x)")
	mustExec(t, db, "INSERT INTO t VALUES (1), (2), (3)")
	db.Close()
	replica := "file://" + filepath.Join(dir, "replica")
	if code, _, stderr := runCLI(t, "replicate", "-once", dbPath, replica); code != 0 {
		t.Fatalf("replicate: %s", stderr)
	}
	out := filepath.Join(dir, "out.db")
	if code, _, stderr := runCLI(t, "restore", "-o", out, replica); code != 0 {
		t.Fatalf("restore: %s", stderr)
	}
	if n := queryInt(t, out, "SELECT SUM(x) FROM t"); n != 6 {
		t.Fatalf("restored sum %d, want 6", n)
	}
	integrityOK(t, out)
}
