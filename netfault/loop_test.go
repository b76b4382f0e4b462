package netfault_test

import (
	"context"
	"os"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/s3"
)

// TestUploadLoopCatchesUpAfterFault leaves uploading to the replica's own
// loop, as `litestream replicate` does: while every connection is reset
// its uploads fail, and once the fault clears it catches up by itself,
// without a gap, with nobody calling SyncAndWait.
func TestUploadLoopCatchesUpAfterFault(t *testing.T) {
	requireToxiproxy(t)
	for _, name := range proxiedBackends {
		b := backendNamed(name)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b.require(t)
			px := newFaultProxy(t, b.upstream())
			client := b.newClient(t, px.addr)
			if name == "s3" {
				client = quickS3Client(t, client, px.addr)
			}
			h := newHarness(t, client, func(db *litestream.DB) { db.Replica.SyncInterval = 50 * time.Millisecond })
			h.commit(baselineRows)
			h.mustSync("baseline")

			clear := px.inject(t, toxic{"reset_peer", "upstream", toxiproxy.Attributes{"timeout": 0}})
			h.commit(rowsPerBatch)
			if err := h.db.Sync(context.Background()); err != nil { // local only: the loop uploads
				t.Fatal(err)
			}
			waitUntil(t, 20*time.Second, "an upload to fail", func() bool { return h.client.writesFailed() > 0 })
			clear()

			h.commit(rowsPerBatch)
			if err := h.db.Sync(context.Background()); err != nil {
				t.Fatal(err)
			}
			want := h.db.Pos()
			h.states[want] = ledgerHash(t, h.app)
			waitUntil(t, 30*time.Second, "the upload loop to catch up", func() bool { return h.db.Replica.Pos() >= want })
			ctx := context.Background()
			h.checkLevel0Contiguous(ctx)
			h.checkVerify(ctx)
			out, err := h.restore(ctx, litestream.RestoreTarget{})
			if err != nil {
				t.Fatal(err)
			}
			h.checkRestored(out, want)
		})
	}
}

// quickS3Client replaces the config-built S3 client (already scheduled for
// cleanup) by one on the same replica that gives up after two attempts,
// so a failed upload is reported at once instead of after the SDK's ten
// attempts with backoff.
func quickS3Client(t *testing.T, c litestream.ReplicaClient, addr string) litestream.ReplicaClient {
	t.Helper()
	root := c.(*s3.ReplicaClient).Path()
	q, err := s3.NewReplicaClient(s3.Config{
		Bucket:          os.Getenv("S3_BUCKET"),
		Path:            root,
		Region:          os.Getenv("S3_REGION"),
		Endpoint:        "http://" + addr,
		AccessKeyID:     os.Getenv("S3_ACCESS_KEY_ID"),
		SecretAccessKey: os.Getenv("S3_SECRET_ACCESS_KEY"),
		MaxAttempts:     2,
		MaxBackoff:      50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return q
}
