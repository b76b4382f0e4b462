package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResetCommand(t *testing.T) {
	f := newInspectFixture(t)
	metaA := filepath.Join(f.dir, "meta", "a.db-litestream") // from the dir: entry's meta-dir
	ltxFiles := func() int {
		files, _ := listFiles(filepath.Join(metaA, "ltx"))
		return len(files)
	}
	n := ltxFiles()
	if n == 0 {
		t.Fatal("fixture has no local LTX files")
	}

	// Dry run lists the files and removes nothing.
	code, stdout, stderr := runCLI(t, "reset", "-dry-run", "-config", f.cfg, f.dirA)
	if code != 0 || !strings.Contains(stdout, fmt.Sprintf("Would remove %d files", n)) || !strings.Contains(stdout, "0000000000000001-0000000000000001.ltx") {
		t.Fatalf("dry run: %d %s %s", code, stdout, stderr)
	}
	if ltxFiles() != n {
		t.Fatal("dry run removed files")
	}

	// Reset removes the local LTX files; status then says not initialized.
	replicaTXID := str(statusRows(t, "-config", f.cfg, f.dirA)[f.dirA].ReplicaTXID)
	if code, stdout, stderr := runCLI(t, "reset", "-config", f.cfg, f.dirA); code != 0 || !strings.Contains(stdout, "Reset "+f.dirA) {
		t.Fatalf("reset: %d %s %s", code, stdout, stderr)
	}
	if ltxFiles() != 0 {
		t.Fatal("reset left local LTX files")
	}
	if r := statusRows(t, "-config", f.cfg, f.dirA)[f.dirA]; r.Status != "not initialized" {
		t.Fatalf("status after reset: %+v", r)
	}
	if code, stdout, _ := runCLI(t, "reset", "-config", f.cfg, f.dirA); code != 0 || !strings.Contains(stdout, "No local state") {
		t.Fatalf("second reset: %d %s", code, stdout)
	}

	// The next sync continues the replica's numbering with a full image,
	// and the replica still restores to the database.
	app := openApp(t, f.dirA)
	mustExec(t, app, "INSERT INTO t (v) VALUES ('after reset')")
	f.replicate(t)
	var rows []ltxRow
	runJSON(t, &rows, "ltx", "-json", "-config", f.cfg, f.dirA)
	if last := rows[len(rows)-1]; last.MinTXID <= replicaTXID {
		t.Fatalf("after reset the replica's last file is %+v, want one after %s", last, replicaTXID)
	}
	if got, stderr := restoreDump(t, f.cfg, f.dirA); got != dumpTable(t, f.dirA) {
		t.Fatalf("restore after reset: %q, want %q (%s)", got, dumpTable(t, f.dirA), stderr)
	}
}

// TestResetWithoutConfig uses the default meta directory when there is
// no config file, as upstream does.
func TestResetWithoutConfig(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	createDB(t, db, 1)
	if code, _, stderr := runCLI(t, "replicate", "-once", db, "file://"+filepath.Join(dir, "replica")); code != 0 {
		t.Fatal(stderr)
	}
	t.Setenv("LITESTREAM_CONFIG", filepath.Join(dir, "absent.yml"))
	if code, stdout, stderr := runCLI(t, "reset", db); code != 0 || !strings.Contains(stdout, filepath.Join(dir, ".app.db-litestream", "ltx")) {
		t.Fatalf("reset: %d %s %s", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, ".app.db-litestream", "ltx")); !os.IsNotExist(err) {
		t.Fatalf("ltx directory still there: %v", err)
	}
}

func TestResetBadInput(t *testing.T) {
	f := newInspectFixture(t)
	expectError(t, []string{"does not exist"}, "reset", "-config", f.cfg, filepath.Join(f.dir, "nope.db"))
	expectError(t, []string{"is a directory"}, "reset", "-config", f.cfg, f.dir)
	other := filepath.Join(f.dir, "other.db")
	createDB(t, other, 1)
	expectError(t, []string{"not in the config file"}, "reset", "-config", f.cfg, other)
	expectError(t, []string{"database path required"}, "reset", "-config", f.cfg)
	expectError(t, []string{"must come before"}, "reset", f.single, "-dry-run")
}
