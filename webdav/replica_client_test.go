package webdav_test

import (
	"testing"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/replicatest"
)

// TestReplicaClient_Conformance runs the shared ReplicaClient suite
// against the WebDAV test server, each subtest in its own collection.
func TestReplicaClient_Conformance(t *testing.T) {
	testConfig(t) // skips with a message when the server is not configured
	replicatest.RunConformance(t, func(t *testing.T) litestream.ReplicaClient {
		return newClient(t, testConfig(t))
	})
}
