package netfault_test

import (
	"context"
	"errors"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/config"
)

// Regression tests for defects the network-fault suite found in code
// it does not own (docs/RELIABILITY.md, "Open defects"). Each failed while
// its defect was there.

// blackHole: requests reach the server, answers never come back.
var blackHole = toxic{"timeout", "downstream", toxiproxy.Attributes{"timeout": 0}}

// checkSyncDeadline commits a batch while answers are black-holed and
// checks that a SyncAndWait bounded at 1.5 s returns by 5 s with an error
// wrapping context.DeadlineExceeded. With loop, the replica's own upload loop is woken first and left
// hanging in a pass of its own.
func checkSyncDeadline(t *testing.T, b backend, loop bool) {
	b.require(t)
	px := newFaultProxy(t, b.upstream())
	interval := time.Hour
	if loop {
		interval = 10 * time.Millisecond
	}
	h := newHarness(t, b.newClient(t, px.addr), func(db *litestream.DB) {
		db.Replica.SyncInterval = interval
		// An idle lease lapses and is taken again by the next write, a
		// request the black hole would swallow before any upload starts;
		// a long TTL keeps the baseline's lease across a slow setup.
		db.Replica.LeaseTTL = time.Hour
	})
	h.commit(baselineRows)
	h.mustSync("baseline")
	clear := px.inject(t, blackHole)
	h.commit(rowsPerBatch)
	if loop {
		if err := h.db.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
		writes := h.client.writesStarted()
		// Usually the loop is hung in its own upload by now. On a loaded
		// machine it may not have started within the bound; SyncAndWait
		// then hangs in an upload of its own, and its deadline must hold
		// all the same.
		for deadline := time.Now().Add(10 * time.Second); h.client.writesStarted() <= writes; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Log("the upload loop did not start uploading within 10s; checking SyncAndWait's deadline on its own upload")
				break
			}
		}
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
		t.Logf("SyncAndWait bounded at 1.5s returned after %v: %v", r.elapsed.Round(time.Millisecond), r.err)
		if r.elapsed > 5*time.Second {
			t.Fatalf("SyncAndWait bounded at 1.5s returned after %v: %v", r.elapsed.Round(time.Millisecond), r.err)
		}
		if !errors.Is(r.err, context.DeadlineExceeded) {
			t.Fatalf("SyncAndWait error does not wrap context.DeadlineExceeded: %v", r.err)
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

// Replica.upload took the pass lock with a plain Lock, so a SyncAndWait
// waited for the upload loop's own pass, which has no deadline, as long
// as its request hung. The pass lock now gives up when the waiter's ctx
// ends.
func TestSyncAndWaitHonoursDeadlineWhileUploadLoopHangs(t *testing.T) {
	checkSyncDeadline(t, s3Backend, true)
}

// pkg/sftp calls take no context: WriteLTXFile lasted until the keepalive
// gave up (~60 s). The connection is now closed under a call whose ctx
// ended (after a 250 ms grace).
func TestSFTPWriteHonoursDeadlineOnHungConnection(t *testing.T) {
	checkSyncDeadline(t, sftpBackend, false)
}

// After a failed PUT, the temp file was deleted synchronously under a
// fresh context with the full 30 s response timeout. A write whose ctx
// ended now deletes it in the background.
func TestWebDAVWriteHonoursDeadlineOnHungConnection(t *testing.T) {
	checkSyncDeadline(t, webdavBackend, false)
}

// TestSFTPRestoreThroughLatency restores ~300 KB in four files through a
// 50 ms link. Each small Read of the LTX decoder was a round trip (~350 in
// all, 18 s); OpenLTXFile now reads ahead, 16 KiB first and doubling.
// S3 and WebDAV need about a second, SFTP now about two (~40 round
// trips); 8 s allows 160 round trips, headroom for a loaded machine.
func TestSFTPRestoreThroughLatency(t *testing.T) {
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
	t.Logf("restoring ~300 KB through a 50 ms link took %v", elapsed.Round(time.Millisecond))
	if elapsed > 8*time.Second {
		t.Fatalf("restoring ~300 KB through a 50 ms link took %v (%d round trips)", elapsed.Round(time.Millisecond), elapsed/(50*time.Millisecond))
	}
}

// TestResumeBudgetIsPerFailureStreak restores one ~260 KB file through
// connections that each die after 32 KiB: every reopen makes 32 KiB of
// progress, so the restore can finish, but it takes more than 5 reopens.
// The resumable reader's budget of 5 reopens was per file; it is now per
// streak of failures without progress (resumable.go).
func TestResumeBudgetIsPerFailureStreak(t *testing.T) {
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
