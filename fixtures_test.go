package litestream_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/file"
	"github.com/sqlitebackup/litestream/ltxfile"
)

// fixtureCase mirrors the parts of expected.json the tests use.
type fixtureCase struct {
	Final struct {
		MaxTXID string `json:"max_txid"`
		SHA256  string `json:"restored_db_sha256"`
	} `json:"final"`
	Points []struct {
		Name   string `json:"name"`
		ByTXID struct {
			TXID   string `json:"txid"`
			SHA256 string `json:"restored_db_sha256"`
		} `json:"restore_by_txid"`
		ByTimestamp struct {
			Timestamp string `json:"timestamp"`
			SHA256    string `json:"restored_db_sha256"`
		} `json:"restore_by_timestamp"`
	} `json:"points"`
	Files []struct {
		Path        string `json:"path"`
		TimestampMS int64  `json:"timestamp_ms"`
		Commit      uint32 `json:"commit"`
		SHA256      string `json:"sha256"`
	} `json:"files"`
}

const fixturesDir = "testdata/upstream-replicas"

// copyFixture copies a case's replica to a temp dir and sets every file's
// mtime to its LTX header timestamp, as upstream's file client does (git
// does not keep mtimes).
func copyFixture(t *testing.T, name string) (string, *fixtureCase) {
	t.Helper()
	src := filepath.Join(fixturesDir, name)
	b, err := os.ReadFile(filepath.Join(src, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fc fixtureCase
	if err := json.Unmarshal(b, &fc); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "replica")
	for _, f := range fc.Files {
		data, err := os.ReadFile(filepath.Join(src, "replica", f.Path))
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256Hex(data); got != f.SHA256 {
			t.Fatalf("fixture file %s corrupted: sha256 %s", f.Path, got)
		}
		p := filepath.Join(dst, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		ts := time.UnixMilli(f.TimestampMS)
		if err := os.Chtimes(p, ts, ts); err != nil {
			t.Fatal(err)
		}
	}
	return dst, &fc
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256Hex(b)
}

func fixtureNames(t *testing.T) []string {
	entries, err := os.ReadDir(fixturesDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		t.Fatal("no fixtures")
	}
	return names
}

// TestUpstreamFixtures restores every replica written by upstream
// Litestream, at the latest state and at every recorded point by TXID and
// by timestamp, and compares the database bytes with upstream's.
func TestUpstreamFixtures(t *testing.T) {
	for _, name := range fixtureNames(t) {
		t.Run(name, func(t *testing.T) {
			replicaDir, fc := copyFixture(t, name)
			client := file.NewReplicaClient(replicaDir)
			ctx := context.Background()
			restore := func(t *testing.T, target litestream.RestoreTarget) string {
				out := filepath.Join(t.TempDir(), "out.db")
				if _, err := litestream.Restore(ctx, client, litestream.RestoreOptions{OutputPath: out, Target: target, IntegrityCheck: "full"}); err != nil {
					t.Fatal(err)
				}
				return fileSHA256(t, out)
			}
			t.Run("latest", func(t *testing.T) {
				if got := restore(t, litestream.RestoreTarget{}); got != fc.Final.SHA256 {
					t.Fatalf("latest: sha256 %s, want %s", got, fc.Final.SHA256)
				}
			})
			for _, p := range fc.Points {
				t.Run(p.Name+"/txid", func(t *testing.T) {
					txid, err := ltx.ParseTXID(p.ByTXID.TXID)
					if err != nil {
						t.Fatal(err)
					}
					if got := restore(t, litestream.RestoreTarget{TXID: txid}); got != p.ByTXID.SHA256 {
						t.Fatalf("txid %s: sha256 %s, want %s", txid, got, p.ByTXID.SHA256)
					}
				})
				t.Run(p.Name+"/timestamp", func(t *testing.T) {
					ts, err := time.Parse(time.RFC3339Nano, p.ByTimestamp.Timestamp)
					if err != nil {
						t.Fatal(err)
					}
					if got := restore(t, litestream.RestoreTarget{Timestamp: ts}); got != p.ByTimestamp.SHA256 {
						t.Fatalf("timestamp %s: sha256 %s, want %s", ts, got, p.ByTimestamp.SHA256)
					}
				})
			}
		})
	}
}

// TestUpstreamFixtureFilesDecode checks every upstream file with our LTX
// layer: header fields and the file checksum.
func TestUpstreamFixtureFilesDecode(t *testing.T) {
	for _, name := range fixtureNames(t) {
		replicaDir, fc := copyFixture(t, name)
		for _, f := range fc.Files {
			fh, err := os.Open(filepath.Join(replicaDir, f.Path))
			if err != nil {
				t.Fatal(err)
			}
			hdr, err := ltxfile.Verify(fh)
			fh.Close()
			if err != nil {
				t.Fatalf("%s/%s: %v", name, f.Path, err)
			}
			if hdr.Commit != f.Commit || hdr.Timestamp != f.TimestampMS || hdr.Flags != ltx.HeaderFlagNoChecksum {
				t.Fatalf("%s/%s: header %+v", name, f.Path, hdr)
			}
		}
	}
}

// TestRestoreEveryPlanGivesSameBytes restores one fixture from each level
// alone where possible: the bytes must not depend on the plan.
func TestRestoreEveryPlanGivesSameBytes(t *testing.T) {
	replicaDir, fc := copyFixture(t, "pagesize-65536-vacuum")
	// Remove every level but 0: the chain must come from level 0 alone.
	for _, level := range []string{"1", "2", "3", "9"} {
		if err := os.RemoveAll(filepath.Join(replicaDir, "ltx", level)); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "out.db")
	res, err := litestream.Restore(context.Background(), file.NewReplicaClient(replicaDir), litestream.RestoreOptions{OutputPath: out})
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 26 {
		t.Fatalf("plan used %d files, want the 26 level-0 files", res.Files)
	}
	if got := fileSHA256(t, out); got != fc.Final.SHA256 {
		t.Fatalf("sha256 %s, want %s", got, fc.Final.SHA256)
	}
}
