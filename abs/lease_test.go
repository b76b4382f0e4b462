package abs

import (
	"context"
	"testing"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/replicatest"
)

func TestLeaseConformance(t *testing.T) {
	az := requireAzurite(t)
	replicatest.RunLeaseConformance(t, func(t *testing.T) (litestream.Leaser, litestream.Leaser) {
		cfg := az.config(t)
		a, err := NewReplicaClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		b, err := NewReplicaClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		raw := az.rawContainer(t)
		t.Cleanup(func() { _, _ = raw.NewBlobClient(a.leaseKey()).Delete(context.Background(), nil) })
		return a, b
	})
}
