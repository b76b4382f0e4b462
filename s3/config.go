package s3

import (
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Defaults, the same as Litestream v0.5 unless noted.
const (
	// DefaultRegion is used with a custom endpoint and no region, and as
	// the fallback when a bucket's region cannot be discovered.
	DefaultRegion = "us-east-1"

	// MinPartSize is the smallest multipart part S3 accepts (except the
	// last part), and the default part size.
	MinPartSize = 5 << 20
	// MaxPartSize is the largest part S3 accepts.
	MaxPartSize = 5 << 30
	// DefaultPartSize is the default multipart part size; files smaller
	// than the part size are sent with a single PutObject.
	DefaultPartSize = MinPartSize

	// DefaultConcurrency is the default number of parts uploaded at once.
	DefaultConcurrency = 5
	// R2Concurrency is the default for Cloudflare R2, which rejects more
	// than 2-3 concurrent uploads.
	R2Concurrency = 2

	// DefaultMetadataConcurrency bounds the parallel HeadObject calls
	// made to read timestamps when listing with useMetadata.
	DefaultMetadataConcurrency = 50

	// DefaultMaxAttempts bounds every request, retries included.
	DefaultMaxAttempts = 10
	// DefaultMaxBackoff caps the delay between two attempts.
	DefaultMaxBackoff = 20 * time.Second
)

// Config describes one S3 replica. The zero value of each optional field
// selects the default; pointers distinguish "unset" from false.
type Config struct {
	// Backend names the store in errors and is what Type returns:
	// "s3" when empty. Set by backends built on this one (oss).
	Backend string

	Bucket string // bucket name or access-point ARN
	Path   string // key prefix, without leading or trailing slash

	Region   string // empty: see NewReplicaClient
	Endpoint string // empty for AWS; a scheme is added when missing

	// Static credentials. When empty, LITESTREAM_ACCESS_KEY_ID and
	// LITESTREAM_SECRET_ACCESS_KEY are used, then the AWS default chain.
	AccessKeyID     string
	SecretAccessKey string

	ForcePathStyle    *bool // default: true with an endpoint, else false
	SignPayload       *bool // default true; false sends UNSIGNED-PAYLOAD
	RequireContentMD5 *bool // default true (false for Tigris): Content-MD5 on DeleteObjects
	SkipVerify        bool  // disable TLS certificate verification

	StorageClass string
	PartSize     int64 // bytes, default DefaultPartSize
	Concurrency  int   // parts in flight, default DefaultConcurrency (R2: 2)

	SSECustomerAlgorithm string // AES256 (the only one S3 supports)
	SSECustomerKey       string // base64 of 32 bytes
	SSECustomerKeyPath   string // file holding SSECustomerKey
	SSEKMSKeyID          string // mutually exclusive with SSE-C

	MetadataConcurrency int           // default DefaultMetadataConcurrency
	MaxAttempts         int           // default DefaultMaxAttempts
	MaxBackoff          time.Duration // default DefaultMaxBackoff
}

// sseCustomer is a validated SSE-C key, ready for the request headers.
type sseCustomer struct {
	algorithm string
	key       string // base64
	keyMD5    string // base64 of the MD5 of the raw key
}

// resolved is a Config with every default applied and checked.
type resolved struct {
	Config
	endpoint       string // with scheme, or empty for AWS
	forcePathStyle bool
	signPayload    bool
	contentMD5     bool
	fullChecksums  bool // SDK default request/response checksums (AWS only)
	provider       provider
	sse            *sseCustomer
}

func resolveConfig(cfg Config) (*resolved, error) {
	r := &resolved{Config: cfg}
	r.Path = strings.Trim(cfg.Path, "/")
	if r.Bucket == "" {
		return nil, errors.New("bucket required")
	}
	if cfg.Endpoint != "" {
		ep, err := NormalizeEndpoint(cfg.Endpoint)
		if err != nil {
			return nil, err
		}
		r.endpoint = ep
	}
	r.provider = detectProvider(r.endpoint)
	r.fullChecksums = r.endpoint == ""
	r.forcePathStyle = boolOr(cfg.ForcePathStyle, r.endpoint != "")
	r.signPayload = boolOr(cfg.SignPayload, true)
	r.contentMD5 = boolOr(cfg.RequireContentMD5, r.provider != providerTigris)
	if err := r.resolveSizes(); err != nil {
		return nil, err
	}
	return r, r.resolveEncryption()
}

func (r *resolved) resolveSizes() error {
	switch {
	case r.PartSize == 0:
		r.PartSize = DefaultPartSize
	case r.PartSize < MinPartSize:
		return fmt.Errorf("part-size %d is below the S3 minimum of %d bytes (5 MiB)", r.PartSize, MinPartSize)
	case r.PartSize > MaxPartSize:
		return fmt.Errorf("part-size %d is above the S3 maximum of %d bytes (5 GiB)", r.PartSize, int64(MaxPartSize))
	}
	switch {
	case r.Concurrency < 0:
		return fmt.Errorf("concurrency must be positive, got %d", r.Concurrency)
	case r.Concurrency == 0 && r.provider == providerR2:
		r.Concurrency = R2Concurrency
	case r.Concurrency == 0:
		r.Concurrency = DefaultConcurrency
	}
	if r.MetadataConcurrency <= 0 {
		r.MetadataConcurrency = DefaultMetadataConcurrency
	}
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = DefaultMaxAttempts
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = DefaultMaxBackoff
	}
	return nil
}

func (r *resolved) resolveEncryption() error {
	sse, err := loadSSECustomer(r.SSECustomerAlgorithm, r.SSECustomerKey, r.SSECustomerKeyPath)
	if err != nil || sse == nil {
		return err
	}
	if r.SSEKMSKeyID != "" {
		return errors.New("sse-kms-key-id and sse-customer-key are mutually exclusive")
	}
	// The key travels in a request header: never send it in clear text
	// over the network.
	if strings.HasPrefix(r.endpoint, "http://") && !isLoopbackEndpoint(r.endpoint) {
		return fmt.Errorf("SSE-C requires an https endpoint (got %s)", r.endpoint)
	}
	r.sse = sse
	return nil
}

// loadSSECustomer validates an SSE-C key given inline or in a file. The
// key itself never appears in an error message.
func loadSSECustomer(algorithm, key, keyPath string) (*sseCustomer, error) {
	if key != "" && keyPath != "" {
		return nil, errors.New("sse-customer-key and sse-customer-key-path are mutually exclusive")
	}
	if keyPath != "" {
		b, err := os.ReadFile(expandHome(keyPath))
		if err != nil {
			return nil, fmt.Errorf("read sse-customer-key-path: %w", err)
		}
		key = strings.TrimSpace(string(b))
		if key == "" {
			return nil, fmt.Errorf("sse-customer-key-path %s is empty", keyPath)
		}
	}
	if key == "" {
		if algorithm != "" {
			return nil, errors.New("sse-customer-algorithm set without sse-customer-key")
		}
		return nil, nil
	}
	if algorithm == "" {
		algorithm = "AES256"
	}
	if algorithm != "AES256" {
		return nil, fmt.Errorf("sse-customer-algorithm %q not supported (only AES256)", algorithm)
	}
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return nil, errors.New("sse-customer-key is not valid base64")
	}
	if len(raw) != 32 {
		return nil, fmt.Errorf("sse-customer-key must decode to 32 bytes, got %d", len(raw))
	}
	sum := md5.Sum(raw)
	return &sseCustomer{algorithm: algorithm, key: key, keyMD5: base64.StdEncoding.EncodeToString(sum[:])}, nil
}

func expandHome(p string) string {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return p
	}
	return filepath.Join(home, strings.TrimPrefix(p, "~"))
}

func boolOr(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}

// NormalizeEndpoint adds a scheme to an endpoint given without one:
// http for localhost, *.local, *.localhost, loopback and private
// addresses, https for everything else.
func NormalizeEndpoint(endpoint string) (string, error) {
	ep := strings.TrimSpace(endpoint)
	if !strings.Contains(ep, "://") {
		host := ep
		if i := strings.IndexByte(host, '/'); i >= 0 {
			host = host[:i]
		}
		scheme := "https://"
		if isLocalHost(hostOnly(host)) {
			scheme = "http://"
		}
		ep = scheme + ep
	}
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("invalid endpoint %q: expected [http[s]://]host[:port]", endpoint)
	}
	return strings.TrimRight(ep, "/"), nil
}

// hostOnly strips a port and IPv6 brackets.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

func isLocalHost(host string) bool {
	host = strings.ToLower(host)
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || strings.HasSuffix(host, ".local") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || ip.IsPrivate())
}

func isLoopbackEndpoint(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	host := strings.ToLower(u.Hostname())
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
