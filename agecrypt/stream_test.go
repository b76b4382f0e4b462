package agecrypt_test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream/agecrypt"
	"github.com/sqlitebackup/litestream/file"
	"github.com/sqlitebackup/litestream/replicatest"
)

const chunk = 64 << 10

// storeRaw writes an LTX-like object (a clear 100-byte header, then body
// encrypted by age itself) where the file replica keeps level 0 file 1.
func storeRaw(t *testing.T, dir string, hdr, body []byte, id *age.X25519Identity) {
	t.Helper()
	var buf bytes.Buffer
	buf.Write(hdr)
	w, err := age.Encrypt(&buf, id.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	writeObject(t, dir, buf.Bytes())
}

func objectPath(dir string) string {
	return filepath.Join(dir, "ltx", "0", ltx.FormatFilename(1, 1))
}

func writeObject(t *testing.T, dir string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(objectPath(dir)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(objectPath(dir), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFrom(c *agecrypt.Client, offset, size int64) ([]byte, error) {
	rc, err := c.OpenLTXFile(context.Background(), 0, 1, 1, offset, size)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// TestDecryptMatchesAge decrypts files written by age.Encrypt, of sizes
// around the 64 KiB chunk and 1 MiB batch boundaries, from the start and
// from offsets on both sides of chunk boundaries.
func TestDecryptMatchesAge(t *testing.T) {
	id := newIdentity(t)
	hdr := bytes.Repeat([]byte{'H'}, ltx.HeaderSize)
	for _, n := range []int{0, 1, chunk - 1, chunk, chunk + 1, 2 * chunk, 2*chunk + 1, 3 * chunk, 16 * chunk, 16*chunk + 1, 17 * chunk, 40*chunk + 12345} {
		dir := t.TempDir()
		body := make([]byte, n)
		for i := range body {
			body[i] = byte(rand.N(256))
		}
		storeRaw(t, dir, hdr, body, id)
		plain := append(append([]byte{}, hdr...), body...)
		c := agecrypt.NewClient(file.NewReplicaClient(dir), nil, []age.Identity{id})
		offsets := []int64{0, 5, ltx.HeaderSize, ltx.HeaderSize + 1, int64(len(plain))}
		for _, k := range []int64{1, 2, 16, 17} {
			for _, d := range []int64{-1, 0, 1} {
				if o := ltx.HeaderSize + k*chunk + d; o <= int64(len(plain)) {
					offsets = append(offsets, o)
				}
			}
		}
		for _, o := range offsets {
			if o > int64(len(plain)) {
				continue
			}
			got, err := readFrom(c, o, 0)
			if err != nil || !bytes.Equal(got, plain[o:]) {
				t.Fatalf("body %d bytes, read from %d: %d bytes, %v", n, o, len(got), err)
			}
			if o+10 <= int64(len(plain)) {
				got, err := readFrom(c, o, 10)
				if err != nil || !bytes.Equal(got, plain[o:o+10]) {
					t.Fatalf("body %d bytes, 10 bytes from %d: %v, %v", n, o, got, err)
				}
			}
		}
	}
}

// TestDecryptRejectsDamage: truncation at and inside chunk boundaries,
// trailing data, a flipped bit and dropped chunks all fail with an error
// naming the file, from the start and from an offset; none returns the
// damaged file's bytes as if they were whole.
func TestDecryptRejectsDamage(t *testing.T) {
	id := newIdentity(t)
	hdr := bytes.Repeat([]byte{'H'}, ltx.HeaderSize)
	dir := t.TempDir()
	body := bytes.Repeat([]byte("0123456789abcdef"), 2*chunk/16) // exactly two full chunks
	storeRaw(t, dir, hdr, body, id)
	good, err := os.ReadFile(objectPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	c := agecrypt.NewClient(file.NewReplicaClient(dir), nil, []age.Identity{id})
	encChunk := chunk + 16
	end := len(good)
	damaged := map[string][]byte{
		"truncated at a chunk boundary": good[:end-encChunk],
		"truncated inside a chunk":      good[:end-100],
		"truncated to the header":       good[:end-2*encChunk],
		"trailing data":                 append(append([]byte{}, good...), 'x'),
		"flipped bit":                   flip(good, end-500),
		"last chunk dropped, then data": append(append([]byte{}, good[:end-encChunk]...), good[end-encChunk:end-encChunk+10]...),
	}
	for what, b := range damaged {
		writeObject(t, dir, b)
		for _, o := range []int64{0, ltx.HeaderSize + chunk + 7} {
			got, err := readFrom(c, o, 0)
			if err == nil {
				t.Fatalf("%s, read from %d: %d bytes and no error", what, o, len(got))
			}
			if !strings.Contains(err.Error(), ltx.FormatFilename(1, 1)) {
				t.Fatalf("%s: error %q does not name the file", what, err)
			}
		}
	}
}

func flip(b []byte, i int) []byte {
	b = append([]byte{}, b...)
	b[i] ^= 1
	return b
}

// TestLongAgeHeader: with a hundred recipients the age header outgrows
// the first read of the object's head; reads from the start and from an
// offset still decrypt.
func TestLongAgeHeader(t *testing.T) {
	id := newIdentity(t)
	var recipients []age.Recipient
	for i := 0; i < 100; i++ {
		recipients = append(recipients, newIdentity(t).Recipient())
	}
	recipients = append(recipients, id.Recipient())
	dir := t.TempDir()
	c := agecrypt.NewClient(file.NewReplicaClient(dir), recipients, []age.Identity{id})
	plain := replicatest.NewLTXFile(1, 1, time.UnixMilli(1_700_000_000_000), 40)
	if _, err := c.WriteLTXFile(context.Background(), 0, 1, 1, bytes.NewReader(plain)); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(objectPath(dir)); err != nil || fi.Size() < int64(len(plain))+8<<10 {
		t.Fatalf("stored object: %v, %v; want an age header over 8 KiB", fi, err)
	}
	for _, o := range []int64{0, ltx.HeaderSize, ltx.HeaderSize + chunk + 3} {
		got, err := readFrom(c, o, 0)
		if err != nil || !bytes.Equal(got, plain[o:]) {
			t.Fatalf("read from %d: %d bytes, %v", o, len(got), err)
		}
	}
}

// TestConcurrentUploads: uploads from several goroutines at once (sync
// and compaction do that) each get their own encryptor, made ahead or
// not: every file reads back intact and no two share an age header.
func TestConcurrentUploads(t *testing.T) {
	id := newIdentity(t)
	dir := t.TempDir()
	c := agecrypt.NewClient(file.NewReplicaClient(dir), []age.Recipient{id.Recipient()}, []age.Identity{id})
	ctx := context.Background()
	const writers, each = 4, 5
	files := map[ltx.TXID][]byte{}
	for txid := ltx.TXID(1); txid <= writers*each; txid++ {
		files[txid] = replicatest.NewLTXFile(txid, txid, time.UnixMilli(1_700_000_000_000), int(txid))
	}
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		go func(w int) {
			for i := 0; i < each; i++ {
				txid := ltx.TXID(w*each + i + 1)
				if _, err := c.WriteLTXFile(ctx, 0, txid, txid, bytes.NewReader(files[txid])); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}(w)
	}
	for w := 0; w < writers; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	headers := map[string]ltx.TXID{}
	for txid, want := range files {
		rc, err := c.OpenLTXFile(ctx, 0, txid, txid, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("file %s: %d bytes, %v", txid, len(got), err)
		}
		stored, err := os.ReadFile(filepath.Join(dir, "ltx", "0", ltx.FormatFilename(txid, txid)))
		if err != nil {
			t.Fatal(err)
		}
		hdr, err := age.ExtractHeader(bytes.NewReader(stored[ltx.HeaderSize:]))
		if err != nil {
			t.Fatal(err)
		}
		if other, ok := headers[string(hdr)]; ok {
			t.Fatalf("files %s and %s share an age header (file key)", other, txid)
		}
		headers[string(hdr)] = txid
	}
}
