package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// ptyColumns is the width of the test terminal.
const ptyColumns = 100

// runOnPTY runs a command in-process with stdout and stderr on a fresh
// pseudo-terminal and returns its exit code and everything it drew.
func runOnPTY(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal available: %v", err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: ptyColumns}); err != nil {
		t.Fatal(err)
	}
	read := make(chan string)
	go func() {
		b, _ := io.ReadAll(ptmx) // ends with EIO once the tty side is closed
		read <- string(b)
	}()
	code := run(context.Background(), args, tty, tty)
	tty.Close()
	select {
	case out := <-read:
		return code, out
	case <-time.After(30 * time.Second):
		t.Fatal("reading the pseudo-terminal timed out")
		return 0, ""
	}
}

// screenLines turns terminal output into the lines left on the screen,
// each as its last redraw.
func screenLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		parts := strings.Split(strings.TrimRight(l, "\r"), "\r")
		if last := strings.TrimSuffix(parts[len(parts)-1], "\x1b[K"); last != "" {
			lines = append(lines, last)
		}
	}
	return lines
}

// barLine returns the screen line of the bar labelled label, and how many
// times it was drawn.
func barLine(t *testing.T, out, label string) (string, int) {
	t.Helper()
	draws := strings.Count(out, "\r"+label+" [")
	for _, l := range screenLines(out) {
		if strings.HasPrefix(l, label+" [") {
			return l, draws
		}
	}
	t.Fatalf("no %q bar in the output:\n%s", label, out)
	return "", 0
}

// bigDB creates a database of incompressible rows, big enough for its
// full image, upload and restore to report progress several times.
func bigDB(t *testing.T, dir string, rows int) string {
	t.Helper()
	dbPath := filepath.Join(dir, "app.db")
	app := openApp(t, dbPath)
	mustExec(t, app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	mustExec(t, app, fmt.Sprintf("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < %d) INSERT INTO t (v) SELECT randomblob(3000) FROM n", rows))
	return dbPath
}

// TestProgressOnTerminal: on a terminal, replicate -once draws a bar for
// the full image and its upload, -force-snapshot one for the snapshot,
// and restore one for the restore, each finishing at 100% with bytes and
// (where known) pages; log lines stay on lines of their own.
func TestProgressOnTerminal(t *testing.T) {
	dir := t.TempDir()
	const rows = 5000 // about 16 MiB
	dbPath := bigDB(t, dir, rows)
	replicaURL := "file://" + filepath.Join(dir, "replica")
	cfg := writeConfig(t, dir, fmt.Sprintf("dbs:\n  - path: %s\n    replica:\n      url: %s\n", dbPath, replicaURL))

	// The first run: a full image, uploaded (as the replica's snapshot).
	code, out := runOnPTY(t, "replicate", "-once", "-config", cfg)
	if code != 0 {
		t.Fatalf("replicate -once: exit %d\n%s", code, out)
	}
	t.Logf("terminal:\n%s", strings.Join(screenLines(out), "\n"))
	pages := queryInt(t, dbPath, "PRAGMA page_count")
	image, n := barLine(t, out, "app.db full image")
	t.Logf("full image, %d draws: %s", n, image)
	for _, want := range []string{"100%", fmt.Sprintf("%d/%d pages", pages, pages), " MiB / ", "in "} {
		if !strings.Contains(image, want) {
			t.Errorf("full image line %q lacks %q", image, want)
		}
	}
	checkScreen(t, out)

	// The second run: new rows, uploaded, then a snapshot of everything.
	mustExec(t, openApp(t, dbPath), "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 1000) INSERT INTO t (v) SELECT randomblob(3000) FROM n")
	code, second := runOnPTY(t, "replicate", "-once", "-force-snapshot", "-config", cfg)
	if code != 0 {
		t.Fatalf("replicate -once -force-snapshot: exit %d\n%s", code, second)
	}
	t.Logf("terminal:\n%s", strings.Join(screenLines(second), "\n"))
	for _, run := range []struct{ out, label string }{{out, "app.db upload"}, {second, "app.db upload"}, {second, "app.db snapshot"}} {
		line, n := barLine(t, run.out, run.label)
		t.Logf("%s, %d draws: %s", run.label, n, line)
		if !strings.Contains(line, "100%") || !strings.Contains(line, " MiB / ") {
			t.Errorf("%s line %q", run.label, line)
		}
		// A snapshot writes every page of the database.
		if pages := queryInt(t, dbPath, "PRAGMA page_count"); run.label == "app.db snapshot" && !strings.Contains(line, fmt.Sprintf("%d/%d pages", pages, pages)) {
			t.Errorf("snapshot line %q lacks %d/%d pages", line, pages, pages)
		}
		if n < 2 {
			t.Errorf("%s drawn %d times; want its start and its end", run.label, n)
		}
	}
	checkScreen(t, second)
	pages = queryInt(t, dbPath, "PRAGMA page_count")

	restored := filepath.Join(dir, "out.db")
	code, out = runOnPTY(t, "restore", "-o", restored, replicaURL)
	if code != 0 {
		t.Fatalf("restore: exit %d\n%s", code, out)
	}
	line, n := barLine(t, out, "restore")
	t.Logf("restore, %d draws: %s", n, line)
	for _, want := range []string{"100%", fmt.Sprintf("%d/%d pages", pages, pages), " MiB / ", "in "} {
		if !strings.Contains(line, want) {
			t.Errorf("restore line %q lacks %q", line, want)
		}
	}
	if got := queryInt(t, restored, "SELECT COUNT(*) FROM t"); got != rows+1000 {
		t.Fatalf("restored %d rows, want %d", got, rows+1000)
	}
}

// checkScreen: bars fit the terminal, and every log line has a line of
// its own.
func checkScreen(t *testing.T, out string) {
	t.Helper()
	var sawLog bool
	for _, l := range screenLines(out) {
		if strings.Contains(l, " [") && !strings.Contains(l, "msg=") && len(l) >= ptyColumns {
			t.Errorf("bar wider than the terminal: %q", l)
		}
		if strings.Contains(l, "msg=") {
			sawLog = true
			if !strings.HasPrefix(l, "time=") || strings.Contains(l, " [=") {
				t.Errorf("log line shares a line with a bar: %q", l)
			}
		}
	}
	if !sawLog {
		t.Errorf("no log lines in the output:\n%s", out)
	}
}

// TestProgressAbsent: no bar when the output is a pipe or a buffer, with
// JSON logging on a terminal, or with restore -json on a terminal.
func TestProgressAbsent(t *testing.T) {
	dir := t.TempDir()
	dbPath := bigDB(t, dir, 1000)
	replicaURL := "file://" + filepath.Join(dir, "replica")
	noBar := func(what, out string) {
		t.Helper()
		if strings.Contains(out, "\x1b[K") || strings.Contains(out, " [=") || strings.Contains(out, "ETA") {
			t.Errorf("%s drew a progress bar:\n%q", what, out)
		}
	}

	// A pipe.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); read <- b }()
	code := run(context.Background(), []string{"replicate", "-once", "-force-snapshot", dbPath, replicaURL}, w, w)
	w.Close()
	piped := string(<-read)
	r.Close()
	if code != 0 {
		t.Fatalf("replicate -once to a pipe: exit %d\n%s", code, piped)
	}
	noBar("replicate -once to a pipe", piped)
	if !strings.Contains(piped, "msg=litestream") {
		t.Errorf("no log in the piped output:\n%s", piped)
	}

	// JSON logging on a terminal: every line is a JSON log record.
	mustExec(t, openApp(t, dbPath), "INSERT INTO t (v) VALUES (randomblob(3000))")
	cfg := writeConfig(t, dir, fmt.Sprintf("logging:\n  type: json\ndbs:\n  - path: %s\n    replica:\n      url: %s\n", dbPath, replicaURL))
	code, out := runOnPTY(t, "replicate", "-once", "-force-snapshot", "-config", cfg)
	if code != 0 {
		t.Fatalf("replicate -once with JSON logging: exit %d\n%s", code, out)
	}
	noBar("replicate -once with JSON logging", out)
	for _, l := range screenLines(out) {
		if !json.Valid([]byte(l)) {
			t.Errorf("not a JSON log line: %q", l)
		}
	}

	// restore -json on a terminal, and restore to a buffer.
	code, out = runOnPTY(t, "restore", "-json", "-o", filepath.Join(dir, "a.db"), replicaURL)
	if code != 0 || !strings.Contains(out, `"txid"`) {
		t.Fatalf("restore -json: exit %d\n%s", code, out)
	}
	noBar("restore -json", out)
	code, stdout, stderr := runCLI(t, "restore", "-o", filepath.Join(dir, "b.db"), replicaURL)
	if code != 0 {
		t.Fatalf("restore: exit %d\n%s", code, stderr)
	}
	noBar("restore to a buffer", stdout+stderr)
	if got := queryInt(t, filepath.Join(dir, "b.db"), "SELECT COUNT(*) FROM t"); got != 1001 {
		t.Fatalf("restored %d rows, want 1001", got)
	}
}
