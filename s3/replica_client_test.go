package s3

import (
	"testing"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/replicatest"
)

// TestReplicaClient_Conformance runs the shared ReplicaClient suite
// against MinIO and versitygw, each subtest on a fresh random prefix of
// S3_BUCKET.
func TestReplicaClient_Conformance(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testServer) {
		replicatest.RunConformance(t, func(t *testing.T) litestream.ReplicaClient {
			return newTestClient(t, srv, nil)
		})
	})
}

// The same suite with the settings used for picky providers: unsigned
// payloads, no Content-MD5, AWS-style request checksums.
func TestReplicaClient_Conformance_AltSettings(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	forEachServer(t, func(t *testing.T, srv testServer) {
		replicatest.RunConformance(t, func(t *testing.T) litestream.ReplicaClient {
			c := newTestClient(t, srv, func(cfg *Config) {
				cfg.SignPayload, cfg.RequireContentMD5 = ptr(false), ptr(false)
				cfg.Concurrency = 2
			})
			c.cfg.fullChecksums = true
			c.rebuildAPI()
			return c
		})
	})
}
