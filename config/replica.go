package config

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"

	"github.com/sqlitebackup/litestream"
)

// ReplicaSettings holds every replica key of Litestream v0.5's YAML
// config. The same struct appears at the top level of the config file,
// where its values are defaults inherited by every replica.
type ReplicaSettings struct {
	Type string `yaml:"type"`
	URL  string `yaml:"url"`
	Path string `yaml:"path"`
	Name string `yaml:"name"` // deprecated, accepted and ignored

	SyncInterval       *Duration `yaml:"sync-interval"`
	ValidationInterval *Duration `yaml:"validation-interval"`
	MaxSyncLTXFiles    *int      `yaml:"max-sync-ltx-files"`
	AutoRecover        *bool     `yaml:"auto-recover"`

	// S3 and S3-compatible (also OSS for the subset it uses).
	Bucket               string `yaml:"bucket"`
	Region               string `yaml:"region"`
	Endpoint             string `yaml:"endpoint"`
	AccessKeyID          string `yaml:"access-key-id"`
	SecretAccessKey      string `yaml:"secret-access-key"`
	ForcePathStyle       *bool  `yaml:"force-path-style"`
	SignPayload          *bool  `yaml:"sign-payload"`
	RequireContentMD5    *bool  `yaml:"require-content-md5"`
	SkipVerify           bool   `yaml:"skip-verify"`
	StorageClass         string `yaml:"storage-class"`
	PartSize             *Size  `yaml:"part-size"`
	Concurrency          *int   `yaml:"concurrency"`
	SSECustomerAlgorithm string `yaml:"sse-customer-algorithm"`
	SSECustomerKey       string `yaml:"sse-customer-key"`
	SSECustomerKeyPath   string `yaml:"sse-customer-key-path"`
	SSEKMSKeyID          string `yaml:"sse-kms-key-id"`

	// Azure Blob Storage.
	AccountName string `yaml:"account-name"`
	AccountKey  string `yaml:"account-key"`
	SASToken    string `yaml:"sas-token"`

	// SFTP.
	Host             string `yaml:"host"`
	User             string `yaml:"user"`
	Password         string `yaml:"password"`
	KeyPath          string `yaml:"key-path"`
	KeyPassphrase    string `yaml:"key-passphrase"`
	HostKey          string `yaml:"host-key"`
	HostKeyPath      string `yaml:"host-key-path"`
	InsecureHostKey  bool   `yaml:"insecure-ignore-host-key"`
	ConcurrentWrites *bool  `yaml:"concurrent-writes"`

	// WebDAV.
	WebDAVURL      string `yaml:"webdav-url"`
	WebDAVUsername string `yaml:"webdav-username"`
	WebDAVPassword string `yaml:"webdav-password"`

	// NATS JetStream object store.
	JWT           string    `yaml:"jwt"`
	Seed          string    `yaml:"seed"`
	Creds         string    `yaml:"creds"`
	NKey          string    `yaml:"nkey"`
	Username      string    `yaml:"username"`
	Token         string    `yaml:"token"`
	TLS           bool      `yaml:"tls"`
	RootCAs       []string  `yaml:"root-cas"`
	ClientCert    string    `yaml:"client-cert"`
	ClientKey     string    `yaml:"client-key"`
	MaxReconnects *int      `yaml:"max-reconnects"`
	ReconnectWait *Duration `yaml:"reconnect-wait"`
	Timeout       *Duration `yaml:"timeout"`

	// Client-side encryption (v0.3 keys).
	Age *AgeSettings `yaml:"age"`

	// Single-writer lease (not in upstream).
	Lease *LeaseSettings `yaml:"lease"`
}

// LeaseSettings configure the single-writer lease a replicate process
// takes on its replica before writing (backends that support one).
type LeaseSettings struct {
	TTL  *Duration `yaml:"ttl"`  // how long the lease lasts unrenewed; default 30s
	Wait *bool     `yaml:"wait"` // wait for another holder (default) or exit with an error
}

// AgeSettings are the v0.3 age encryption keys.
type AgeSettings struct {
	Identities []string `yaml:"identities"`
	Recipients []string `yaml:"recipients"`
}

// ReplicaClientFactory builds a client for one backend from the merged
// settings of a replica. u is the parsed `url:` (or the URL given on the
// command line) and is nil when the replica is configured by keys only.
type ReplicaClientFactory func(s *ReplicaSettings, u *url.URL) (litestream.ReplicaClient, error)

var (
	factoriesMu sync.RWMutex
	factories   = map[string]ReplicaClientFactory{}
)

// RegisterReplicaClientFactory makes a backend available under a type
// name, which is also its URL scheme (plus any aliases registered
// separately, e.g. "webdavs"). Backends register from an init function in
// this package (one file per backend: replica_<type>.go).
func RegisterReplicaClientFactory(typ string, fn ReplicaClientFactory) {
	factoriesMu.Lock()
	defer factoriesMu.Unlock()
	factories[typ] = fn
}

// ReplicaTypes lists the registered backend names.
func ReplicaTypes() []string {
	factoriesMu.RLock()
	defer factoriesMu.RUnlock()
	a := make([]string, 0, len(factories))
	for k := range factories {
		a = append(a, k)
	}
	sort.Strings(a)
	return a
}

// NewReplicaClient builds the client described by s. The type comes from
// the URL scheme when a URL is set, else from `type:`, else "file".
func NewReplicaClient(s *ReplicaSettings) (litestream.ReplicaClient, error) {
	var u *url.URL
	typ := s.Type
	if s.URL != "" {
		var err error
		if u, err = ParseReplicaURL(s.URL); err != nil {
			return nil, err
		}
		typ = u.Scheme
	}
	if typ == "" {
		typ = "file"
	}
	factoriesMu.RLock()
	fn := factories[typ]
	factoriesMu.RUnlock()
	if fn == nil {
		return nil, fmt.Errorf("unknown replica type %q (known: %s)", typ, strings.Join(ReplicaTypes(), ", "))
	}
	c, err := fn(s, u)
	if err != nil {
		return nil, fmt.Errorf("%s replica: %w", typ, err)
	}
	return wrapAge(c, s.Age)
}

// IsURL reports whether s looks like scheme://...
func IsURL(s string) bool {
	i := strings.Index(s, "://")
	if i <= 0 {
		return false
	}
	for _, r := range s[:i] {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// ParseReplicaURL parses a replica URL and checks it has a scheme. Error
// messages never repeat a password embedded in the URL. S3 access-point
// ARNs (s3://arn:aws:s3:REGION:ACCOUNT:accesspoint/NAME/path), which are
// not valid URL hosts, come back with the ARN and path in Opaque for the
// s3 factory to parse.
func ParseReplicaURL(s string) (*url.URL, error) {
	if !IsURL(s) {
		return nil, fmt.Errorf("invalid replica URL %q: expected scheme://... (e.g. file:///var/backups/app)", redactURL(s))
	}
	scheme, rest, _ := strings.Cut(s, "://")
	if strings.EqualFold(scheme, "s3") && strings.HasPrefix(rest, "arn:") {
		return &url.URL{Scheme: "s3", Opaque: rest}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error repeats the whole URL, password included
		}
		return nil, fmt.Errorf("invalid replica URL %q: %v", redactURL(s), err)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	return u, nil
}

// redactURL hides the password of scheme://user:password@host/... .
func redactURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		return s
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	if !hasPass {
		return s
	}
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}
