package netfault_test

import (
	"context"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"
	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
)

// faultCase is one network fault: toxics active while the application
// writes and replicates, and (where a restore can succeed through the
// fault) toxics active while restoring.
type faultCase struct {
	name string

	replicate []toxic
	// blocksUploads: no upload can get through while the replicate toxics
	// are active, so every attempt must fail (proof the fault was hit);
	// otherwise every batch must replicate, retrying within a deadline.
	blocksUploads bool

	restore []toxic // nil: the restore runs without a fault
	// tripRestore is injected while a restore stream is in progress (see
	// tripwire) and lifted when the file is reopened.
	tripRestore *toxic
	resumes     bool // the restore must resume at least one file mid-way
}

// Sizes: a batch of rowsPerBatch rows is a level-0 file of ~100 KB, so
// the cut-off toxics below (32-48 KiB per connection) always land inside
// a file, and a file needs 3-4 connections to download.
const (
	baselineRows = 8
	rowsPerBatch = 24
	batches      = 3
	// attemptTimeout bounds one SyncAndWait under a fault that blocks
	// uploads; the black hole makes every attempt last this long.
	attemptTimeout = 1500 * time.Millisecond
)

// faultCases returns the cases for backend b.
func faultCases(b backend) []faultCase {
	latency := toxic{"latency", "downstream", toxiproxy.Attributes{"latency": 200, "jitter": 20}}
	bwUp := toxic{"bandwidth", "upstream", toxiproxy.Attributes{"rate": 256}} // KB/s
	bwDown := toxic{"bandwidth", "downstream", toxiproxy.Attributes{"rate": 256}}
	slice := toxiproxy.Attributes{"average_size": 64, "size_variation": 32, "delay": 10} // bytes, bytes, µs
	return []faultCase{
		{name: "latency", replicate: []toxic{latency}, restore: []toxic{latency}},
		{name: "bandwidth", replicate: []toxic{bwUp, bwDown}, restore: []toxic{bwUp, bwDown}},
		{name: "slicer", replicate: []toxic{{"slicer", "upstream", slice}, {"slicer", "downstream", slice}},
			restore: []toxic{{"slicer", "upstream", slice}, {"slicer", "downstream", slice}}},
		{
			// Every connection is closed after 48 KiB towards the server:
			// each upload dies part-way through its body.
			name:          "cut mid-upload",
			replicate:     []toxic{{"limit_data", "upstream", toxiproxy.Attributes{"bytes": 48 << 10}}},
			blocksUploads: true,
		},
		{
			// Every connection is reset (RST) as soon as it sends.
			name:          "reset",
			replicate:     []toxic{{"reset_peer", "upstream", toxiproxy.Attributes{"timeout": 0}}},
			blocksUploads: true,
		},
		{
			// Nothing reaches the server, and connections are closed
			// after a second of silence.
			name:          "timeout",
			replicate:     []toxic{{"timeout", "upstream", toxiproxy.Attributes{"timeout": 1000}}},
			blocksUploads: true,
		},
		{
			// Requests reach the server but no answer ever comes back:
			// uploads may complete without the client knowing.
			name:          "black hole",
			replicate:     []toxic{{"timeout", "downstream", toxiproxy.Attributes{"timeout": 0}}},
			blocksUploads: true,
		},
		{
			// Every connection is closed after 32 KiB per stream towards
			// the client: each download is cut part-way and must resume.
			name:    "cut mid-download",
			restore: []toxic{{"limit_data", "downstream", toxiproxy.Attributes{"bytes": 32 << 10 * b.streamsPerConn}}},
			resumes: true,
		},
		{
			// Downloads crawl at 128 KB/s; once a stream has delivered
			// 16 KiB every connection is reset (RST), and the reset is
			// lifted when the file is reopened; three times.
			name:        "reset mid-download",
			restore:     []toxic{{"bandwidth", "downstream", toxiproxy.Attributes{"rate": 128}}},
			tripRestore: &toxic{"reset_peer", "downstream", toxiproxy.Attributes{"timeout": 0}},
			resumes:     true,
		},
	}
}

// proxiedBackends are the backends the fault suite runs against: S3
// (MinIO) and two others.
var proxiedBackends = []string{"s3", "sftp", "webdav"}

// TestNetworkFaults runs every fault against every proxied backend: the
// application keeps committing and replicating through the fault, the
// replica catches up without a gap when it clears, and the restore (run
// through the fault where it can succeed) yields exactly the
// application's rows, resuming cut downloads mid-file.
func TestNetworkFaults(t *testing.T) {
	requireToxiproxy(t)
	for _, name := range proxiedBackends {
		b := backendNamed(name)
		t.Run(name, func(t *testing.T) {
			t.Parallel() // separate servers and proxies: nothing shared
			b.require(t)
			for _, c := range faultCases(b) {
				t.Run(c.name, func(t *testing.T) {
					runFaultCase(t, b, c)
				})
			}
		})
	}
}

func runFaultCase(t *testing.T, b backend, c faultCase) {
	px := newFaultProxy(t, b.upstream())
	// Uploads happen in the test's own SyncAndWait calls, each bounded by
	// its deadline: the replica's background loop would otherwise run a
	// pass of its own, without a deadline, and while that pass hangs a
	// SyncAndWait can only give up at its deadline (see
	// TestSyncAndWaitHonoursDeadlineWhileUploadLoopHangs). The loop itself
	// is tested by TestUploadLoopCatchesUpAfterFault.
	h := newHarness(t, b.newClient(t, px.addr), func(db *litestream.DB) { db.Replica.SyncInterval = time.Hour })
	h.commit(baselineRows)
	base := h.mustSync("baseline")

	replicateThrough(t, h, px, c)
	final := h.mustSync("after the fault cleared")
	if final <= base {
		t.Fatalf("replica at TXID %s after the fault, baseline was %s", final, base)
	}
	ctx := context.Background()
	h.checkLevel0Contiguous(ctx)
	h.checkVerify(ctx)

	restoreThrough(t, h, px, c, final)

	// Point in time: the state before the fault is still reachable.
	out, err := h.restore(ctx, litestream.RestoreTarget{TXID: base})
	if err != nil {
		t.Fatalf("restore TXID %s: %v", base, err)
	}
	h.checkRestored(out, base)
}

// replicateThrough commits batches with the replicate toxics active.
func replicateThrough(t *testing.T, h *harness, px *faultProxy, c faultCase) {
	t.Helper()
	clear := px.inject(t, c.replicate...)
	defer clear()
	var failures int
	for i := 0; i < batches; i++ {
		h.commit(rowsPerBatch)
		if c.blocksUploads {
			err := h.trySync(attemptTimeout)
			if err == nil {
				t.Fatalf("batch %d: replicated to TXID %s through %v, which blocks uploads", i, h.db.Pos(), c.replicate)
			}
			t.Logf("batch %d: %v", i, err)
			failures++
			continue
		}
		errs, err := h.syncRetrying(15*time.Second, 30*time.Second)
		if err != nil {
			t.Fatalf("batch %d: not replicated through %v within 30s: %v (%d failed attempts)", i, c.replicate, err, len(errs))
		}
		failures += len(errs)
	}
	t.Logf("%d failed sync attempts while %v was active", failures, c.replicate)
}

// restoreThrough restores the latest state with the restore toxics active
// and checks the result and how the files were read.
func restoreThrough(t *testing.T, h *harness, px *faultProxy, c faultCase, final ltx.TXID) {
	t.Helper()
	var trip *tripwire
	if c.tripRestore != nil {
		var heal func()
		trip = &tripwire{after: 16 << 10, times: 3,
			fire: func() { heal = px.inject(t, *c.tripRestore) },
			heal: func() { heal() },
		}
	}
	h.client.reset(trip)
	clear := px.inject(t, c.restore...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	out, err := h.restore(ctx, litestream.RestoreTarget{})
	clear()
	if err != nil {
		t.Fatalf("restore through %v: %v\nopens: %s", c.restore, err, h.client.summary())
	}
	h.checkRestored(out, final)
	resumed, problems := h.client.resumeReport()
	if len(problems) > 0 {
		t.Fatalf("restore through %v re-read data instead of resuming: %v\nopens: %s", c.restore, problems, h.client.summary())
	}
	if c.resumes && resumed == 0 {
		t.Fatalf("restore through %v never resumed a file mid-way (the fault was not hit)\nopens: %s", c.restore, h.client.summary())
	}
	t.Logf("restore through %v: %v, %d resumes; opens: %s", c.restore, time.Since(start).Round(time.Millisecond), resumed, h.client.summary())
}
