package abs_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/abs"
	"github.com/sqlitebackup/litestream/replicatest"
)

// TestReplicaClient_Conformance runs the shared suite against Azurite
// (shared/testinfra/start-servers.sh, server "azurite").
func TestReplicaClient_Conformance(t *testing.T) {
	cfg := abs.Config{
		AccountName: os.Getenv("AZURE_STORAGE_ACCOUNT"),
		AccountKey:  os.Getenv("AZURE_STORAGE_KEY"),
		Endpoint:    os.Getenv("AZURE_BLOB_ENDPOINT"),
		Container:   os.Getenv("AZURE_CONTAINER"),
	}
	if cfg.AccountName == "" || cfg.AccountKey == "" || cfg.Endpoint == "" || cfg.Container == "" {
		t.Skip("Azurite not configured: set AZURE_STORAGE_ACCOUNT, AZURE_STORAGE_KEY, AZURE_BLOB_ENDPOINT and AZURE_CONTAINER (see shared/testinfra/start-servers.sh)")
	}
	replicatest.RunConformance(t, func(t *testing.T) litestream.ReplicaClient {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			t.Fatal(err)
		}
		cfg := cfg
		cfg.Path = "conformance/" + hex.EncodeToString(b[:])
		c, err := abs.NewReplicaClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := c.DeleteAll(context.Background()); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		})
		return c
	})
}
