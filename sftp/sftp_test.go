package sftp_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"
	"golang.org/x/crypto/ssh"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/sftp"
)

// testConfig returns a config for the test server with a fresh replica
// root, or skips when the server's variables are not set.
func testConfig(t *testing.T) sftp.Config {
	t.Helper()
	for _, k := range []string{"SFTP_ADDR", "SFTP_USER", "SFTP_KEY_FILE", "SFTP_KNOWN_HOSTS", "SFTP_ROOT"} {
		if os.Getenv(k) == "" {
			t.Skipf("%s not set: start the SFTP test server (TESTINFRA_SERVERS=sftp shared/testinfra/start-servers.sh) to run this test", k)
		}
	}
	return sftp.Config{
		Host:             os.Getenv("SFTP_ADDR"),
		User:             os.Getenv("SFTP_USER"),
		KeyPath:          os.Getenv("SFTP_KEY_FILE"),
		HostKeyPath:      os.Getenv("SFTP_KNOWN_HOSTS"),
		Path:             path.Join(os.Getenv("SFTP_ROOT"), "test-"+randomHex(t, 8)),
		ConcurrentWrites: true,
		DialTimeout:      10 * time.Second,
	}
}

// newClient builds a client and removes its replica when the test ends.
func newClient(t *testing.T, cfg sftp.Config) *sftp.ReplicaClient {
	t.Helper()
	c, err := sftp.NewReplicaClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.DeleteAll(t.Context())
		_ = c.Close()
		_ = os.RemoveAll(cfg.Path) // the root itself; the server runs on this machine
	})
	return c
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// ltxBytes returns an LTX header with the given range and timestamp plus
// a payload: the backend only looks at the header.
func ltxBytes(t *testing.T, minTXID, maxTXID ltx.TXID, ts time.Time, payload []byte) []byte {
	t.Helper()
	hdr := ltx.Header{Version: ltx.Version, PageSize: 4096, Commit: 1, MinTXID: minTXID, MaxTXID: maxTXID, Timestamp: ts.UnixMilli()}
	b, err := hdr.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return append(b, payload...)
}

func TestReplicaClient_WriteListReadDelete(t *testing.T) {
	ctx := t.Context()
	cfg := testConfig(t)
	c := newClient(t, cfg)

	ts := time.Date(2024, 5, 6, 7, 8, 9, 123_000_000, time.UTC) // ms that SFTP's mtime cannot keep
	data := ltxBytes(t, 1, 2, ts, bytes.Repeat([]byte("0123456789"), 10_000))
	info, err := c.WriteLTXFile(ctx, 0, 1, 2, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(data)) || !info.CreatedAt.Equal(ts) {
		t.Fatalf("WriteLTXFile info = %+v, want size %d created %v", info, len(data), ts)
	}

	// No temp file is left next to the final one.
	entries, err := os.ReadDir(filepath.Join(cfg.Path, "ltx", "0"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != ltx.FormatFilename(1, 2) {
		t.Fatalf("level dir holds %v, want only the final file", entries)
	}

	// mtime keeps whole seconds; the header keeps the milliseconds.
	for _, useMetadata := range []bool{false, true} {
		infos, err := litestream.LTXFileInfos(ctx, c, 0, 0, useMetadata)
		if err != nil {
			t.Fatal(err)
		}
		want := ts.Truncate(time.Second)
		if useMetadata {
			want = ts
		}
		if len(infos) != 1 || infos[0].Size != int64(len(data)) || !infos[0].CreatedAt.Equal(want) {
			t.Fatalf("useMetadata=%v: listed %+v, want one file created %v", useMetadata, infos, want)
		}
	}

	got := readAll(t, c, 0, 1, 2, 0, 0)
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, want the %d written", len(got), len(data))
	}
	if got := readAll(t, c, 0, 1, 2, 1000, 25); !bytes.Equal(got, data[1000:1025]) {
		t.Fatalf("range read = %q, want %q", got, data[1000:1025])
	}
	if got := readAll(t, c, 0, 1, 2, int64(len(data))-5, 0); !bytes.Equal(got, data[len(data)-5:]) {
		t.Fatalf("offset read = %q, want %q", got, data[len(data)-5:])
	}

	if err := c.DeleteLTXFiles(ctx, []*ltx.FileInfo{info, {Level: 0, MinTXID: 7, MaxTXID: 7}}); err != nil {
		t.Fatalf("delete (one file missing): %v", err)
	}
	if _, err := c.OpenLTXFile(ctx, 0, 1, 2, 0, 0); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("open deleted file: err = %v, want os.ErrNotExist", err)
	}
}

// concurrent-writes: false takes the plain io.Copy path.
func TestReplicaClient_SequentialWrites(t *testing.T) {
	cfg := testConfig(t)
	cfg.ConcurrentWrites = false
	c := newClient(t, cfg)
	data := ltxBytes(t, 3, 4, time.Now(), bytes.Repeat([]byte("abcdefgh"), 100_000))
	if _, err := c.WriteLTXFile(t.Context(), 2, 3, 4, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, c, 2, 3, 4, 0, 0); !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, want the %d written", len(got), len(data))
	}
}

func readAll(t *testing.T, c litestream.ReplicaClient, level int, minTXID, maxTXID ltx.TXID, offset, size int64) []byte {
	t.Helper()
	rc, err := c.OpenLTXFile(t.Context(), level, minTXID, maxTXID, offset, size)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeOne writes a small file and returns the error, for tests about
// connecting.
func writeOne(t *testing.T, c *sftp.ReplicaClient) error {
	t.Helper()
	_, err := c.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(ltxBytes(t, 1, 1, time.Now(), []byte("x"))))
	return err
}

func TestReplicaClient_UnknownHostKeyRefused(t *testing.T) {
	cfg := testConfig(t)
	empty := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(empty, []byte("# no hosts\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.HostKeyPath = empty
	err := writeOne(t, newClient(t, cfg))
	if err == nil || !strings.Contains(err.Error(), "is unknown") || !strings.Contains(err.Error(), "insecure-ignore-host-key") {
		t.Fatalf("err = %v, want an unknown-host-key refusal that names the opt-out", err)
	}
}

func TestReplicaClient_DefaultKnownHostsMissingRefused(t *testing.T) {
	cfg := testConfig(t)
	cfg.HostKeyPath = ""
	t.Setenv("HOME", t.TempDir()) // no ~/.ssh/known_hosts there
	err := writeOne(t, newClient(t, cfg))
	if err == nil || !strings.Contains(err.Error(), "known_hosts does not exist") {
		t.Fatalf("err = %v, want a refusal naming the missing ~/.ssh/known_hosts", err)
	}
}

func TestReplicaClient_DefaultKnownHostsUsed(t *testing.T) {
	cfg := testConfig(t)
	cfg.HostKeyPath = ""
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	copyFile(t, os.Getenv("SFTP_KNOWN_HOSTS"), filepath.Join(home, ".ssh", "known_hosts"))
	t.Setenv("HOME", home)
	if err := writeOne(t, newClient(t, cfg)); err != nil {
		t.Fatalf("with the server in ~/.ssh/known_hosts: %v", err)
	}
}

func TestReplicaClient_ChangedHostKeyRefused(t *testing.T) {
	cfg := testConfig(t)
	other := newKeyPair(t)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	line := "[" + os.Getenv("SFTP_HOST") + "]:" + os.Getenv("SFTP_PORT") + " " + string(ssh.MarshalAuthorizedKey(other.pub))
	if err := os.WriteFile(kh, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.HostKeyPath = kh
	err := writeOne(t, newClient(t, cfg))
	if err == nil || !strings.Contains(err.Error(), "CHANGED") {
		t.Fatalf("err = %v, want a changed-host-key refusal", err)
	}
}

func TestReplicaClient_PinnedHostKey(t *testing.T) {
	cfg := testConfig(t)
	cfg.HostKeyPath = ""
	cfg.HostKey = serverHostKey(t)
	if err := writeOne(t, newClient(t, cfg)); err != nil {
		t.Fatalf("pinned correct host key: %v", err)
	}

	cfg = testConfig(t)
	cfg.HostKey = string(ssh.MarshalAuthorizedKey(newKeyPair(t).pub)) // wins over HostKeyPath
	err := writeOne(t, newClient(t, cfg))
	if err == nil || !strings.Contains(err.Error(), "host key mismatch") {
		t.Fatalf("pinned wrong host key: err = %v, want a mismatch refusal", err)
	}
}

func TestReplicaClient_InsecureIgnoreHostKey(t *testing.T) {
	cfg := testConfig(t)
	cfg.HostKeyPath = ""
	cfg.InsecureIgnoreHostKey = true
	t.Setenv("HOME", t.TempDir())
	if err := writeOne(t, newClient(t, cfg)); err != nil {
		t.Fatalf("explicit opt-out should connect: %v", err)
	}
}

func TestReplicaClient_WrongKeyRefused(t *testing.T) {
	cfg := testConfig(t)
	cfg.KeyPath = writeKey(t, newKeyPair(t))
	err := writeOne(t, newClient(t, cfg))
	if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("err = %v, want an authentication failure", err)
	}
}

func TestReplicaClient_EncryptedKey(t *testing.T) {
	cfg := testConfig(t)
	const passphrase = "correct horse battery staple"
	encrypted := encryptKey(t, os.Getenv("SFTP_KEY_FILE"), passphrase)
	cfg.KeyPath = encrypted

	cfg.KeyPassphrase = passphrase
	if err := writeOne(t, newClient(t, cfg)); err != nil {
		t.Fatalf("encrypted key with its passphrase: %v", err)
	}

	cfg.KeyPassphrase = ""
	if err := writeOne(t, newClient(t, cfg)); err == nil || !strings.Contains(err.Error(), "set key-passphrase") {
		t.Fatalf("no passphrase: err = %v, want a hint to set key-passphrase", err)
	}

	cfg.KeyPassphrase = "wrong passphrase"
	err := writeOne(t, newClient(t, cfg))
	if err == nil || !strings.Contains(err.Error(), "wrong key-passphrase") {
		t.Fatalf("wrong passphrase: err = %v, want a wrong-passphrase error", err)
	}
	if strings.Contains(err.Error(), "wrong passphrase") {
		t.Fatalf("error leaks the passphrase: %v", err)
	}
}

func TestReplicaClient_PasswordNotInErrors(t *testing.T) {
	cfg := testConfig(t)
	cfg.KeyPath = ""
	cfg.Password = "hunter2-secret" // the test server offers no password login
	err := writeOne(t, newClient(t, cfg))
	if err == nil {
		t.Fatal("password login unexpectedly accepted")
	}
	if strings.Contains(err.Error(), cfg.Password) {
		t.Fatalf("error leaks the password: %v", err)
	}
}

func TestReplicaClient_Reconnect(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, testConfig(t))
	if err := writeOne(t, c); err != nil {
		t.Fatal(err)
	}
	if !c.BreakConnection() {
		t.Fatal("no connection after a successful write")
	}
	// Listing is idempotent, so the lost connection is replaced within
	// the call itself.
	if _, err := litestream.LTXFileInfos(ctx, c, 0, 0, false); err != nil {
		t.Fatalf("no reconnect after a lost connection: %v", err)
	}
	if !c.BreakConnection() {
		t.Fatal("no connection after a successful list")
	}
	if got := readAll(t, c, 0, 1, 1, 0, 0); len(got) != ltx.HeaderSize+1 {
		t.Fatalf("read %d bytes after reconnect, want %d", len(got), ltx.HeaderSize+1)
	}
}

func TestReplicaClient_ContextCancelled(t *testing.T) {
	c := newClient(t, testConfig(t))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(ltxBytes(t, 1, 1, time.Now(), nil))); !errors.Is(err, context.Canceled) {
		t.Fatalf("write with cancelled ctx: err = %v, want context.Canceled", err)
	}
}

// encryptKey copies an unencrypted private key and protects the copy with
// passphrase. OpenSSH's ssh-keygen is preferred: it is what users run,
// and it can use a single KDF round, where the Go encoder always uses 16
// (seconds of CPU under the race detector).
func encryptKey(t *testing.T, src, passphrase string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "id_encrypted")
	copyFile(t, src, dst)
	if keygen, err := exec.LookPath("ssh-keygen"); err == nil {
		out, err := exec.Command(keygen, "-p", "-a", "1", "-P", "", "-N", passphrase, "-f", dst).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh-keygen -p: %v: %s", err, out)
		}
		return dst
	}
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ssh.ParseRawPrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(passphrase))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}

type keyPair struct {
	pub  ssh.PublicKey
	priv ed25519.PrivateKey
}

func newKeyPair(t *testing.T) keyPair {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{pub: sp, priv: priv}
}

// writeKey stores the private key in OpenSSH format and returns its path.
func writeKey(t *testing.T, kp keyPair) string {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(kp.priv, "")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// serverHostKey returns the test server's host key in authorized_keys
// format, taken from its known_hosts file ("[host]:port type base64").
func serverHostKey(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(os.Getenv("SFTP_KNOWN_HOSTS"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, key, _, _, err := ssh.ParseKnownHosts(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(ssh.MarshalAuthorizedKey(key))
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Reads through the read-ahead buffer: small reads that straddle its
// growing fills, large reads that bypass it, and ranges that end inside
// a fill, all return exactly the stored bytes.
func TestReplicaClient_ReadAhead(t *testing.T) {
	c := newClient(t, testConfig(t))
	payload := make([]byte, 3<<20)
	_, _ = rand.Read(payload)
	data := ltxBytes(t, 5, 6, time.Now(), payload)
	if _, err := c.WriteLTXFile(t.Context(), 0, 5, 6, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		offset, size int64
		chunk        int
	}{
		{0, 0, 1000},            // small reads: every fill size up to the maximum
		{0, 0, 3 << 20},         // reads larger than any fill
		{12_345, 0, 4096},       // from an offset to the end
		{1<<20 + 7, 40_000, 99}, // a range ending inside the first fill
		{100, 2<<20 + 3, 5000},  // a range ending inside a later fill
	} {
		want := data[tc.offset:]
		if tc.size > 0 {
			want = want[:tc.size]
		}
		rc, err := c.OpenLTXFile(t.Context(), 0, 5, 6, tc.offset, tc.size)
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		buf := make([]byte, tc.chunk)
		for {
			n, err := rc.Read(buf)
			got = append(got, buf[:n]...)
			if errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("offset %d size %d: read: %v", tc.offset, tc.size, err)
			}
			if len(got) > len(data) {
				t.Fatalf("offset %d size %d: read more than the file holds", tc.offset, tc.size)
			}
		}
		if err := rc.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("offset %d size %d, reads of %d: got %d bytes that differ from the %d stored", tc.offset, tc.size, tc.chunk, len(got), len(want))
		}
	}
}
