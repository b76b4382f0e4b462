package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// buildBinaries compiles the litestream command and the test application
// without the race detector: the large-database test moves over a
// gigabyte, which instrumented code would take minutes to do.
func buildBinaries(t *testing.T) (litestream, testapp string) {
	t.Helper()
	dir := t.TempDir()
	litestream, testapp = filepath.Join(dir, "litestream"), filepath.Join(dir, "testapp")
	for pkg, out := range map[string]string{".": litestream, "../../internal/testapp": testapp} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	return litestream, testapp
}

func runProcess(t *testing.T, name string, args ...string) {
	t.Helper()
	if b, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", filepath.Base(name), args, err, b)
	}
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestLargeDatabaseLockPage replicates a database larger than 1 GiB at a
// 4096-byte page size — so it has a lock page, page 262145 — first as a
// full image, then with WAL frames for pages past the lock page, and
// checks the restore is byte-identical to the checkpointed source.
func TestLargeDatabaseLockPage(t *testing.T) {
	if testing.Short() {
		t.Skip("moves over 1 GiB; run without -short (scripts/test does)")
	}
	litestream, testapp := buildBinaries(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "big.db")
	replica := "file://" + filepath.Join(dir, "replica")

	runProcess(t, testapp, "bigdb", "-db", dbPath, "-mb", "1100")
	if fi, err := os.Stat(dbPath); err != nil || fi.Size() <= 1<<30 {
		t.Fatalf("database is not over 1 GiB: %v %v", fi.Size(), err)
	}
	runProcess(t, litestream, "replicate", "-once", dbPath, replica)
	runProcess(t, testapp, "append", "-db", dbPath, "-rows", "3000") // WAL frames after the lock page
	runProcess(t, litestream, "replicate", "-once", dbPath, replica)
	runProcess(t, testapp, "checkpoint", "-db", dbPath)

	out := filepath.Join(dir, "restored.db")
	runProcess(t, litestream, "restore", "-integrity-check", "full", "-o", out, replica)
	if got, want := sha256File(t, out), sha256File(t, dbPath); got != want {
		t.Fatalf("restored database differs from the source")
	}
	if n := queryInt(t, out, "SELECT COUNT(*) FROM data"); n != 5000 {
		t.Fatalf("restored %d data rows, want 5000", n)
	}
}

// TestLargeWAL replicates a database whose WAL alone is over 1 GiB (no
// checkpoint ran) at 65536-byte pages, so the first sync scans a WAL with
// offsets past 2^30 and writes a full image from it, and the database has
// a lock page (page 16385). Set LITESTREAM_LARGE_ALL=1 to also run the
// >1 GiB database test at every page size from 8192 to 65536.
func TestLargeWAL(t *testing.T) {
	if testing.Short() {
		t.Skip("moves over 1 GiB; run without -short (scripts/test does)")
	}
	litestream, testapp := buildBinaries(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "big.db")
	replica := "file://" + filepath.Join(dir, "replica")
	app := exec.Command(testapp, "bigdb", "-db", dbPath, "-mb", "1100", "-page-size", "65536", "-keep-wal")
	stdin, err := app.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := app.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	defer app.Process.Kill()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("testapp: %q %v", line, err)
	}
	if fi, err := os.Stat(dbPath + "-wal"); err != nil || fi.Size() <= 1<<30 {
		t.Fatalf("WAL is not over 1 GiB: %v", err)
	}
	runProcess(t, litestream, "replicate", "-once", dbPath, replica)
	stdin.Close() // the application exits; its close checkpoints the WAL
	if err := app.Wait(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "restored.db")
	runProcess(t, litestream, "restore", "-integrity-check", "full", "-o", out, replica)
	if got, want := sha256File(t, out), sha256File(t, dbPath); got != want {
		t.Fatal("restored database differs from the source")
	}
}

func TestLargeDatabaseEveryPageSize(t *testing.T) {
	if testing.Short() || os.Getenv("LITESTREAM_LARGE_ALL") == "" {
		t.Skip("long form: set LITESTREAM_LARGE_ALL=1")
	}
	litestream, testapp := buildBinaries(t)
	for _, ps := range []string{"8192", "16384", "32768", "65536"} {
		t.Run(ps, func(t *testing.T) {
			dir := t.TempDir()
			dbPath := filepath.Join(dir, "big.db")
			replica := "file://" + filepath.Join(dir, "replica")
			runProcess(t, testapp, "bigdb", "-db", dbPath, "-mb", "1100", "-page-size", ps)
			runProcess(t, litestream, "replicate", "-once", dbPath, replica)
			runProcess(t, testapp, "append", "-db", dbPath, "-rows", "3000")
			runProcess(t, litestream, "replicate", "-once", dbPath, replica)
			runProcess(t, testapp, "checkpoint", "-db", dbPath)
			out := filepath.Join(dir, "restored.db")
			runProcess(t, litestream, "restore", "-integrity-check", "full", "-o", out, replica)
			if got, want := sha256File(t, out), sha256File(t, dbPath); got != want {
				t.Fatalf("page size %s: restored database differs from the source", ps)
			}
		})
	}
}
