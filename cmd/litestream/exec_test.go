package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestReplicateExec runs the application as -exec child: when it exits,
// replicate makes a final sync and exits too, and everything the child
// wrote is in the replica.
func TestReplicateExec(t *testing.T) {
	_, testapp := buildBinaries(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	replicaDir := filepath.Join(dir, "replica")
	cmd := exec.Command(os.Args[0], "replicate", "-exec", testapp+" append -db "+dbPath+" -rows 777", dbPath, "file://"+replicaDir)
	cmd.Env = append(os.Environ(), "LITESTREAM_TEST_AS_MAIN=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("replicate -exec: %v\n%s", err, out.String())
	}
	restored := filepath.Join(dir, "restored.db")
	if code, _, stderr := runCLI(t, "restore", "-o", restored, "file://"+replicaDir); code != 0 {
		t.Fatalf("restore: %s", stderr)
	}
	if n := queryInt(t, restored, "SELECT COUNT(*) FROM data"); n != 777 {
		t.Fatalf("replica holds %d rows, the child wrote 777", n)
	}
}

// TestReplicateExecForwardsSignals: SIGTERM to replicate reaches the
// child; replicate waits for it, syncs, and exits cleanly.
func TestReplicateExecForwardsSignals(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	marker := filepath.Join(dir, "child-got-term")
	app := openApp(t, dbPath)
	mustExec(t, app, "CREATE TABLE t (x)")
	child := `sh -c 'trap "touch ` + marker + `; exit 0" TERM; while :; do sleep 0.05; done'`
	cmd := exec.Command(os.Args[0], "replicate", "-exec", child, dbPath, "file://"+filepath.Join(dir, "replica"))
	cmd.Env = append(os.Environ(), "LITESTREAM_TEST_AS_MAIN=1")
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitForNewFile(t, filepath.Join(dir, "replica"), 0, out) // replication is running
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("replicate exited with %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("replicate did not exit after SIGTERM\n%s", out.String())
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("the child did not receive SIGTERM: %v", err)
	}
}
