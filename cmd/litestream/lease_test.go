package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/superfly/ltx"
)

// Two replicate processes for two different databases (so the meta
// directory flock does not stop the second) pointed at one replica: the
// single-writer lease must keep the second from ever writing to it.

// leaseDB is one side of the test: its own database and config.
type leaseDB struct {
	path, cfg string
}

func newLeaseDB(t *testing.T, dir, name, replicaDir, lease string) leaseDB {
	t.Helper()
	sub := filepath.Join(dir, name)
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(sub, "app.db")
	cfg := filepath.Join(sub, "litestream.yml")
	body := fmt.Sprintf(`dbs:
  - path: %s
    monitor-interval: 5ms
    replica:
      path: %s
      sync-interval: 5ms
      lease: %s
`, path, replicaDir, lease)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return leaseDB{path: path, cfg: cfg}
}

func (d leaseDB) metaLTXDir() string {
	return filepath.Join(filepath.Dir(d.path), ".app.db-litestream", "ltx", "0")
}

// leaseHolder reads the replica's lock.json; "" if there is none.
func leaseHolder(t *testing.T, replicaDir string) (owner string, expires time.Time) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(replicaDir, "lock.json"))
	if os.IsNotExist(err) {
		return "", time.Time{}
	} else if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Owner   string    `json:"owner"`
		Expires time.Time `json:"expires"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("lock.json: %v: %s", err, b)
	}
	return doc.Owner, doc.Expires
}

// waitUntil polls cond (bounded) and fails with the daemons' output.
func waitUntil(t *testing.T, what string, limit time.Duration, cond func() bool, ds ...*daemon) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			var out strings.Builder
			for i, d := range ds {
				fmt.Fprintf(&out, "--- process %d:\n%s\n", i+1, d.out)
			}
			t.Fatalf("%s: not within %s\n%s", what, limit, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkReplicaFrom checks that every level-0 file of the replica up to
// maxTXID is byte for byte the file of the same name in metaDir, and
// that level 0 is contiguous from TXID 1.
func checkReplicaFrom(t *testing.T, replicaDir, metaDir string, maxTXID ltx.TXID) {
	t.Helper()
	for i, name := range levelZeroNames(t, replicaDir) {
		if want := ltx.FormatFilename(ltx.TXID(i+1), ltx.TXID(i+1)); name != want {
			t.Fatalf("replica level 0 not contiguous: file %d is %s, want %s", i, name, want)
		}
		if ltx.TXID(i+1) > maxTXID {
			break
		}
		got, err := os.ReadFile(filepath.Join(replicaDir, "ltx", "0", name))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(metaDir, name))
		if err != nil {
			t.Fatalf("replica file %s has no counterpart written by the first process: %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("replica file %s differs from the first process's file", name)
		}
	}
}

func insertRows(t *testing.T, path string, n int) {
	t.Helper()
	app := openApp(t, path)
	mustExec(t, app, "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
	for i := 0; i < n; i++ {
		mustExec(t, app, "INSERT INTO t (v) VALUES (?)", filepath.Base(filepath.Dir(path)))
	}
}

// TestLeaseSecondReplicatorWaitsAndTakesOver: with lease.wait (the
// default) the second process waits without writing, and takes over
// once the first is killed and its lease has expired; the replica then
// continues after the first process's files with the second database.
func TestLeaseSecondReplicatorWaitsAndTakesOver(t *testing.T) {
	dir := t.TempDir()
	replicaDir := filepath.Join(dir, "replica")
	a := newLeaseDB(t, dir, "a", replicaDir, "{ttl: 2s}")
	b := newLeaseDB(t, dir, "b", replicaDir, "{ttl: 2s, wait: true}")
	insertRows(t, a.path, 3)
	insertRows(t, b.path, 5)

	pa := startDaemon(t, a.cfg)
	waitUntil(t, "first process takes the lease and uploads", 20*time.Second, func() bool {
		owner, _ := leaseHolder(t, replicaDir)
		return strings.Contains(owner, a.path) && len(levelZeroNames(t, replicaDir)) > 0
	}, pa)

	pb := startDaemon(t, b.cfg)
	pb.waitLog(t, `(is held by [^\n]*)`)
	// Both keep changing their databases; only the first may write. The
	// second numbers its local files after the replica as it found it,
	// so they clash with the first's newer files.
	waitUntil(t, "second process writes its own level-0 files locally", 20*time.Second, func() bool {
		return fileCount(b.metaLTXDir()) > 0
	}, pa, pb)
	insertRows(t, b.path, 2)
	before := len(levelZeroNames(t, replicaDir))
	insertRows(t, a.path, 2)
	waitUntil(t, "first process uploads its new rows", 20*time.Second, func() bool {
		n := len(levelZeroNames(t, replicaDir))
		return n > before && n == fileCount(a.metaLTXDir())
	}, pa, pb)
	checkReplicaFrom(t, replicaDir, a.metaLTXDir(), 1<<62)
	if owner, _ := leaseHolder(t, replicaDir); !strings.Contains(owner, a.path) {
		t.Fatalf("lease holder %q while the first process runs", owner)
	}
	firstMax := ltx.TXID(len(levelZeroNames(t, replicaDir)))

	// kill -9 the holder: the second takes over only after expiry.
	if err := pa.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-pa.done
	_, expires := leaseHolder(t, replicaDir)
	var bExpires time.Time
	waitUntil(t, "second process takes the expired lease over", 30*time.Second, func() bool {
		owner, exp := leaseHolder(t, replicaDir)
		bExpires = exp
		return strings.Contains(owner, b.path)
	}, pb)
	// Its first lease ran from its acquisition for the 2s TTL (observed
	// within milliseconds, long before the first renewal at TTL/3).
	if acquired := bExpires.Add(-2 * time.Second); acquired.Before(expires) {
		t.Fatalf("lease taken over at about %s, before it expired at %s", acquired, expires)
	}
	checkReplicaFrom(t, replicaDir, a.metaLTXDir(), firstMax)

	// The replica now continues with the second database.
	insertRows(t, b.path, 1)
	want := queryInt(t, b.path, "SELECT COUNT(*) FROM t")
	out := filepath.Join(dir, "restored.db")
	waitUntil(t, "replica restores to the second database", 30*time.Second, func() bool {
		os.Remove(out)
		code, _, _ := runCLI(t, "restore", "-o", out, "file://"+replicaDir)
		return code == 0 && queryInt(t, out, "SELECT COUNT(*) FROM t") == want &&
			queryInt(t, out, "SELECT COUNT(*) FROM t WHERE v = 'b'") == want
	}, pb)
	integrityOK(t, out)
	names := levelZeroNames(t, replicaDir)
	for i, name := range names {
		if want := ltx.FormatFilename(ltx.TXID(i+1), ltx.TXID(i+1)); name != want {
			t.Fatalf("level 0 not contiguous after takeover: file %d is %s, want %s", i, name, want)
		}
	}
	if code, stdout, stderr := runCLI(t, "verify", "file://"+replicaDir); code != 0 {
		t.Fatalf("verify after takeover: %d\n%s%s", code, stdout, stderr)
	}

	// A clean stop releases the lease.
	pb.stop(t)
	if owner, _ := leaseHolder(t, replicaDir); owner != "" {
		t.Fatalf("lease still held by %q after a clean stop", owner)
	}
}

// TestLeaseNoWaitExits: with lease.wait false the second process exits
// with an error naming the holder, having written nothing.
func TestLeaseNoWaitExits(t *testing.T) {
	dir := t.TempDir()
	replicaDir := filepath.Join(dir, "replica")
	a := newLeaseDB(t, dir, "a", replicaDir, "{ttl: 2s}")
	b := newLeaseDB(t, dir, "b", replicaDir, "{ttl: 2s, wait: false}")
	insertRows(t, a.path, 3)
	insertRows(t, b.path, 5)

	pa := startDaemon(t, a.cfg)
	waitUntil(t, "first process takes the lease and uploads", 20*time.Second, func() bool {
		owner, _ := leaseHolder(t, replicaDir)
		return strings.Contains(owner, a.path) && len(levelZeroNames(t, replicaDir)) > 0
	}, pa)

	pb := startDaemon(t, b.cfg)
	select {
	case err := <-pb.done:
		if err == nil {
			t.Fatalf("second process exited 0; output:\n%s", pb.out)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("second process still running after 30s; output:\n%s", pb.out)
	}
	out := pb.out.String()
	if !strings.Contains(out, "is held by") || !strings.Contains(out, a.path) || !strings.Contains(out, "lease wait is off") {
		t.Fatalf("second process's error does not name the holder:\n%s", out)
	}
	insertRows(t, a.path, 1)
	waitUntil(t, "first process keeps uploading", 20*time.Second, func() bool {
		return len(levelZeroNames(t, replicaDir)) >= fileCount(a.metaLTXDir())
	}, pa)
	checkReplicaFrom(t, replicaDir, a.metaLTXDir(), 1<<62)
	pa.stop(t)
}

func fileCount(dir string) int {
	entries, _ := os.ReadDir(dir)
	n := 0
	for _, e := range entries {
		if _, _, err := ltx.ParseFilename(e.Name()); err == nil {
			n++
		}
	}
	return n
}

// TestLeaseRestartAfterKillResumesAtOnce: a replicator restarted after
// kill -9 (same database, same meta directory) resumes its predecessor's
// lease at once instead of waiting for it to expire.
func TestLeaseRestartAfterKillResumesAtOnce(t *testing.T) {
	dir := t.TempDir()
	replicaDir := filepath.Join(dir, "replica")
	a := newLeaseDB(t, dir, "a", replicaDir, "{ttl: 1m}")
	insertRows(t, a.path, 3)
	p1 := startDaemon(t, a.cfg)
	waitUntil(t, "first run uploads", 20*time.Second, func() bool {
		return len(levelZeroNames(t, replicaDir)) > 0 && len(levelZeroNames(t, replicaDir)) == fileCount(a.metaLTXDir())
	}, p1)
	if err := p1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p1.done
	_, expires := leaseHolder(t, replicaDir)

	insertRows(t, a.path, 2)
	p2 := startDaemon(t, a.cfg)
	before := len(levelZeroNames(t, replicaDir))
	waitUntil(t, "restarted run uploads", 20*time.Second, func() bool {
		n := len(levelZeroNames(t, replicaDir))
		return n > before && n == fileCount(a.metaLTXDir())
	}, p2)
	if !time.Now().Before(expires) {
		t.Fatalf("restart waited for its own lease to expire (%s)", expires)
	}
	checkReplicaFrom(t, replicaDir, a.metaLTXDir(), 1<<62)
	p2.stop(t)
}
