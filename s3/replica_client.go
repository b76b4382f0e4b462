// Package s3 implements a replica in Amazon S3 or an S3-compatible object
// store, with the key layout of Litestream v0.5:
//
//	<path>/<level as 4 lowercase hex digits>/<min>-<max>.ltx
//
// e.g. backups/app/0009/0000000000000001-000000000000001a.ltx. This is not
// the <path>/ltx/<level> layout of the other backends. Each object carries
// its LTX header timestamp in the metadata key litestream-timestamp.
package s3

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
)

// ReplicaClientType is the backend name used in config and URLs.
const ReplicaClientType = "s3"

// MetadataKeyTimestamp is the object metadata key holding the LTX header
// timestamp (RFC 3339 with nanoseconds, UTC), sent as
// x-amz-meta-litestream-timestamp.
const MetadataKeyTimestamp = "litestream-timestamp"

// MaxKeys is the most keys one DeleteObjects call accepts.
const MaxKeys = 1000

// ReplicaClient stores LTX files in one bucket under a key prefix.
type ReplicaClient struct {
	cfg    *resolved
	awsCfg aws.Config

	// The SDK client is built on first use when the bucket's region has
	// to be looked up, so construction never touches the network.
	mu  sync.Mutex
	api *s3.Client
}

var _ litestream.ReplicaClient = (*ReplicaClient)(nil)

// NewReplicaClient checks cfg and prepares a client. Credentials are, in
// order: cfg's static keys, LITESTREAM_ACCESS_KEY_ID and
// LITESTREAM_SECRET_ACCESS_KEY, the AWS default chain (environment,
// shared files, SSO, web identity, ECS, IMDS).
//
// Region: cfg.Region, else the AWS environment/profile region, else
// us-east-1 when an endpoint is set, else the bucket's region is asked of
// AWS (HeadBucket's x-amz-bucket-region) on first use.
func NewReplicaClient(cfg Config) (*ReplicaClient, error) {
	r, err := resolveConfig(cfg)
	if err != nil {
		return nil, err
	}
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithHTTPClient(newHTTPClient(r.SkipVerify)),
		awsconfig.WithRetryer(r.newRetryer),
		awsconfig.WithAppID("litestream"),
	}
	if id, secret := staticCredentials(r.Config); id != "" || secret != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(id, secret, "")))
	}
	// A custom endpoint is not AWS: an AWS_REGION meant for AWS must not
	// leak into its signatures (MinIO checks the region).
	if r.Region == "" && r.endpoint != "" {
		r.Region = DefaultRegion
	}
	if r.Region != "" {
		opts = append(opts, awsconfig.WithRegion(r.Region))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	c := &ReplicaClient{cfg: r, awsCfg: awsCfg}
	if awsCfg.Region != "" {
		c.api = c.newAPI(c.awsCfg.Region)
	}
	return c, nil
}

func staticCredentials(cfg Config) (id, secret string) {
	if cfg.AccessKeyID != "" || cfg.SecretAccessKey != "" {
		return cfg.AccessKeyID, cfg.SecretAccessKey
	}
	return os.Getenv("LITESTREAM_ACCESS_KEY_ID"), os.Getenv("LITESTREAM_SECRET_ACCESS_KEY")
}

// newRetryer retries throttling (SlowDown, 429, 503), 5xx, 408 and
// transient network errors with jittered exponential backoff, without
// the SDK's retry quota, which would stop retrying during a long outage.
func (r *resolved) newRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = r.MaxAttempts
		o.MaxBackoff = r.MaxBackoff
		o.RateLimiter = ratelimit.None
		o.Retryables = append(o.Retryables, retry.RetryableHTTPStatusCode{
			Codes: map[int]struct{}{http.StatusRequestTimeout: {}, http.StatusTooManyRequests: {}},
		})
	})
}

func newHTTPClient(skipVerify bool) *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().
		WithTimeout(24 * time.Hour).
		WithDialerOptions(func(d *net.Dialer) {
			d.Timeout = 30 * time.Second
			d.KeepAlive = 30 * time.Second
		}).
		WithTransportOptions(func(t *http.Transport) {
			t.Proxy = http.ProxyFromEnvironment
			t.MaxIdleConns = 100
			t.MaxIdleConnsPerHost = 100
			t.IdleConnTimeout = 90 * time.Second
			if skipVerify {
				if t.TLSClientConfig == nil {
					t.TLSClientConfig = &tls.Config{}
				}
				t.TLSClientConfig.InsecureSkipVerify = true
			}
		})
}

func (c *ReplicaClient) newAPI(region string) *s3.Client {
	r := c.cfg
	return s3.NewFromConfig(c.awsCfg, func(o *s3.Options) {
		o.Region = region
		if r.endpoint != "" {
			o.BaseEndpoint = aws.String(r.endpoint)
		}
		if !r.fullChecksums {
			// Many S3-compatible servers reject or mangle the SDK's
			// default CRC checksums; send them only where S3 requires.
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
		o.UsePathStyle = r.forcePathStyle
		o.UseARNRegion = true
		o.DisableLogOutputChecksumValidationSkipped = true
		o.APIOptions = append(o.APIOptions, r.apiOptions()...)
	})
}

// client returns the SDK client, looking up the bucket's region first if
// it is not known yet. A failed lookup is retried on the next call.
func (c *ReplicaClient) client(ctx context.Context) (*s3.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.api != nil {
		return c.api, nil
	}
	region, err := c.lookupRegion(ctx)
	if err != nil {
		return nil, c.opError("look up region of", "", err)
	}
	c.api = c.newAPI(region)
	return c.api, nil
}

// lookupRegion asks us-east-1 about the bucket: S3 answers HeadBucket
// from any region with x-amz-bucket-region, even when it refuses access.
func (c *ReplicaClient) lookupRegion(ctx context.Context) (string, error) {
	out, err := c.newAPI(DefaultRegion).HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(c.cfg.Bucket)})
	if err == nil {
		if region := aws.ToString(out.BucketRegion); region != "" {
			return region, nil
		}
		return DefaultRegion, nil
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		if region := re.Response.Header.Get("X-Amz-Bucket-Region"); region != "" {
			return region, nil
		}
	}
	return "", err
}

// Type returns "s3", or the Backend of the config it was built with.
func (c *ReplicaClient) Type() string {
	if c.cfg.Backend != "" {
		return c.cfg.Backend
	}
	return ReplicaClientType
}

// Bucket returns the bucket name (or access-point ARN).
func (c *ReplicaClient) Bucket() string { return c.cfg.Bucket }

// Path returns the key prefix, without leading or trailing slash.
func (c *ReplicaClient) Path() string { return c.cfg.Path }

// Endpoint returns the endpoint URL, or "" for AWS.
func (c *ReplicaClient) Endpoint() string { return c.cfg.endpoint }

// levelPrefix is "<path>/<level %04x>/", or "<level %04x>/" for an empty
// path: the level directories then sit at the bucket root.
//
// Litestream v0.5 cleans an empty URL path to "." and writes ./0000/...
// keys; MinIO rejects those (XMinioInvalidResourceName) and versitygw
// stores them as 0000/..., so the root form is the portable one.
func (c *ReplicaClient) levelPrefix(level int) string {
	if c.cfg.Path == "" {
		return fmt.Sprintf("%04x/", level)
	}
	return fmt.Sprintf("%s/%04x/", c.cfg.Path, level)
}

func (c *ReplicaClient) key(level int, minTXID, maxTXID ltx.TXID) string {
	return c.levelPrefix(level) + ltx.FormatFilename(minTXID, maxTXID)
}

// opError names the backend, the operation, the bucket and the key; the
// SDK error it wraps carries the server's status, code and message.
func (c *ReplicaClient) opError(op, key string, err error) error {
	if key == "" {
		return fmt.Errorf("%s: %s bucket %q: %w", c.Type(), op, c.cfg.Bucket, err)
	}
	return fmt.Errorf("%s: %s bucket %q key %q: %w", c.Type(), op, c.cfg.Bucket, key, err)
}

// listError is opError for a listing, which has a prefix, not a key.
func (c *ReplicaClient) listError(prefix string, err error) error {
	return fmt.Errorf("%s: ListObjectsV2 bucket %q prefix %q: %w", c.Type(), c.cfg.Bucket, prefix, err)
}

// OpenLTXFile reads a file from offset; size 0 reads to the end. A
// missing object gives an error wrapping os.ErrNotExist.
func (c *ReplicaClient) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	api, err := c.client(ctx)
	if err != nil {
		return nil, err
	}
	key := c.key(level, minTXID, maxTXID)
	in := &s3.GetObjectInput{Bucket: aws.String(c.cfg.Bucket), Key: aws.String(key)}
	if offset < 0 || size < 0 {
		return nil, c.opError("GetObject", key, fmt.Errorf("invalid range offset=%d size=%d", offset, size))
	}
	if size > 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", offset, offset+size-1))
	} else if offset > 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", offset))
	}
	if sse := c.cfg.sse; sse != nil {
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = &sse.algorithm, &sse.key, &sse.keyMD5
	}
	out, err := api.GetObject(ctx, in)
	switch {
	case err == nil:
		return out.Body, nil
	case isNotExist(err):
		return nil, c.opError("GetObject", key, fmt.Errorf("%w: %w", os.ErrNotExist, err))
	case in.Range != nil && isInvalidRange(err):
		// The object exists and the range starts at or past its end: an
		// empty read, as reading a local file past its end gives.
		return io.NopCloser(strings.NewReader("")), nil
	default:
		return nil, c.opError("GetObject", key, err)
	}
}
