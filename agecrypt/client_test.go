package agecrypt_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/agecrypt"
	"github.com/sqlitebackup/litestream/file"
	"github.com/sqlitebackup/litestream/replicatest"
)

func newIdentity(t testing.TB) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestRangeReads reads from many offsets, including across the header
// and across age's 64 KiB chunk boundaries.
func TestRangeReads(t *testing.T) {
	id := newIdentity(t)
	c := agecrypt.NewClient(file.NewReplicaClient(t.TempDir()), []age.Recipient{id.Recipient()}, []age.Identity{id})
	plain := replicatest.NewLTXFile(1, 1, time.UnixMilli(1_700_000_000_000), 60) // ~240 KiB
	ctx := context.Background()
	if _, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(plain)); err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]int64{{0, 0}, {7, 50}, {99, 2}, {100, 0}, {65536 + 90, 100}, {65536*2 + 100, 70000}, {int64(len(plain)) - 5, 0}, {int64(len(plain)), 0}} {
		rc, err := c.OpenLTXFile(ctx, 0, 1, 1, r[0], r[1])
		if err != nil {
			t.Fatalf("open at %d: %v", r[0], err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		end := int64(len(plain))
		if r[1] > 0 {
			end = min(end, r[0]+r[1])
		}
		if err != nil || !bytes.Equal(got, plain[r[0]:end]) {
			t.Fatalf("read %v: %d bytes, %v", r, len(got), err)
		}
	}
}

func TestObjectsAreEncrypted(t *testing.T) {
	dir := t.TempDir()
	id := newIdentity(t)
	c := agecrypt.NewClient(file.NewReplicaClient(dir), []age.Recipient{id.Recipient()}, []age.Identity{id})
	plain := replicatest.NewLTXFile(1, 1, time.UnixMilli(1_700_000_000_000), 8)
	ctx := context.Background()
	if _, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(plain)); err != nil {
		t.Fatal(err)
	}
	stored, err := os.ReadFile(filepath.Join(dir, "ltx", "0", "0000000000000001-0000000000000001.ltx"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored, plain[200:300]) || !bytes.Contains(stored, []byte("age-encryption.org/v1")) {
		t.Fatal("stored object is not encrypted")
	}
	rc, err := c.OpenLTXFile(ctx, 0, 1, 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("round trip differs: %v", err)
	}

	// The wrong identity fails with a clear error naming the file.
	other := agecrypt.NewClient(file.NewReplicaClient(dir), nil, []age.Identity{newIdentity(t)})
	if _, err := other.OpenLTXFile(ctx, 0, 1, 1, 0, 0); err == nil || !strings.Contains(err.Error(), "0000000000000001-0000000000000001.ltx") || !strings.Contains(err.Error(), "identity") {
		t.Fatalf("wrong identity: %v", err)
	}
	if _, err := other.OpenLTXFile(ctx, 0, 1, 1, 5000, 0); err == nil || !strings.Contains(err.Error(), "identity") {
		t.Fatalf("wrong identity at an offset: %v", err)
	}

	// A clear file in an encrypted replica is refused, not passed through.
	plainClient := file.NewReplicaClient(dir)
	if _, err := plainClient.WriteLTXFile(ctx, 0, 2, 2, bytes.NewReader(replicatest.NewLTXFile(2, 2, time.Now(), 1))); err != nil {
		t.Fatal(err)
	}
	if _, err := c.OpenLTXFile(ctx, 0, 2, 2, 0, 0); !errors.Is(err, agecrypt.ErrNotEncrypted) {
		t.Fatalf("clear file read through encryption: %v", err)
	}
}

// TestRestoreEncryptedReplica replicates a real database through
// encryption, rotates the recipient, and restores with both identities;
// without identities the restore fails naming the file.
func TestRestoreEncryptedReplica(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	app := openApp(t, dbPath)
	mustExec(t, app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	oldID, newID := newIdentity(t), newIdentity(t)
	replicaDir := filepath.Join(dir, "replica")

	write := func(recipient *age.X25519Identity, rows int) {
		db := litestream.NewDB(dbPath)
		db.MonitorInterval = 0
		// Replicating reads existing files too (resuming, compaction), so
		// the writer holds the identities as well.
		litestream.NewReplica(db, agecrypt.NewClient(file.NewReplicaClient(replicaDir), []age.Recipient{recipient.Recipient()}, []age.Identity{oldID, newID}))
		if err := db.Open(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < rows; i++ {
			mustExec(t, app, "INSERT INTO t (v) VALUES (randomblob(3000))")
			if err := db.SyncAndWait(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	write(oldID, 3)
	write(newID, 3) // key rotation: new files use the new recipient

	both := agecrypt.NewClient(file.NewReplicaClient(replicaDir), nil, []age.Identity{newID, oldID})
	out := filepath.Join(dir, "out.db")
	if _, err := litestream.Restore(ctx, both, litestream.RestoreOptions{OutputPath: out, IntegrityCheck: "full"}); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, out, "SELECT COUNT(*) FROM t"); n != 6 {
		t.Fatalf("restored %d rows, want 6", n)
	}

	onlyNew := agecrypt.NewClient(file.NewReplicaClient(replicaDir), nil, []age.Identity{newID})
	_, err := litestream.Restore(ctx, onlyNew, litestream.RestoreOptions{OutputPath: filepath.Join(dir, "x.db")})
	if err == nil || !strings.Contains(err.Error(), "identity") {
		t.Fatalf("restore without the old identity: %v", err)
	}
	_, err = litestream.Restore(ctx, file.NewReplicaClient(replicaDir), litestream.RestoreOptions{OutputPath: filepath.Join(dir, "y.db")})
	if err == nil || !strings.Contains(err.Error(), "age-encrypted") || !strings.Contains(err.Error(), ".ltx") {
		t.Fatalf("restore of an encrypted replica without encryption: %v", err)
	}
	for _, p := range []string{"x.db", "y.db"} {
		if _, err := os.Stat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Fatalf("failed restore left %s", p)
		}
	}
}
