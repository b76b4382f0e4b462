package agecrypt_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/superfly/ltx"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/agecrypt"
	"github.com/sqlitebackup/litestream/file"
	"github.com/sqlitebackup/litestream/ltxfile"
)

// The encryption cost benchmarks run the plain and the encrypting file
// replica alternately within each iteration, so load from other
// processes hits both alike, and report both times and their ratio
// (issue: within 15%):
//
//	go test -run '^$' -bench 'EncryptionCost' -benchtime 20x ./agecrypt

const (
	benchPageSize = 4096
	benchPages    = 16384 // a 64 MiB database
)

// benchPage fills a page like a table's leaf: 3/4 random row data (which
// LZ4 cannot shrink), 1/4 free space.
func benchPage(rng *rand.Rand) func(uint32, []byte) error {
	return func(_ uint32, buf []byte) error {
		for i := 0; i+8 <= len(buf)*3/4; i += 8 {
			v := rng.Uint64()
			for j := range 8 {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		clear(buf[len(buf)*3/4:])
		return nil
	}
}

// benchFile encodes an LTX file with pages from..to of a benchPages database.
func benchFile(b *testing.B, rng *rand.Rand, minTXID, maxTXID ltx.TXID, from, to uint32) []byte {
	var pgnos []uint32
	for p := from; p <= to; p++ {
		pgnos = append(pgnos, p)
	}
	var buf bytes.Buffer
	hdr := ltxfile.Header(benchPageSize, benchPages, minTXID, maxTXID, time.UnixMilli(1_700_000_000_000))
	if _, err := ltxfile.Encode(&buf, hdr, pgnos, benchPage(rng)); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

type benchFileSpec struct {
	level            int
	minTXID, maxTXID ltx.TXID
	data             []byte
}

// benchChain is a restore chain: a 64 MiB snapshot and 8 level-0 files
// of 4 MiB each.
func benchChain(b *testing.B) []benchFileSpec {
	rng := rand.New(rand.NewPCG(7, 7))
	files := []benchFileSpec{{litestream.SnapshotLevel, 1, 1, benchFile(b, rng, 1, 1, 1, benchPages)}}
	for i := 0; i < 8; i++ {
		from := uint32(i*1024 + 1)
		txid := ltx.TXID(i + 2)
		files = append(files, benchFileSpec{0, txid, txid, benchFile(b, rng, txid, txid, from, from+1023)})
	}
	return files
}

type benchSide struct {
	name string
	wrap func(litestream.ReplicaClient) litestream.ReplicaClient
	took time.Duration // wall time
	cpu  time.Duration // user+system CPU time of the process
}

// processCPU is the CPU time this process has used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchSides() []*benchSide {
	id, _ := age.GenerateX25519Identity()
	return []*benchSide{
		{name: "plain", wrap: func(c litestream.ReplicaClient) litestream.ReplicaClient { return c }},
		{name: "age", wrap: func(c litestream.ReplicaClient) litestream.ReplicaClient {
			return agecrypt.NewClient(c, []age.Recipient{id.Recipient()}, []age.Identity{id})
		}},
	}
}

// report prints both sides' wall and CPU time per iteration and age's
// ratios to plain. On a loaded machine the CPU ratio is the steadier one.
func report(b *testing.B, sides []*benchSide, n int) {
	for _, s := range sides {
		b.ReportMetric(float64(s.took.Milliseconds())/float64(n), s.name+"-ms/op")
		b.ReportMetric(float64(s.cpu.Milliseconds())/float64(n), s.name+"-cpu-ms/op")
	}
	b.ReportMetric(float64(sides[1].took)/float64(sides[0].took), "age/plain")
	b.ReportMetric(float64(sides[1].cpu)/float64(sides[0].cpu), "age/plain-cpu")
	b.ReportMetric(0, "ns/op") // the sum of both sides says nothing
}

// alternate runs f for each side, in alternating order per iteration,
// and the cleanup f returns outside the measurement.
func alternate(b *testing.B, sides []*benchSide, f func(s *benchSide) (cleanup func())) {
	n := 0
	for b.Loop() {
		order := []*benchSide{sides[0], sides[1]}
		if n%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, s := range order {
			start, cpu := time.Now(), processCPU()
			cleanup := f(s)
			s.took += time.Since(start)
			s.cpu += processCPU() - cpu
			b.StopTimer()
			cleanup()
			b.StartTimer()
		}
		n++
	}
	report(b, sides, n)
}

// BenchmarkEncryptionCost/replicate uploads the chain's 96 MiB of LTX
// files (what Replica.Sync and compaction write) to a fresh file
// replica; /replicate-small uploads 200 level-0 files of 4 pages, one
// per sync as replication of a steady trickle of commits does; /restore
// restores the 64 MiB database from the chain (plan, read, decrypt,
// merge, write, fsync).
func BenchmarkEncryptionCost(b *testing.B) {
	ctx := context.Background()
	chain := benchChain(b)
	var total int64
	for _, f := range chain {
		total += int64(len(f.data))
	}

	b.Run("replicate", func(b *testing.B) {
		sides := benchSides()
		alternate(b, sides, func(s *benchSide) func() {
			dir := b.TempDir()
			c := s.wrap(file.NewReplicaClient(dir))
			for _, f := range chain {
				if _, err := c.WriteLTXFile(ctx, f.level, f.minTXID, f.maxTXID, bytes.NewReader(f.data)); err != nil {
					b.Fatal(err)
				}
			}
			return func() { os.RemoveAll(dir) }
		})
	})

	// Typical replication: one small level-0 file per sync.
	b.Run("replicate-small", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(8, 8))
		var small []benchFileSpec
		for i := 0; i < 200; i++ {
			txid := ltx.TXID(i + 1)
			small = append(small, benchFileSpec{0, txid, txid, benchFile(b, rng, txid, txid, uint32(i+1), uint32(i+4))})
		}
		sides := benchSides()
		alternate(b, sides, func(s *benchSide) func() {
			dir := b.TempDir()
			c := s.wrap(file.NewReplicaClient(dir))
			for _, f := range small {
				if _, err := c.WriteLTXFile(ctx, f.level, f.minTXID, f.maxTXID, bytes.NewReader(f.data)); err != nil {
					b.Fatal(err)
				}
			}
			return func() { os.RemoveAll(dir) }
		})
	})

	b.Run("restore", func(b *testing.B) {
		sides := benchSides()
		clients := map[string]litestream.ReplicaClient{}
		for _, s := range sides {
			c := s.wrap(file.NewReplicaClient(filepath.Join(b.TempDir(), s.name)))
			for _, f := range chain {
				if _, err := c.WriteLTXFile(ctx, f.level, f.minTXID, f.maxTXID, bytes.NewReader(f.data)); err != nil {
					b.Fatal(err)
				}
			}
			clients[s.name] = c
		}
		out := filepath.Join(b.TempDir(), "restored.db")
		alternate(b, sides, func(s *benchSide) func() {
			res, err := litestream.Restore(ctx, clients[s.name], litestream.RestoreOptions{OutputPath: out})
			if err != nil {
				b.Fatal(err)
			}
			if res.Commit != benchPages || res.Files != len(chain) {
				b.Fatalf("%s: restored %d pages from %d files", s.name, res.Commit, res.Files)
			}
			return func() {
				if err := os.Remove(out); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkCipherFloor is age's cipher alone, in memory: sealing and
// opening 16 MiB in 64 KiB ChaCha20-Poly1305 chunks. No implementation
// of the format can encrypt or decrypt faster than this.
func BenchmarkCipherFloor(b *testing.B) {
	aead, _ := chacha20poly1305.New(make([]byte, chacha20poly1305.KeySize))
	const size, chunk = 16 << 20, 64 << 10
	buf := make([]byte, chunk+aead.Overhead())
	nonce := make([]byte, aead.NonceSize())
	for _, op := range []string{"seal", "open"} {
		b.Run(op, func(b *testing.B) {
			sealed := aead.Seal(nil, nonce, buf[:chunk], nil)
			b.SetBytes(size)
			for b.Loop() {
				for i := 0; i < size/chunk; i++ {
					if op == "seal" {
						aead.Seal(buf[:0], nonce, buf[:chunk], nil)
					} else if _, err := aead.Open(buf[:0], nonce, sealed, nil); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
