package netfault_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/url"
	"os"
	"path"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/config"
)

// backend is one storage backend of the test servers (see
// scripts/testinfra), reached either directly or through a proxy.
type backend struct {
	name string
	vars []string // variables that must be set, as start-servers.sh writes them

	// upstream is the server's host:port, for a proxy in front of it.
	upstream func() string
	// settings describes a replica rooted at root (unique per test) on
	// the server reached at addr (the server itself or a proxy).
	settings func(t *testing.T, addr, root string) *config.ReplicaSettings
	// prepare creates what the replica needs on the server before use
	// (a NATS bucket) and returns the root to use; nil: nothing to do.
	prepare func(t *testing.T, root string) string
	// removeRoot deletes what DeleteAll leaves behind (an SFTP directory).
	removeRoot func(root string)
	// streamsPerConn is how many of a restore's concurrent file streams
	// share one connection: HTTP backends open one each (1); SFTP
	// multiplexes all of them over its SSH connection.
	streamsPerConn int
}

// backends lists every backend the suite knows, in the order tests run.
var backends = []backend{s3Backend, sftpBackend, webdavBackend, gsBackend, absBackend, natsBackend}

func backendNamed(name string) backend {
	for _, b := range backends {
		if b.name == name {
			return b
		}
	}
	panic("unknown backend " + name)
}

// require skips t unless every variable of b is set.
func (b backend) require(t *testing.T) {
	t.Helper()
	var missing []string
	for _, v := range b.vars {
		if os.Getenv(v) == "" {
			missing = append(missing, v)
		}
	}
	if len(missing) > 0 {
		t.Skipf("%s test server not configured: %s unset (start it with scripts/testinfra/start-servers.sh, or run scripts/test)",
			b.name, strings.Join(missing, ", "))
	}
}

// newClient builds a client for a fresh replica root through the config
// package, exactly as the CLI would, talking to addr ("" = the server
// itself). The replica is deleted when the test ends.
func (b backend) newClient(t *testing.T, addr string) litestream.ReplicaClient {
	t.Helper()
	b.require(t)
	root := "netfault-" + randomHex(t, 6)
	if b.prepare != nil {
		root = b.prepare(t, root)
	}
	if addr == "" && b.upstream != nil {
		addr = b.upstream()
	}
	c, err := config.NewReplicaClient(b.settings(t, addr, root))
	if err != nil {
		t.Fatalf("%s client: %v", b.name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := c.DeleteAll(ctx); err != nil {
			t.Logf("%s: deleting the test replica: %v", b.name, err)
		}
		if cl, ok := c.(io.Closer); ok {
			_ = cl.Close()
		}
		if b.removeRoot != nil {
			b.removeRoot(root)
		}
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

// hostOf returns host:port of an http(s)/nats URL in the variable name.
func hostOf(name string) func() string {
	return func() string {
		u, err := url.Parse(os.Getenv(name))
		if err != nil {
			return ""
		}
		return u.Host
	}
}

var s3Backend = backend{
	name:           "s3",
	streamsPerConn: 1,
	vars:           []string{"S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY", "S3_BUCKET", "MINIO_ENDPOINT"},
	upstream:       hostOf("MINIO_ENDPOINT"),
	settings: func(t *testing.T, addr, root string) *config.ReplicaSettings {
		pathStyle := true
		return &config.ReplicaSettings{
			URL:             "s3://" + os.Getenv("S3_BUCKET") + "/" + root,
			Endpoint:        "http://" + addr,
			Region:          os.Getenv("S3_REGION"),
			AccessKeyID:     os.Getenv("S3_ACCESS_KEY_ID"),
			SecretAccessKey: os.Getenv("S3_SECRET_ACCESS_KEY"),
			ForcePathStyle:  &pathStyle,
		}
	},
}

var sftpBackend = backend{
	name:           "sftp",
	streamsPerConn: 4, // the fault cases restore four files at once
	vars:           []string{"SFTP_ADDR", "SFTP_USER", "SFTP_KEY_FILE", "SFTP_KNOWN_HOSTS", "SFTP_ROOT"},
	upstream:       func() string { return os.Getenv("SFTP_ADDR") },
	settings: func(t *testing.T, addr, root string) *config.ReplicaSettings {
		s := &config.ReplicaSettings{
			URL:     "sftp://" + os.Getenv("SFTP_USER") + "@" + addr + path.Join(os.Getenv("SFTP_ROOT"), root),
			KeyPath: os.Getenv("SFTP_KEY_FILE"),
		}
		if addr == os.Getenv("SFTP_ADDR") {
			s.HostKeyPath = os.Getenv("SFTP_KNOWN_HOSTS")
		} else {
			// known_hosts names the server's own address; through a
			// proxy the same key is pinned instead.
			s.HostKey = serverHostKey(t)
		}
		return s
	},
	removeRoot: func(root string) { _ = os.RemoveAll(path.Join(os.Getenv("SFTP_ROOT"), root)) },
}

// serverHostKey returns the SFTP server's host key ("type base64") from
// SFTP_KNOWN_HOSTS.
func serverHostKey(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(os.Getenv("SFTP_KNOWN_HOSTS"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && !strings.HasPrefix(f[0], "#") {
			return f[1] + " " + f[2]
		}
	}
	t.Fatalf("no host key in %s", os.Getenv("SFTP_KNOWN_HOSTS"))
	return ""
}

var webdavBackend = backend{
	name:           "webdav",
	streamsPerConn: 1,
	vars:           []string{"WEBDAV_URL", "WEBDAV_USER", "WEBDAV_PASSWORD"},
	upstream:       hostOf("WEBDAV_URL"),
	settings: func(t *testing.T, addr, root string) *config.ReplicaSettings {
		return &config.ReplicaSettings{
			Type:           "webdav",
			WebDAVURL:      "http://" + addr,
			WebDAVUsername: os.Getenv("WEBDAV_USER"),
			WebDAVPassword: os.Getenv("WEBDAV_PASSWORD"),
			Path:           "/" + root,
		}
	},
}

// gsBackend talks to fake-gcs-server through STORAGE_EMULATOR_HOST, which
// the GCS SDK reads itself, so it is only used without a proxy.
var gsBackend = backend{
	name: "gs",
	vars: []string{"STORAGE_EMULATOR_HOST", "GCS_BUCKET"},
	settings: func(t *testing.T, _, root string) *config.ReplicaSettings {
		return &config.ReplicaSettings{URL: "gs://" + os.Getenv("GCS_BUCKET") + "/" + root}
	},
}

var absBackend = backend{
	name:     "abs",
	vars:     []string{"AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY", "AZURE_BLOB_ENDPOINT", "AZURE_CONTAINER"},
	upstream: hostOf("AZURE_BLOB_ENDPOINT"),
	settings: func(t *testing.T, addr, root string) *config.ReplicaSettings {
		u, _ := url.Parse(os.Getenv("AZURE_BLOB_ENDPOINT"))
		u.Host = addr
		return &config.ReplicaSettings{
			URL:         "abs://" + os.Getenv("AZURE_STORAGE_ACCOUNT") + "@" + os.Getenv("AZURE_CONTAINER") + "/" + root,
			Endpoint:    u.String(),
			AccountName: os.Getenv("AZURE_STORAGE_ACCOUNT"),
			AccountKey:  os.Getenv("AZURE_STORAGE_KEY"),
		}
	},
}

// natsBackend uses an object store bucket of its own per test (root is
// the bucket name), created by prepare and deleted afterwards.
var natsBackend = backend{
	name:     "nats",
	vars:     []string{"NATS_URL", "NATS_USER", "NATS_PASSWORD"},
	upstream: hostOf("NATS_URL"),
	settings: func(t *testing.T, addr, root string) *config.ReplicaSettings {
		return &config.ReplicaSettings{
			URL:      "nats://" + addr + "/" + root,
			Username: os.Getenv("NATS_USER"),
			Password: os.Getenv("NATS_PASSWORD"),
		}
	},
	prepare: func(t *testing.T, root string) string {
		nc, err := natsgo.Connect(os.Getenv("NATS_URL"), natsgo.UserInfo(os.Getenv("NATS_USER"), os.Getenv("NATS_PASSWORD")))
		if err != nil {
			t.Fatalf("nats: %v", err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			nc.Close()
			t.Fatalf("nats: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: root}); err != nil {
			nc.Close()
			t.Fatalf("nats: create bucket %s: %v", root, err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = js.DeleteObjectStore(ctx, root)
			nc.Close()
		})
		return root
	},
}
