// Package oss implements a replica in Alibaba Cloud Object Storage
// Service (OSS). It speaks OSS's S3-compatible API through the s3 package,
// which is how Alibaba documents access with the AWS SDKs, so it shares
// that backend's retries, multipart uploads, batch deletes and metadata.
//
// The key layout is Litestream v0.5's for OSS, the same as for S3:
//
//	<path>/<level as 4 lowercase hex digits>/<min>-<max>.ltx
//
// and each object carries its LTX timestamp in the user metadata key
// litestream-timestamp (x-oss-meta-litestream-timestamp in OSS's own API,
// which is where Litestream's OSS SDK writes it), so replicas written by
// either tool restore with the other.
package oss

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/s3"
)

// ReplicaClientType is the backend name used in config and URLs.
const ReplicaClientType = "oss"

// DefaultRegion is Litestream's default OSS region.
const DefaultRegion = "cn-hangzhou"

// Config describes one OSS replica. Zero values select the defaults.
type Config struct {
	Bucket string
	Path   string // key prefix, without leading or trailing slash

	Region string // default DefaultRegion
	// Endpoint overrides the region's endpoint: an OSS host (its native
	// oss-REGION.aliyuncs.com form is mapped to the S3-compatible
	// s3.oss-REGION.aliyuncs.com), or any URL for testing.
	Endpoint string

	// Static credentials. When empty: OSS_ACCESS_KEY_ID and
	// OSS_ACCESS_KEY_SECRET (as Alibaba's SDK reads them), then
	// LITESTREAM_ACCESS_KEY_ID and LITESTREAM_SECRET_ACCESS_KEY.
	AccessKeyID     string
	SecretAccessKey string

	ForcePathStyle *bool // default false on aliyuncs.com, true elsewhere
	SkipVerify     bool
	PartSize       int64 // bytes, default s3.DefaultPartSize
	Concurrency    int   // parts in flight, default s3.DefaultConcurrency
}

// ReplicaClient is an s3.ReplicaClient that reports itself as "oss".
//
// It does not offer the single-writer lease: the S3 lease relies on
// conditional writes (If-None-Match, If-Match), which OSS's S3-compatible
// API is not documented to honour, and a lease that silently fails to
// exclude is worse than none.
type ReplicaClient struct {
	s3 *s3.ReplicaClient // not embedded: that would promote its lease methods
}

var _ litestream.ReplicaClient = (*ReplicaClient)(nil)

// NewReplicaClient checks cfg and prepares a client; it does not touch
// the network.
func NewReplicaClient(cfg Config) (*ReplicaClient, error) {
	s3cfg, err := cfg.s3Config()
	if err != nil {
		return nil, err
	}
	c, err := s3.NewReplicaClient(s3cfg)
	if err != nil {
		return nil, err
	}
	return &ReplicaClient{s3: c}, nil
}

// Type returns "oss".
func (c *ReplicaClient) Type() string { return ReplicaClientType }

// Bucket returns the bucket name.
func (c *ReplicaClient) Bucket() string { return c.s3.Bucket() }

// Path returns the key prefix, without leading or trailing slash.
func (c *ReplicaClient) Path() string { return c.s3.Path() }

// Endpoint returns the URL of the S3-compatible API in use.
func (c *ReplicaClient) Endpoint() string { return c.s3.Endpoint() }

// LTXFiles lists a level's files from seek on, lazily, page by page.
func (c *ReplicaClient) LTXFiles(ctx context.Context, level int, seek ltx.TXID, useMetadata bool) (ltx.FileIterator, error) {
	return c.s3.LTXFiles(ctx, level, seek, useMetadata)
}

// OpenLTXFile reads a file from offset; size 0 reads to the end.
func (c *ReplicaClient) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	return c.s3.OpenLTXFile(ctx, level, minTXID, maxTXID, offset, size)
}

// WriteLTXFile stores a file, in parts when it is larger than PartSize.
func (c *ReplicaClient) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	return c.s3.WriteLTXFile(ctx, level, minTXID, maxTXID, r)
}

// DeleteLTXFiles deletes files in batches of 1000.
func (c *ReplicaClient) DeleteLTXFiles(ctx context.Context, a []*ltx.FileInfo) error {
	return c.s3.DeleteLTXFiles(ctx, a)
}

// DeleteAll deletes every object under the prefix.
func (c *ReplicaClient) DeleteAll(ctx context.Context) error { return c.s3.DeleteAll(ctx) }

func (cfg Config) s3Config() (s3.Config, error) {
	if cfg.Bucket == "" {
		return s3.Config{}, errors.New("oss: bucket required")
	}
	region := cfg.Region
	if region == "" {
		region = DefaultRegion
	}
	endpoint, err := resolveEndpoint(cfg.Endpoint, region)
	if err != nil {
		return s3.Config{}, err
	}
	pathStyle := cfg.ForcePathStyle
	if pathStyle == nil && isAliyunHost(endpoint) {
		virtualHosted := false // OSS serves buckets as BUCKET.ENDPOINT only
		pathStyle = &virtualHosted
	}
	id, secret := cfg.AccessKeyID, cfg.SecretAccessKey
	if id == "" && secret == "" {
		id, secret = os.Getenv("OSS_ACCESS_KEY_ID"), os.Getenv("OSS_ACCESS_KEY_SECRET")
	}
	return s3.Config{
		Backend:         ReplicaClientType,
		Bucket:          cfg.Bucket,
		Path:            strings.Trim(cfg.Path, "/"),
		Region:          region,
		Endpoint:        endpoint,
		AccessKeyID:     id,
		SecretAccessKey: secret,
		ForcePathStyle:  pathStyle,
		SkipVerify:      cfg.SkipVerify,
		PartSize:        cfg.PartSize,
		Concurrency:     cfg.Concurrency,
	}, nil
}

// Endpoint returns the S3-compatible endpoint of an OSS region, public
// or internal (reachable only from Alibaba Cloud's network in that region).
func Endpoint(region string, internal bool) string {
	if internal {
		return "https://s3.oss-" + region + "-internal.aliyuncs.com"
	}
	return "https://s3.oss-" + region + ".aliyuncs.com"
}

// nativeHostRegex matches OSS's own endpoint host, oss-REGION[-internal].aliyuncs.com.
var nativeHostRegex = regexp.MustCompile(`^oss-([a-z0-9-]+?)(-internal)?\.aliyuncs\.com$`)

// resolveEndpoint turns the configured endpoint (or none) into the URL of
// the S3-compatible API.
func resolveEndpoint(endpoint, region string) (string, error) {
	if endpoint == "" {
		return Endpoint(region, false), nil
	}
	raw := endpoint
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("oss: invalid endpoint %q", endpoint)
	}
	if m := nativeHostRegex.FindStringSubmatch(strings.ToLower(u.Hostname())); m != nil {
		u.Host = "s3." + u.Host
	}
	return u.String(), nil
}

func isAliyunHost(endpoint string) bool {
	u, err := url.Parse(endpoint)
	return err == nil && strings.HasSuffix(strings.ToLower(u.Hostname()), ".aliyuncs.com")
}

// bucketHostRegex matches BUCKET.oss-REGION[-internal].aliyuncs.com, with
// or without the s3. of the S3-compatible form.
var bucketHostRegex = regexp.MustCompile(`^([a-z0-9][a-z0-9-]*)\.(?:s3\.)?oss-([a-z0-9-]+?)(-internal)?\.aliyuncs\.com$`)

// ParseHost interprets the host of an oss:// URL: a bare bucket name, or
// BUCKET.oss-REGION[-internal].aliyuncs.com, which also gives the region
// and the endpoint.
func ParseHost(host string) (bucket, region, endpoint string, err error) {
	h := strings.ToLower(host)
	if m := bucketHostRegex.FindStringSubmatch(h); m != nil {
		return m[1], m[2], Endpoint(m[2], m[3] != ""), nil
	}
	if h == "" || strings.ContainsAny(h, ".:") {
		return "", "", "", fmt.Errorf("oss URL host %q: expected BUCKET or BUCKET.oss-REGION.aliyuncs.com", host)
	}
	return host, "", "", nil
}
