package sftp_test

import (
	"testing"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/replicatest"
)

func TestLeaseConformance(t *testing.T) {
	replicatest.RunLeaseConformance(t, func(t *testing.T) (litestream.Leaser, litestream.Leaser) {
		cfg := testConfig(t)
		return newClient(t, cfg), newClient(t, cfg)
	})
}
