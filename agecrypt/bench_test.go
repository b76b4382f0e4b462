package agecrypt_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/sqlitebackup/litestream/file"
	"github.com/sqlitebackup/litestream/replicatest"
)

// BenchmarkWriteRead writes a 16 MiB LTX file to a file replica and reads
// it back, through the plain and the encrypting client alternately in
// each iteration (see alternate in cost_bench_test.go); the target is a
// ratio within 1.15.
func BenchmarkWriteRead(b *testing.B) {
	data := replicatest.NewLTXFile(1, 1, time.UnixMilli(1_700_000_000_000), 4096)
	ctx := context.Background()
	b.ReportAllocs()
	alternate(b, benchSides(), func(s *benchSide) func() {
		c := s.wrap(file.NewReplicaClient(b.TempDir()))
		if _, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		rc, err := c.OpenLTXFile(ctx, 0, 1, 1, 0, 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			b.Fatal(err)
		}
		rc.Close()
		return func() {}
	})
}
