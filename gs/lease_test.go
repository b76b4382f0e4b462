package gs

import (
	"testing"
	"time"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/replicatest"
)

func TestLeaseConformance(t *testing.T) {
	bucket := requireEmulator(t)
	replicatest.RunLeaseConformance(t, func(t *testing.T) (litestream.Leaser, litestream.Leaser) {
		cfg := Config{Bucket: bucket, Path: uniquePath(t), MaxAttempts: 2, InitialBackoff: 10 * time.Millisecond}
		a, err := NewReplicaClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		b, err := NewReplicaClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			rawDelete(t, a.leaseKey())
			_ = a.Close()
			_ = b.Close()
		})
		return a, b
	})
}
