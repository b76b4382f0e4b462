package gs_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/gs"
	"github.com/sqlitebackup/litestream/replicatest"
)

// TestReplicaClient_Conformance runs the shared suite against
// fake-gcs-server (shared/testinfra/start-servers.sh, server "gcs").
func TestReplicaClient_Conformance(t *testing.T) {
	bucket := os.Getenv("GCS_BUCKET")
	if os.Getenv("STORAGE_EMULATOR_HOST") == "" || bucket == "" {
		t.Skip("GCS emulator not configured: set STORAGE_EMULATOR_HOST and GCS_BUCKET (see shared/testinfra/start-servers.sh)")
	}
	replicatest.RunConformance(t, func(t *testing.T) litestream.ReplicaClient {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			t.Fatal(err)
		}
		c, err := gs.NewReplicaClient(gs.Config{Bucket: bucket, Path: "conformance/" + hex.EncodeToString(b[:])})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := c.DeleteAll(context.Background()); err != nil {
				t.Errorf("cleanup: %v", err)
			}
			c.Close()
		})
		return c
	})
}
