package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/s3"
)

func init() { RegisterReplicaClientFactory(s3.ReplicaClientType, newS3ReplicaClient) }

func newS3ReplicaClient(s *ReplicaSettings, u *url.URL) (litestream.ReplicaClient, error) {
	cfg, err := s3ConfigFromSettings(s, u)
	if err != nil {
		return nil, err
	}
	return s3.NewReplicaClient(cfg)
}

// s3ConfigFromSettings maps the YAML keys and the URL to an s3.Config.
// Discrete keys (region, endpoint, credentials, ...) override what the
// URL says; bucket and path come from one or the other, never both.
func s3ConfigFromSettings(s *ReplicaSettings, u *url.URL) (s3.Config, error) {
	cfg := s3.Config{
		Bucket:               s.Bucket,
		Path:                 strings.Trim(s.Path, "/"),
		AccessKeyID:          s.AccessKeyID,
		SecretAccessKey:      s.SecretAccessKey,
		StorageClass:         s.StorageClass,
		SSECustomerAlgorithm: s.SSECustomerAlgorithm,
		SSECustomerKey:       s.SSECustomerKey,
		SSECustomerKeyPath:   s.SSECustomerKeyPath,
		SSEKMSKeyID:          s.SSEKMSKeyID,
	}
	// The provider's addressing default for an endpoint derived from the
	// URL host; it applies only while that endpoint is the one used.
	var hostEndpoint string
	var hostPathStyle *bool
	if u != nil || s.URL != "" {
		if s.Bucket != "" || s.Path != "" {
			return s3.Config{}, errors.New("cannot specify url together with bucket or path")
		}
		var err error
		if hostEndpoint, hostPathStyle, err = applyS3URL(&cfg, s.URL, u); err != nil {
			return s3.Config{}, err
		}
	}
	if err := applyS3Keys(&cfg, s); err != nil {
		return s3.Config{}, err
	}
	if cfg.ForcePathStyle == nil && cfg.Endpoint != "" && cfg.Endpoint == hostEndpoint {
		cfg.ForcePathStyle = hostPathStyle
	}
	if cfg.Bucket == "" {
		return s3.Config{}, errors.New("bucket required")
	}
	return cfg, nil
}

// applyS3Keys lets the discrete YAML keys override URL-derived values.
func applyS3Keys(cfg *s3.Config, s *ReplicaSettings) error {
	if s.Region != "" {
		cfg.Region = s.Region
	}
	if s.Endpoint != "" {
		cfg.Endpoint = s.Endpoint
	}
	if s.ForcePathStyle != nil {
		cfg.ForcePathStyle = s.ForcePathStyle
	}
	if s.SignPayload != nil {
		cfg.SignPayload = s.SignPayload
	}
	if s.RequireContentMD5 != nil {
		cfg.RequireContentMD5 = s.RequireContentMD5
	}
	cfg.SkipVerify = cfg.SkipVerify || s.SkipVerify
	return applyUploadKeys(s, &cfg.PartSize, &cfg.Concurrency)
}

// applyUploadKeys checks and applies part-size and concurrency, shared by
// the S3 and OSS backends.
func applyUploadKeys(s *ReplicaSettings, partSize *int64, concurrency *int) error {
	if s.PartSize != nil {
		if *s.PartSize <= 0 {
			return fmt.Errorf("part-size must be positive, got %d", int64(*s.PartSize))
		}
		*partSize = int64(*s.PartSize)
	}
	if s.Concurrency != nil {
		if *s.Concurrency <= 0 {
			return fmt.Errorf("concurrency must be positive, got %d", *s.Concurrency)
		}
		*concurrency = *s.Concurrency
	}
	return nil
}

// applyS3URL reads s3://bucket/path?query, s3://bucket.host:port/path,
// the provider host forms and s3://arn:...:accesspoint/NAME/path. It
// returns the endpoint derived from the host, if any, with the
// provider's path-style default.
func applyS3URL(cfg *s3.Config, raw string, u *url.URL) (hostEndpoint string, hostPathStyle *bool, err error) {
	rest, query, _ := strings.Cut(strings.TrimPrefix(raw, "s3://"), "?")
	if arn, region, prefix, ok := s3.ParseAccessPointARN(rest); ok {
		cfg.Bucket, cfg.Region, cfg.Path = arn, region, prefix
		q, err := url.ParseQuery(query)
		if err != nil {
			return "", nil, fmt.Errorf("invalid query in s3 URL: %w", err)
		}
		return "", nil, applyS3Query(cfg, q)
	}
	if u == nil {
		if u, err = ParseReplicaURL(raw); err != nil {
			return "", nil, err
		}
	}
	host, err := s3.ParseHost(u.Host)
	if err != nil {
		return "", nil, err
	}
	cfg.Bucket, cfg.Region, cfg.Endpoint = host.Bucket, host.Region, host.Endpoint
	cfg.Path = strings.TrimPrefix(path.Clean("/"+u.Path), "/")
	if err := applyS3Query(cfg, u.Query()); err != nil {
		return "", nil, err
	}
	// Litestream's URL form also honours LITESTREAM_S3_ENDPOINT.
	if cfg.Endpoint == "" {
		cfg.Endpoint = os.Getenv("LITESTREAM_S3_ENDPOINT")
	}
	return host.Endpoint, host.ForcePathStyle, nil
}

// s3QueryParam names every accepted query parameter, camelCase first,
// then its hyphenated alias.
type s3QueryParam struct {
	names []string
	apply func(cfg *s3.Config, v string) error
}

var s3QueryParams = []s3QueryParam{
	{[]string{"endpoint"}, func(c *s3.Config, v string) error { c.Endpoint = v; return nil }},
	{[]string{"region"}, func(c *s3.Config, v string) error { c.Region = v; return nil }},
	{[]string{"forcePathStyle", "force-path-style"}, boolParam(func(c *s3.Config, b bool) { c.ForcePathStyle = &b })},
	{[]string{"skipVerify", "skip-verify"}, boolParam(func(c *s3.Config, b bool) { c.SkipVerify = b })},
	{[]string{"signPayload", "sign-payload"}, boolParam(func(c *s3.Config, b bool) { c.SignPayload = &b })},
	{[]string{"requireContentMD5", "require-content-md5"}, boolParam(func(c *s3.Config, b bool) { c.RequireContentMD5 = &b })},
	{[]string{"storageClass", "storage-class"}, func(c *s3.Config, v string) error { c.StorageClass = v; return nil }},
	{[]string{"partSize", "part-size"}, func(c *s3.Config, v string) error {
		n, err := ParseSize(v)
		if err != nil || n <= 0 {
			return fmt.Errorf("partSize must be a positive size, got %q", v)
		}
		c.PartSize = n
		return nil
	}},
	{[]string{"concurrency"}, func(c *s3.Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return fmt.Errorf("concurrency must be a positive integer, got %q", v)
		}
		c.Concurrency = n
		return nil
	}},
	{[]string{"sseCustomerAlgorithm", "sse-customer-algorithm"}, func(c *s3.Config, v string) error { c.SSECustomerAlgorithm = v; return nil }},
	{[]string{"sseCustomerKey", "sse-customer-key"}, func(c *s3.Config, v string) error { c.SSECustomerKey = v; return nil }},
	{[]string{"sseCustomerKeyPath", "sse-customer-key-path"}, func(c *s3.Config, v string) error { c.SSECustomerKeyPath = v; return nil }},
	{[]string{"sseKmsKeyId", "sse-kms-key-id"}, func(c *s3.Config, v string) error { c.SSEKMSKeyID = v; return nil }},
	// Accepted for compatibility; the MD5 is always computed from the key.
	{[]string{"sseCustomerKeyMD5", "sse-customer-key-md5"}, func(*s3.Config, string) error { return nil }},
}

func boolParam(set func(*s3.Config, bool)) func(*s3.Config, string) error {
	return func(c *s3.Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("expected true or false, got %q", v)
		}
		set(c, b)
		return nil
	}
}

// applyS3Query applies the known query parameters; others are ignored,
// as Litestream does.
func applyS3Query(cfg *s3.Config, q url.Values) error {
	for _, p := range s3QueryParams {
		for _, name := range p.names {
			if !q.Has(name) {
				continue
			}
			if err := p.apply(cfg, q.Get(name)); err != nil {
				return fmt.Errorf("s3 URL query %s: %w", name, err)
			}
		}
	}
	return nil
}
