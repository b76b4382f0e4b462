package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/config"
	"github.com/sqlitebackup/litestream/ltxfile"
)

// Two replicate processes for two different databases (so the meta
// directory flock does not stop the second) pointed at one replica: the
// single-writer lease must keep the second from ever writing to it.

// leaseReplica is the shared replica of a test, on one backend.
type leaseReplica struct {
	url    string
	client litestream.ReplicaClient
	leaser litestream.Leaser
}

// leaseReplicas returns a fresh file replica and, when their servers are
// configured (testinfra variables), a fresh prefix on WebDAV, MinIO and
// versitygw and a fresh NATS bucket.
func leaseReplicas(t *testing.T) map[string]func(t *testing.T) leaseReplica {
	m := map[string]func(t *testing.T) leaseReplica{
		"file": func(t *testing.T) leaseReplica {
			return newLeaseReplica(t, "file://"+filepath.Join(t.TempDir(), "replica"))
		},
	}
	if u := os.Getenv("WEBDAV_URL"); u != "" && os.Getenv("WEBDAV_USER") != "" {
		m["webdav"] = func(t *testing.T) leaseReplica {
			host := strings.TrimPrefix(u, "http://")
			url := fmt.Sprintf("webdav://%s:%s@%s/leasetest/%d", os.Getenv("WEBDAV_USER"), os.Getenv("WEBDAV_PASSWORD"), host, time.Now().UnixNano())
			r := newLeaseReplica(t, url)
			t.Cleanup(func() { _ = r.client.DeleteAll(context.Background()) })
			return r
		}
	}
	if u := os.Getenv("NATS_URL"); u != "" && os.Getenv("NATS_USER") != "" {
		m["nats"] = func(t *testing.T) leaseReplica {
			bucket := natsBucket(t)
			host := strings.TrimPrefix(u, "nats://")
			return newLeaseReplica(t, fmt.Sprintf("nats://%s:%s@%s/%s/app", os.Getenv("NATS_USER"), os.Getenv("NATS_PASSWORD"), host, bucket))
		}
	}
	if os.Getenv("S3_ACCESS_KEY_ID") == "" || os.Getenv("S3_BUCKET") == "" {
		t.Log("S3 servers not configured (S3_ENDPOINT / VERSITYGW_ENDPOINT, S3_ACCESS_KEY_ID, S3_BUCKET): no S3 replicas")
		return m
	}
	servers := map[string]string{"minio": os.Getenv("MINIO_ENDPOINT"), "versitygw": os.Getenv("VERSITYGW_ENDPOINT")}
	if servers["minio"] == "" && os.Getenv("S3_SERVER") != "versitygw" {
		servers["minio"] = os.Getenv("S3_ENDPOINT")
	}
	for name, endpoint := range servers {
		if endpoint == "" {
			continue
		}
		m[name] = func(t *testing.T) leaseReplica {
			// Children inherit the credentials from the environment.
			t.Setenv("LITESTREAM_ACCESS_KEY_ID", os.Getenv("S3_ACCESS_KEY_ID"))
			t.Setenv("LITESTREAM_SECRET_ACCESS_KEY", os.Getenv("S3_SECRET_ACCESS_KEY"))
			prefix := fmt.Sprintf("leasetest/%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano())
			r := newLeaseReplica(t, fmt.Sprintf("s3://%s/%s?endpoint=%s&forcePathStyle=true", os.Getenv("S3_BUCKET"), prefix, endpoint))
			t.Cleanup(func() { _ = r.client.DeleteAll(context.Background()) })
			return r
		}
	}
	return m
}

// natsBucket creates an object-store bucket for one test (the client
// never creates buckets) and deletes it when the test ends.
func natsBucket(t *testing.T) string {
	t.Helper()
	nc, err := natsgo.Connect(os.Getenv("NATS_URL"), natsgo.UserInfo(os.Getenv("NATS_USER"), os.Getenv("NATS_PASSWORD")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	bucket := fmt.Sprintf("leasetest-%d", time.Now().UnixNano())
	if _, err := js.CreateObjectStore(t.Context(), jetstream.ObjectStoreConfig{Bucket: bucket}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = js.DeleteObjectStore(context.Background(), bucket) })
	return bucket
}

func newLeaseReplica(t *testing.T, url string) leaseReplica {
	t.Helper()
	c, err := config.NewReplicaClient(&config.ReplicaSettings{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	l, ok := c.(litestream.Leaser)
	if !ok {
		t.Fatalf("%s: client %T takes no lease", url, c)
	}
	return leaseReplica{url: url, client: c, leaser: l}
}

// holder says who holds the lease, without changing it: a renewal of a
// lease nobody has is always refused with the current holder.
func (r leaseReplica) holder(t *testing.T) (owner string, expires time.Time) {
	t.Helper()
	_, err := r.leaser.RenewLease(context.Background(), &litestream.Lease{Token: `"never-a-token"`}, time.Minute)
	var held *litestream.LeaseHeldError
	if !errors.As(err, &held) {
		t.Fatalf("probe of the lease: %v", err)
	}
	return held.Owner, held.Expires
}

// levelZero lists the replica's level-0 history: its first file, which an
// empty replica keeps in the snapshot level only, then level 0.
func (r leaseReplica) levelZero(t *testing.T) []*ltx.FileInfo {
	t.Helper()
	snaps, err := litestream.LTXFileInfos(context.Background(), r.client, litestream.SnapshotLevel, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	var infos []*ltx.FileInfo
	if len(snaps) > 0 && snaps[0].MinTXID == 1 && snaps[0].MaxTXID == 1 {
		infos = append(infos, snaps[0])
	}
	l0, err := litestream.LTXFileInfos(context.Background(), r.client, 0, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	return append(infos, l0...)
}

// historyMax is the last TXID of the replica's level-0 history.
func (r leaseReplica) historyMax(t *testing.T) ltx.TXID {
	t.Helper()
	var m ltx.TXID
	for _, info := range r.levelZero(t) {
		m = max(m, info.MaxTXID)
	}
	return m
}

// checkFrom checks that the level-0 history is contiguous from TXID 1 and
// that every file up to maxTXID is byte for byte what the first process
// wrote in metaDir: the file of the same name or, for a file an upload
// pass merged from several local files, the merge of those files.
func (r leaseReplica) checkFrom(t *testing.T, metaDir string, maxTXID ltx.TXID) {
	t.Helper()
	next := ltx.TXID(1)
	for i, info := range r.levelZero(t) {
		name := ltx.FormatFilename(info.MinTXID, info.MaxTXID)
		if info.MinTXID != next {
			t.Fatalf("replica level 0 not contiguous: file %d is %s, want one starting at %s", i, name, next)
		}
		next = info.MaxTXID + 1
		if info.MaxTXID > maxTXID {
			continue
		}
		rc, err := r.client.OpenLTXFile(context.Background(), info.Level, info.MinTXID, info.MaxTXID, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		want, err := localCounterpart(metaDir, info)
		if err != nil {
			t.Fatalf("replica file %s has no counterpart written by the first process: %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("replica file %s differs from the first process's file", name)
		}
	}
}

// localCounterpart returns the bytes the replica's level-0 file info
// should hold according to metaDir: the local file of the same name, or
// the merge of the local one-TXID files it covers.
func localCounterpart(metaDir string, info *ltx.FileInfo) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(metaDir, ltx.FormatFilename(info.MinTXID, info.MaxTXID)))
	if err == nil || !errors.Is(err, os.ErrNotExist) || info.MinTXID == info.MaxTXID {
		return b, err
	}
	var inputs []ltxfile.Input
	for txid := info.MinTXID; txid <= info.MaxTXID; txid++ {
		p := filepath.Join(metaDir, ltx.FormatFilename(txid, txid))
		inputs = append(inputs, ltxfile.Input{Name: p, Open: func() (io.ReadCloser, error) { return os.Open(p) }})
	}
	var buf bytes.Buffer
	if _, err := ltxfile.Merge(&buf, inputs); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// localMaxTXID is the last TXID of the level-0 files in dir.
func localMaxTXID(dir string) ltx.TXID {
	entries, _ := os.ReadDir(dir)
	var m ltx.TXID
	for _, e := range entries {
		if _, maxTXID, err := ltx.ParseFilename(e.Name()); err == nil {
			m = max(m, maxTXID)
		}
	}
	return m
}

// leaseDB is one side of the test: its own database and config.
type leaseDB struct {
	path, cfg string
}

func newLeaseDB(t *testing.T, dir, name, replicaURL, lease string) leaseDB {
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
      url: %s
      sync-interval: 5ms
      lease: %s
`, path, replicaURL, lease)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return leaseDB{path: path, cfg: cfg}
}

func (d leaseDB) metaLTXDir() string {
	return filepath.Join(filepath.Dir(d.path), ".app.db-litestream", "ltx", "0")
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

// keepWriting commits a row to the database every 50ms until the
// returned function is called, so its replicator is never idle (an idle
// holder lets its lease lapse, and the other process may then take it).
func keepWriting(t *testing.T, path string) (stop func()) {
	t.Helper()
	app := openApp(t, path)
	mustExec(t, app, "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
	quit, done := make(chan struct{}), make(chan error, 1)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				done <- nil
				return
			case <-tick.C:
			}
			if _, err := app.Exec("INSERT INTO t (v) VALUES (?)", filepath.Base(filepath.Dir(path))); err != nil {
				done <- err
				return
			}
		}
	}()
	return func() {
		close(quit)
		if err := <-done; err != nil {
			t.Fatalf("writer of %s: %v", path, err)
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

// startLeaseHolder sets up two databases sharing r, starts a replicator
// for the first (a), keeps a writing, and waits until a holds the lease
// and has uploaded. b is configured with bLease and not started.
func startLeaseHolder(t *testing.T, r leaseReplica, bLease string) (a, b leaseDB, pa *daemon, stopA func()) {
	t.Helper()
	dir := t.TempDir()
	a = newLeaseDB(t, dir, "a", r.url, "{ttl: 2s}")
	b = newLeaseDB(t, dir, "b", r.url, bLease)
	insertRows(t, a.path, 3)
	insertRows(t, b.path, 5)
	pa = startDaemon(t, a.cfg)
	stopA = keepWriting(t, a.path)
	waitUntil(t, "first process takes the lease and uploads", 20*time.Second, func() bool {
		owner, _ := r.holder(t)
		return strings.Contains(owner, a.path) && len(r.levelZero(t)) > 0
	}, pa)
	return a, b, pa, stopA
}

// TestLeaseSecondReplicatorWaitsAndTakesOver: with lease.wait (the
// default) the second process waits without writing, and takes over
// once the first is killed and its lease has expired; the replica then
// continues after the first process's files with the second database.
func TestLeaseSecondReplicatorWaitsAndTakesOver(t *testing.T) {
	for name, newReplica := range leaseReplicas(t) {
		t.Run(name, func(t *testing.T) { testLeaseTakeover(t, newReplica(t)) })
	}
}

func testLeaseTakeover(t *testing.T, r leaseReplica) {
	a, b, pa, stopA := startLeaseHolder(t, r, "{ttl: 2s, wait: true}")

	pb := startDaemon(t, b.cfg)
	pb.waitLog(t, `(is held by [^\n]*)`)
	// Both keep changing their databases; only the first may write. The
	// second numbers its local files after the replica as it found it,
	// so they clash with the first's newer files.
	waitUntil(t, "second process writes its own level-0 files locally", 20*time.Second, func() bool {
		return fileCount(b.metaLTXDir()) > 0
	}, pa, pb)
	insertRows(t, b.path, 2)
	before := r.historyMax(t)
	waitUntil(t, "first process uploads its new rows", 20*time.Second, func() bool {
		return r.historyMax(t) > before+2
	}, pa, pb)
	r.checkFrom(t, a.metaLTXDir(), 1<<62)
	if owner, _ := r.holder(t); !strings.Contains(owner, a.path) {
		t.Fatalf("lease holder %q while the first process runs", owner)
	}

	// kill -9 the holder: the second takes over only after expiry.
	if err := pa.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-pa.done
	stopA()
	_, expires := r.holder(t)
	firstMax := r.historyMax(t) // all the first process wrote
	var bExpires time.Time
	waitUntil(t, "second process takes the expired lease over", 30*time.Second, func() bool {
		owner, exp := r.holder(t)
		bExpires = exp
		return strings.Contains(owner, b.path)
	}, pb)
	// Its first lease ran from its acquisition for the 2s TTL (observed
	// within milliseconds, long before the first renewal at TTL/3).
	if acquired := bExpires.Add(-2 * time.Second); acquired.Before(expires) {
		t.Fatalf("lease taken over at about %s, before it expired at %s", acquired, expires)
	}
	r.checkFrom(t, a.metaLTXDir(), firstMax)

	// The replica now continues with the second database.
	insertRows(t, b.path, 1)
	want := queryInt(t, b.path, "SELECT COUNT(*) FROM t")
	out := filepath.Join(t.TempDir(), "restored.db")
	waitUntil(t, "replica restores to the second database", 30*time.Second, func() bool {
		os.Remove(out)
		code, _, _ := runCLI(t, "restore", "-o", out, r.url)
		return code == 0 && queryInt(t, out, "SELECT COUNT(*) FROM t") == want &&
			queryInt(t, out, "SELECT COUNT(*) FROM t WHERE v = 'b'") == want
	}, pb)
	integrityOK(t, out)
	r.checkFrom(t, a.metaLTXDir(), firstMax)
	if code, stdout, stderr := runCLI(t, "verify", r.url); code != 0 {
		t.Fatalf("verify after takeover: %d\n%s%s", code, stdout, stderr)
	}

	// A clean stop releases the lease.
	pb.stop(t)
	if owner, exp := r.holder(t); strings.Contains(owner, b.path) || time.Now().Before(exp) {
		t.Fatalf("lease still held by %q until %s after a clean stop", owner, exp)
	}
}

// TestLeaseNoWaitExits: with lease.wait false the second process exits
// with an error naming the holder, having written nothing.
func TestLeaseNoWaitExits(t *testing.T) {
	for name, newReplica := range leaseReplicas(t) {
		t.Run(name, func(t *testing.T) { testLeaseNoWait(t, newReplica(t)) })
	}
}

func testLeaseNoWait(t *testing.T, r leaseReplica) {
	a, b, pa, stopA := startLeaseHolder(t, r, "{ttl: 2s, wait: false}")

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
	before := r.historyMax(t)
	waitUntil(t, "first process keeps uploading", 20*time.Second, func() bool {
		return r.historyMax(t) > before+2
	}, pa)
	stopA()
	pa.stop(t)
	r.checkFrom(t, a.metaLTXDir(), 1<<62)
}

// TestLeaseRestartAfterKillResumesAtOnce: a replicator restarted after
// kill -9 (same database, same meta directory) resumes its predecessor's
// lease at once instead of waiting for it to expire.
func TestLeaseRestartAfterKillResumesAtOnce(t *testing.T) {
	r := newLeaseReplica(t, "file://"+filepath.Join(t.TempDir(), "replica"))
	dir := t.TempDir()
	a := newLeaseDB(t, dir, "a", r.url, "{ttl: 1m}")
	insertRows(t, a.path, 3)
	p1 := startDaemon(t, a.cfg)
	waitUntil(t, "first run uploads", 20*time.Second, func() bool {
		n := r.historyMax(t)
		return n > 0 && n == localMaxTXID(a.metaLTXDir())
	}, p1)
	if err := p1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p1.done
	_, expires := r.holder(t)

	insertRows(t, a.path, 2)
	p2 := startDaemon(t, a.cfg)
	before := r.historyMax(t)
	waitUntil(t, "restarted run uploads", 20*time.Second, func() bool {
		n := r.historyMax(t)
		return n > before && n == localMaxTXID(a.metaLTXDir())
	}, p2)
	if !time.Now().Before(expires) {
		t.Fatalf("restart waited for its own lease to expire (%s)", expires)
	}
	r.checkFrom(t, a.metaLTXDir(), 1<<62)
	p2.stop(t)
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
