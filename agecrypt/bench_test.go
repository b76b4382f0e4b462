package agecrypt_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/agecrypt"
	"github.com/sqlitebackup/litestream/file"
	"github.com/sqlitebackup/litestream/replicatest"
)

// BenchmarkWriteRead compares writing and reading back a 16 MiB LTX file
// through a file replica with and without encryption; compare ns/op of the
// two sub-benchmarks (the target is within 15%).
func BenchmarkWriteRead(b *testing.B) {
	data := replicatest.NewLTXFile(1, 1, time.UnixMilli(1_700_000_000_000), 4096)
	id, _ := age.GenerateX25519Identity()
	for _, bc := range []struct {
		name string
		wrap func(litestream.ReplicaClient) litestream.ReplicaClient
	}{
		{"plain", func(c litestream.ReplicaClient) litestream.ReplicaClient { return c }},
		{"age", func(c litestream.ReplicaClient) litestream.ReplicaClient {
			return agecrypt.NewClient(c, []age.Recipient{id.Recipient()}, []age.Identity{id})
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := bc.wrap(file.NewReplicaClient(b.TempDir()))
			ctx := context.Background()
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
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
			}
		})
	}
}
