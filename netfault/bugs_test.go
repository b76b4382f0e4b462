package netfault_test

import (
	"context"
	"os"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/config"
)

// Defects the network-fault suite found in code this package does not
// own. Each has a test that fails while the defect is there; it is
// skipped (NETFAULT_RUN_BUGS=1 runs it) until the owner fixes the code.
const (
	bugSyncAndWaitWaitsForLoop = "SyncAndWait(ctx) ignores ctx while the replica's own upload loop is in a pass: " +
		"Replica.upload takes syncMu with a plain Lock, and the loop's pass runs under the DB's context, which has no " +
		"deadline, so one request that never gets an answer blocks every SyncAndWait (and `sync -wait -timeout`) " +
		"until the connection dies (TestBugSyncAndWaitDeadlineWhileUploadLoopHangs)"
	bugSFTPHungWrite = "sftp: WriteLTXFile does not return when ctx ends while the connection hangs: " +
		"OpenFile/Write/Chtimes/Rename of pkg/sftp take no context and nothing closes the connection on cancellation, " +
		"so the call lasts until the keepalive gives up (about 60 s) (TestBugSFTPWriteHonoursDeadlineOnHungConnection)"
	bugWebDAVHungWrite = "webdav: WriteLTXFile returns up to Timeout (30 s) after ctx ends when the connection hangs: " +
		"after the failed PUT, removeQuietly deletes the temp file synchronously under a fresh context.Background() " +
		"with the full response timeout (TestBugWebDAVWriteHonoursDeadlineOnHungConnection)"
	bugSFTPTinyReads = "sftp: a restore makes one round trip per small Read: OpenLTXFile returns the bare *sftp.File, " +
		"and the LTX decoder reads a few KiB at a time, so restoring 300 KB over a 50 ms link takes ~350 round trips " +
		"(18 s; S3 and WebDAV: about 1 s) (TestBugSFTPRestoreThroughLatency)"
	bugResumeBudget = "resumable reader: the 5 resumes are per file for its whole life, not per failure streak: a file " +
		"whose connection drops every N bytes fails after 5 drops although every reopen made progress, so a large " +
		"snapshot cannot be restored over a link that drops connections regularly (TestBugResumeBudgetIgnoresProgress)"
)

// skipBug skips a test that shows a known defect unless NETFAULT_RUN_BUGS=1.
func skipBug(t *testing.T, bug string) {
	t.Helper()
	if os.Getenv("NETFAULT_RUN_BUGS") != "1" {
		t.Skip("BUG: " + bug)
	}
}

// blackHole: requests reach the server, answers never come back.
var blackHole = toxic{"timeout", "downstream", toxiproxy.Attributes{"timeout": 0}}

// checkSyncDeadline commits a batch while answers are black-holed and
// checks that a SyncAndWait bounded at 1.5 s returns (with an error) by
// 5 s. With loop, the replica's own upload loop is woken first and left
// hanging in a pass of its own.
func checkSyncDeadline(t *testing.T, b backend, loop bool) {
	b.require(t)
	px := newFaultProxy(t, b.upstream())
	interval := time.Hour
	if loop {
		interval = 10 * time.Millisecond
	}
	h := newHarness(t, b.newClient(t, px.addr), func(db *litestream.DB) { db.Replica.SyncInterval = interval })
	h.commit(baselineRows)
	h.mustSync("baseline")
	clear := px.inject(t, blackHole)
	h.commit(rowsPerBatch)
	if loop {
		if err := h.db.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
		writes := h.client.writesStarted()
		waitUntil(t, 10*time.Second, "the upload loop to start uploading", func() bool { return h.client.writesStarted() > writes })
	}
	type result struct {
		err     error
		elapsed time.Duration
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := h.db.SyncAndWait(ctx)
		done <- result{err, time.Since(start)}
	}()
	select {
	case r := <-done:
		if r.err == nil {
			t.Fatal("SyncAndWait succeeded although no answer can come back")
		}
		if r.elapsed > 5*time.Second {
			t.Fatalf("SyncAndWait bounded at 1.5s returned after %v: %v", r.elapsed.Round(time.Millisecond), r.err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("SyncAndWait bounded at 1.5s has not returned after 10s")
		clear()
		// Unblock it before the cleanups run: closing the DB cancels the
		// upload loop; a hung connection ends by its own timeouts.
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		_ = h.db.Close(ctx)
		select {
		case r := <-done:
			t.Logf("SyncAndWait returned after %v: %v", r.elapsed.Round(time.Millisecond), r.err)
		case <-ctx.Done():
			t.Errorf("SyncAndWait still blocked after 100s")
		}
	}
}

// waitUntil polls cond every 10 ms for at most d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestBugSyncAndWaitDeadlineWhileUploadLoopHangs(t *testing.T) {
	skipBug(t, bugSyncAndWaitWaitsForLoop)
	checkSyncDeadline(t, s3Backend, true)
}

func TestBugSFTPWriteHonoursDeadlineOnHungConnection(t *testing.T) {
	skipBug(t, bugSFTPHungWrite)
	checkSyncDeadline(t, sftpBackend, false)
}

func TestBugWebDAVWriteHonoursDeadlineOnHungConnection(t *testing.T) {
	skipBug(t, bugWebDAVHungWrite)
	checkSyncDeadline(t, webdavBackend, false)
}

// TestBugSFTPRestoreThroughLatency restores ~300 KB in four files through
// a 50 ms link: S3 and WebDAV need about a second; 5 s allows 100 round
// trips.
func TestBugSFTPRestoreThroughLatency(t *testing.T) {
	skipBug(t, bugSFTPTinyReads)
	b := sftpBackend
	b.require(t)
	px := newFaultProxy(t, b.upstream())
	h := newHarness(t, b.newClient(t, px.addr), func(db *litestream.DB) { db.Replica.SyncInterval = time.Hour })
	h.commit(baselineRows)
	h.mustSync("baseline")
	for i := 0; i < batches; i++ {
		h.commit(rowsPerBatch)
		h.mustSync("batch")
	}
	final := h.db.Pos()
	clear := px.inject(t, toxic{"latency", "downstream", toxiproxy.Attributes{"latency": 50}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	out, err := h.restore(ctx, litestream.RestoreTarget{})
	elapsed := time.Since(start)
	clear()
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	h.checkRestored(out, final)
	if elapsed > 5*time.Second {
		t.Fatalf("restoring ~300 KB through a 50 ms link took %v (%d round trips)", elapsed.Round(time.Millisecond), elapsed/(50*time.Millisecond))
	}
}

// TestBugResumeBudgetIgnoresProgress restores one ~260 KB file through
// connections that each die after 32 KiB: every reopen makes 32 KiB of
// progress, so the restore can finish, but it takes more than 5 reopens.
func TestBugResumeBudgetIgnoresProgress(t *testing.T) {
	skipBug(t, bugResumeBudget)
	b := s3Backend
	b.require(t)
	px := newFaultProxy(t, b.upstream())
	h := newHarness(t, b.newClient(t, px.addr), func(db *litestream.DB) { db.Replica.SyncInterval = time.Hour })
	h.commit(64) // the first file holds the whole database: ~260 KB
	final := h.mustSync("one big file")
	h.client.reset(nil)
	clear := px.inject(t, toxic{"limit_data", "downstream", toxiproxy.Attributes{"bytes": 32 << 10}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := h.restore(ctx, litestream.RestoreTarget{})
	clear()
	if err != nil {
		t.Fatalf("restore through connections cut every 32 KiB: %v\nopens: %s", err, h.client.summary())
	}
	h.checkRestored(out, final)
}

// FuzzParse (config/fuzz_test.go) found that Parse panicked on a replicas
// list with an empty entry.
// Fixed in config.DBConfig.ReplicaSettings; kept as a regression test.
func TestBugConfigEmptyReplicaEntry(t *testing.T) {
	for _, doc := range []string{
		"dbs:\n  - path: /tmp/app.db\n    replicas:\n      -\n",
		"dbs:\n  - path: /tmp/app.db\n    replicas: [~]\n",
	} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("Parse(%q) panicked: %v", doc, r)
				}
			}()
			if _, err := config.Parse([]byte(doc), false); err == nil {
				t.Errorf("Parse(%q): no error for an empty replica entry", doc)
			}
		}()
	}
}
