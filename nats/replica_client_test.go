package nats_test

import (
	"testing"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/replicatest"
)

// TestReplicaClient_Conformance runs the shared ReplicaClient suite
// against the NATS test server. Subtests get a bucket each, alternately
// with and without a key prefix, so both name layouts are covered.
func TestReplicaClient_Conformance(t *testing.T) {
	testBucket(t) // skips with a message when the server is not configured
	n := 0
	replicatest.RunConformance(t, func(t *testing.T) litestream.ReplicaClient {
		cfg, _ := testBucket(t)
		if n++; n%2 == 0 {
			cfg.Path = "db/" + randomHex(t, 4)
		}
		return newClient(t, cfg)
	})
}
