package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sqlitebackup/litestream/config"
)

// createDB writes a small database with one table t holding rows "<name>-<i>".
func createDB(t *testing.T, path string, rows int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	// No fsync: these tests never crash the machine, and hundreds of
	// databases are made this way.
	db, err := sql.Open("sqlite", path+"?_pragma=synchronous(off)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < rows; i++ {
		if _, err := tx.Exec("INSERT INTO t (v) VALUES (?)", fmt.Sprintf("%s-%d", filepath.Base(path), i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// dumpTable returns table t of a database as one comparable string.
func dumpTable(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var s sql.NullString
	if err := db.QueryRow("SELECT group_concat(id || ':' || v, ',') FROM (SELECT id, v FROM t ORDER BY id)").Scan(&s); err != nil {
		t.Fatalf("dump %s: %v", path, err)
	}
	return s.String
}

// restoreDump restores dbPath through the config (so through its `dir:`
// entry) and returns the restored table, or "" if the restore failed.
func restoreDump(t *testing.T, cfg, dbPath string) (string, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "restored.db")
	code, _, stderr := runCLI(t, "restore", "-config", cfg, "-o", out, dbPath)
	if code != 0 {
		return "", stderr
	}
	return dumpTable(t, out), ""
}

func TestReplicateDirOnce(t *testing.T) {
	dir := t.TempDir()
	dbDir := filepath.Join(dir, "data")
	createDB(t, filepath.Join(dbDir, "a.db"), 3)
	createDB(t, filepath.Join(dbDir, "sub", "b.db"), 2)
	createDB(t, filepath.Join(dbDir, "sub", "deeper", "c.db"), 1)
	createDB(t, filepath.Join(dbDir, "other.sqlite"), 1) // does not match the pattern
	os.WriteFile(filepath.Join(dbDir, "notes.db"), []byte("not a database, only text here"), 0o644)
	os.WriteFile(filepath.Join(dbDir, "empty.db"), nil, 0o644)
	os.WriteFile(filepath.Join(dbDir, "x.db-wal"), []byte("SQLite format 3\x00 but a wal name"), 0o644)
	replicaDir := filepath.Join(dir, "replica")

	for _, recursive := range []bool{false, true} {
		t.Run(fmt.Sprintf("recursive=%v", recursive), func(t *testing.T) {
			os.RemoveAll(replicaDir)
			cfg := writeConfig(t, dir, fmt.Sprintf("dbs:\n  - dir: %s\n    pattern: \"*.db\"\n    recursive: %v\n    replica:\n      url: file://%s\n", dbDir, recursive, replicaDir))
			if code, _, stderr := runCLI(t, "replicate", "-once", "-config", cfg); code != 0 {
				t.Fatalf("replicate -once: %s", stderr)
			}
			want := []string{"a.db"}
			if recursive {
				want = append(want, "sub/b.db", "sub/deeper/c.db")
			}
			if got := replicaDBs(t, replicaDir); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("replicated %v, want %v", got, want)
			}
			for _, rel := range want {
				p := filepath.Join(dbDir, rel)
				got, stderr := restoreDump(t, cfg, p)
				if w := dumpTable(t, p); got != w {
					t.Fatalf("restore %s through the dir entry: %q, want %q (%s)", rel, got, w, stderr)
				}
			}
		})
	}

	// A lost database under the dir entry restores to its own path.
	b := filepath.Join(dbDir, "sub", "b.db")
	want := dumpTable(t, b)
	removeDB(t, b)
	cfg := writeConfig(t, dir, fmt.Sprintf("dbs:\n  - dir: %s\n    pattern: \"*.db\"\n    recursive: true\n    replica:\n      url: file://%s\n", dbDir, replicaDir))
	if code, _, stderr := runCLI(t, "restore", "-config", cfg, b); code != 0 {
		t.Fatalf("restore lost %s: %s", b, stderr)
	}
	if got := dumpTable(t, b); got != want {
		t.Fatalf("restored lost b.db: %q, want %q", got, want)
	}
	// A path outside the entry's pattern is not under it.
	expectError(t, []string{"not in the config file"}, "restore", "-config", cfg, "-o", filepath.Join(dir, "o.db"), filepath.Join(dbDir, "other.sqlite"))
}

// replicaDBs lists the relative paths of the replicas under root (every
// directory holding an ltx/9 directory: an empty replica's first file
// goes there), sorted.
func replicaDBs(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err == nil && e.IsDir() && e.Name() == "9" && filepath.Base(filepath.Dir(p)) == "ltx" {
			rel, _ := filepath.Rel(root, filepath.Dir(filepath.Dir(p)))
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return out
}

func TestReplicateDirMetaPaths(t *testing.T) {
	dir := t.TempDir()
	dbDir := filepath.Join(dir, "data")
	createDB(t, filepath.Join(dbDir, "a.db"), 1)
	createDB(t, filepath.Join(dbDir, "sub", "b.db"), 1)
	cases := []struct {
		key  string
		want []string
	}{
		{"", []string{filepath.Join(dbDir, ".a.db-litestream"), filepath.Join(dbDir, "sub", ".b.db-litestream")}},
		{"meta-dir", []string{filepath.Join(dir, "meta", "a.db-litestream"), filepath.Join(dir, "meta", "sub", "b.db-litestream")}},
		{"meta-path", []string{filepath.Join(dir, "meta", ".a.db-litestream"), filepath.Join(dir, "meta", "sub", ".b.db-litestream")}},
	}
	for _, tc := range cases {
		t.Run("key="+tc.key, func(t *testing.T) {
			for _, p := range []string{filepath.Join(dir, "meta"), filepath.Join(dbDir, ".a.db-litestream"), filepath.Join(dbDir, "sub", ".b.db-litestream"), filepath.Join(dir, "replica")} {
				os.RemoveAll(p)
			}
			extra := ""
			if tc.key != "" {
				extra = fmt.Sprintf("    %s: %s\n", tc.key, filepath.Join(dir, "meta"))
			}
			cfg := writeConfig(t, dir, fmt.Sprintf("dbs:\n  - dir: %s\n    pattern: \"*.db\"\n    recursive: true\n%s    replica:\n      path: %s\n", dbDir, extra, filepath.Join(dir, "replica")))
			if code, _, stderr := runCLI(t, "replicate", "-once", "-config", cfg); code != 0 {
				t.Fatalf("replicate -once: %s", stderr)
			}
			for _, m := range tc.want {
				if entries, err := os.ReadDir(filepath.Join(m, "ltx", "0")); err != nil || len(entries) == 0 {
					t.Fatalf("meta directory %s: %v (%d files)", m, err, len(entries))
				}
			}
		})
	}
}

func TestReplicateDirBadInput(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	dbDir := filepath.Join(dir, "data")
	createDB(t, filepath.Join(dbDir, "a.db"), 1)
	dbDir2 := filepath.Join(dir, "data2")
	createDB(t, filepath.Join(dbDir2, "a.db"), 1)
	replica := filepath.Join(dir, "replica")
	cfg := func(body string) string { return writeConfig(t, dir, body) }

	t.Run("empty dir", func(t *testing.T) {
		expectError(t, []string{empty, "no SQLite databases found"}, "replicate", "-once", "-config",
			cfg(fmt.Sprintf("dbs:\n  - dir: %s\n    pattern: \"*.db\"\n    replica:\n      path: %s\n", empty, replica)))
	})
	t.Run("missing dir", func(t *testing.T) {
		expectError(t, []string{"no such file"}, "replicate", "-once", "-config",
			cfg(fmt.Sprintf("dbs:\n  - dir: %s\n    pattern: \"*.db\"\n    replica:\n      path: %s\n", filepath.Join(dir, "nope"), replica)))
	})
	t.Run("dir without pattern", func(t *testing.T) {
		expectError(t, []string{"dir requires pattern"}, "replicate", "-once", "-config",
			cfg(fmt.Sprintf("dbs:\n  - dir: %s\n    replica:\n      path: %s\n", dbDir, replica)))
	})
	t.Run("bad pattern", func(t *testing.T) {
		expectError(t, []string{"invalid pattern", "syntax error"}, "replicate", "-once", "-config",
			cfg(fmt.Sprintf("dbs:\n  - dir: %s\n    pattern: \"[\"\n    replica:\n      path: %s\n", dbDir, replica)))
	})
	t.Run("database in a path and a dir entry", func(t *testing.T) {
		expectError(t, []string{"matched by both dbs[0] and dbs[1]"}, "replicate", "-once", "-config",
			cfg(fmt.Sprintf("dbs:\n  - path: %s\n    replica:\n      path: %s\n  - dir: %s\n    pattern: \"*.db\"\n    replica:\n      path: %s\n",
				filepath.Join(dbDir, "a.db"), replica, dbDir, replica)))
	})
	t.Run("meta-dir collision", func(t *testing.T) {
		meta := filepath.Join(dir, "meta")
		expectError(t, []string{"would share the meta directory", filepath.Join(meta, "a.db-litestream")}, "replicate", "-once", "-config",
			cfg(fmt.Sprintf("dbs:\n  - dir: %s\n    pattern: \"*.db\"\n    meta-dir: %s\n    replica:\n      path: %s\n  - dir: %s\n    pattern: \"*.db\"\n    meta-dir: %s\n    replica:\n      path: %s\n",
				dbDir, meta, replica, dbDir2, meta, replica+"2")))
	})
	t.Run("watched empty dir is fine", func(t *testing.T) {
		if code, _, stderr := runCLI(t, "replicate", "-once", "-config",
			cfg(fmt.Sprintf("dbs:\n  - dir: %s\n    pattern: \"*.db\"\n    watch: true\n    replica:\n      path: %s\n", empty, replica))); code != 0 {
			t.Fatalf("watched empty dir: %s", stderr)
		}
	})
}

func TestReplicaBelow(t *testing.T) {
	cases := []struct {
		in   config.ReplicaSettings
		want config.ReplicaSettings
	}{
		{config.ReplicaSettings{Path: "/backups"}, config.ReplicaSettings{Path: "/backups/sub/a.db"}},
		{config.ReplicaSettings{URL: "file:///backups/"}, config.ReplicaSettings{URL: "file:///backups/sub/a.db"}},
		{config.ReplicaSettings{URL: "s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=x"}, config.ReplicaSettings{URL: "s3://bucket/prefix/sub/a.db?endpoint=http://127.0.0.1:9000&region=x"}},
		{config.ReplicaSettings{URL: "s3://bucket"}, config.ReplicaSettings{URL: "s3://bucket/sub/a.db"}},
		{config.ReplicaSettings{Type: "s3", Bucket: "b"}, config.ReplicaSettings{Type: "s3", Bucket: "b", Path: "sub/a.db"}},
		{config.ReplicaSettings{URL: "nats://user:pw@127.0.0.1:4222/bucket/p"}, config.ReplicaSettings{URL: "nats://user:pw@127.0.0.1:4222/bucket/p/sub/a.db"}},
		{config.ReplicaSettings{Type: "webdav", WebDAVURL: "http://127.0.0.1/dav", Path: "x"}, config.ReplicaSettings{Type: "webdav", WebDAVURL: "http://127.0.0.1/dav", Path: "x/sub/a.db"}},
		{config.ReplicaSettings{URL: "sftp://u@127.0.0.1:22/home/u/b%20k"}, config.ReplicaSettings{URL: "sftp://u@127.0.0.1:22/home/u/b%20k/sub/a.db"}},
	}
	for _, tc := range cases {
		got, err := replicaBelow(&tc.in, filepath.Join("sub", "a.db"))
		if err != nil {
			t.Fatal(err)
		}
		if got.URL != tc.want.URL || got.Path != tc.want.Path || got.Bucket != tc.want.Bucket || got.WebDAVURL != tc.want.WebDAVURL {
			t.Errorf("replicaBelow(%+v) = url %q path %q, want url %q path %q", tc.in, got.URL, got.Path, tc.want.URL, tc.want.Path)
		}
	}
}

// startReplicate runs "replicate -config cfg" in-process; stop cancels it
// (a final sync follows, as on SIGTERM) and returns its exit code.
func startReplicate(t *testing.T, cfg string) (stop func() int, logs *lockedBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs = &lockedBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"replicate", "-config", cfg}, logs, logs) }()
	var once sync.Once
	code := 0
	stop = func() int {
		once.Do(func() { cancel(); code = <-done })
		return code
	}
	t.Cleanup(func() { stop() })
	return stop, logs
}

// waitFor polls cond until it holds or 60 seconds pass; cond's second
// result describes the last state for the failure message.
func waitFor(t *testing.T, what string, logs *lockedBuffer, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (last: %s); replicate output:\n%s", what, state, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitRestored waits until restoring dbPath through the config gives want.
func waitRestored(t *testing.T, cfg, dbPath, want string, logs *lockedBuffer) {
	t.Helper()
	waitFor(t, "replica of "+dbPath, logs, func() (bool, string) {
		got, stderr := restoreDump(t, cfg, dbPath)
		return got == want, fmt.Sprintf("restored %q %s", got, stderr)
	})
}
