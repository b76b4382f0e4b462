// Package abs implements a replica in an Azure Blob Storage container,
// laid out as <path>/ltx/<level>/<min>-<max>.ltx exactly as Litestream
// v0.5 does. Each blob carries the LTX header timestamp in its
// "litestreamtimestamp" metadata (Azure metadata names cannot contain
// hyphens), which the listing returns when asked to include metadata.
package abs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"

	"github.com/sqlitebackup/litestream"
)

// ReplicaClientType is the backend name used in config and URLs.
const ReplicaClientType = "abs"

// MetadataKeyTimestamp is the blob metadata key holding the LTX header
// timestamp (RFC 3339 with nanoseconds, UTC), as upstream writes it.
const MetadataKeyTimestamp = "litestreamtimestamp"

// Retry defaults. The SDK retries 408, 429, 500, 502, 503, 504 and
// transport errors with exponential backoff; these bound how long.
const (
	DefaultMaxRetries    = 5
	DefaultRetryDelay    = 1 * time.Second
	DefaultMaxRetryDelay = 30 * time.Second
	DefaultTryTimeout    = 15 * time.Minute // one request, e.g. a large block
)

const (
	uploadBlockSize   = 4 << 20 // bytes per staged block for large files
	uploadConcurrency = 4       // blocks in flight per upload
	deleteParallelism = 16      // concurrent DELETE requests
	downloadRetries   = 3       // re-opens of a broken download stream
)

// listPageSize is the number of blobs requested per LIST call (a variable
// so tests can force several pages).
var listPageSize int32 = 5000

// Config describes one Azure Blob Storage replica. Authentication is
// chosen in this order: SASToken, then AccountKey (shared key), then
// azidentity's DefaultAzureCredential (environment, workload identity,
// managed identity, Azure CLI, ...).
type Config struct {
	AccountName string // storage account; required unless Endpoint names it
	AccountKey  string // base64 shared key
	SASToken    string // with or without a leading "?"
	Endpoint    string // service URL; default https://<account>.blob.core.windows.net/
	Container   string // required
	Path        string // blob name prefix; may be empty

	// MaxRetries bounds the retries of each failed request; 0 = default,
	// negative = no retries.
	MaxRetries int
	// RetryDelay is the first pause between tries; 0 = default.
	RetryDelay time.Duration
}

// String describes the replica without its credentials, so a Config
// printed by mistake leaks nothing.
func (c Config) String() string {
	auth := "default-credential"
	switch {
	case c.SASToken != "":
		auth = "sas-token"
	case c.AccountKey != "":
		auth = "shared-key"
	}
	return fmt.Sprintf("abs{account=%s container=%s path=%s endpoint=%s auth=%s}", c.AccountName, c.Container, c.Path, c.Endpoint, auth)
}

// GoString is String, for %#v.
func (c Config) GoString() string { return c.String() }

// ReplicaClient stores LTX files as block blobs.
type ReplicaClient struct {
	account   string // for messages; never a credential
	container string
	path      string
	cc        *container.Client
}

var _ litestream.ReplicaClient = (*ReplicaClient)(nil)

// NewReplicaClient validates cfg and builds the SDK client. It makes no
// network request.
func NewReplicaClient(cfg Config) (*ReplicaClient, error) {
	if cfg.Container == "" {
		return nil, errors.New("abs: container (bucket) required")
	}
	serviceURL, err := serviceURL(cfg)
	if err != nil {
		return nil, err
	}
	svc, err := newServiceClient(cfg, serviceURL)
	if err != nil {
		return nil, err
	}
	account := cfg.AccountName
	if account == "" {
		account = accountFromURL(serviceURL)
	}
	return &ReplicaClient{
		account:   account,
		container: cfg.Container,
		path:      strings.Trim(cfg.Path, "/"),
		cc:        svc.ServiceClient().NewContainerClient(cfg.Container),
	}, nil
}

// serviceURL returns the blob service URL with a trailing slash. An
// explicit endpoint serves Azurite (account in the path) and sovereign
// clouds.
func serviceURL(cfg Config) (string, error) {
	if cfg.Endpoint == "" {
		if cfg.AccountName == "" {
			return "", errors.New("abs: account-name required when no endpoint is set")
		}
		return "https://" + cfg.AccountName + ".blob.core.windows.net/", nil
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("abs: endpoint %q must be an http(s) URL such as https://ACCOUNT.blob.core.windows.net", cfg.Endpoint)
	}
	if u.RawQuery != "" || u.User != nil {
		return "", errors.New("abs: endpoint must not contain a query or user info (use sas-token or account-key)")
	}
	return strings.TrimSuffix(u.String(), "/") + "/", nil
}

// accountFromURL guesses the account for messages: the first host label
// on Azure, the first path element on an emulator.
func accountFromURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	if first, _, _ := strings.Cut(strings.Trim(u.Path, "/"), "/"); first != "" {
		return first
	}
	if label, _, ok := strings.Cut(u.Hostname(), "."); ok {
		return label
	}
	return ""
}

func clientOptions(cfg Config) *azblob.ClientOptions {
	retries, delay := cfg.MaxRetries, cfg.RetryDelay
	if retries == 0 {
		retries = DefaultMaxRetries
	}
	if delay <= 0 {
		delay = DefaultRetryDelay
	}
	return &azblob.ClientOptions{ClientOptions: azcore.ClientOptions{
		Retry: policy.RetryOptions{
			MaxRetries:    int32(retries),
			RetryDelay:    delay,
			MaxRetryDelay: max(delay, DefaultMaxRetryDelay),
			TryTimeout:    DefaultTryTimeout,
		},
		Telemetry: policy.TelemetryOptions{ApplicationID: "litestream"},
	}}
}

func newServiceClient(cfg Config, serviceURL string) (*azblob.Client, error) {
	opts := clientOptions(cfg)
	switch {
	case cfg.SASToken != "":
		u := serviceURL + "?" + strings.TrimPrefix(cfg.SASToken, "?")
		c, err := azblob.NewClientWithNoCredential(u, opts)
		if err != nil {
			// The SDK's message would contain the URL, token included.
			return nil, errors.New("abs: invalid endpoint or sas-token")
		}
		return c, nil
	case cfg.AccountKey != "":
		if cfg.AccountName == "" {
			return nil, errors.New("abs: account-name required with account-key")
		}
		cred, err := azblob.NewSharedKeyCredential(cfg.AccountName, cfg.AccountKey)
		if err != nil {
			return nil, fmt.Errorf("abs: account-key for account %q is not valid base64", cfg.AccountName)
		}
		return azblob.NewClientWithSharedKeyCredential(serviceURL, cred, opts)
	default:
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return nil, fmt.Errorf("abs: no sas-token or account-key, and default Azure credentials are unavailable: %w", err)
		}
		return azblob.NewClient(serviceURL, cred, opts)
	}
}

// Type returns "abs".
func (c *ReplicaClient) Type() string { return ReplicaClientType }

// Account returns the storage account name (for messages).
func (c *ReplicaClient) Account() string { return c.account }

// Container returns the container name.
func (c *ReplicaClient) Container() string { return c.container }

// Path returns the blob name prefix.
func (c *ReplicaClient) Path() string { return c.path }

func (c *ReplicaClient) levelPrefix(level int) string {
	return litestream.LTXLevelDir(c.path, level) + "/"
}

func (c *ReplicaClient) key(level int, minTXID, maxTXID ltx.TXID) string {
	return litestream.LTXFilePath(c.path, level, minTXID, maxTXID)
}

// LTXFiles lists a level lazily, one LIST page at a time. The first page
// is fetched here so that a missing container or a permission problem is
// reported by this call rather than looking like an empty level. Blob
// names sort in (minTXID, maxTXID) order, so listing starts at the seek
// file's name; the client filters again in case a server ignores it.
func (c *ReplicaClient) LTXFiles(ctx context.Context, level int, seek ltx.TXID, useMetadata bool) (ltx.FileIterator, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	prefix := c.levelPrefix(level)
	opts := &container.ListBlobsFlatOptions{
		Prefix:     &prefix,
		Include:    container.ListBlobsInclude{Metadata: true},
		MaxResults: &listPageSize,
	}
	if seek > 0 {
		start := prefix + ltx.FormatFilename(seek, 0)
		opts.StartFrom = &start
	}
	itr := &fileIterator{
		ctx:    ctx,
		client: c,
		level:  level,
		seek:   seek,
		prefix: prefix,
		pager:  c.cc.NewListBlobsFlatPager(opts),
	}
	if !itr.fetch() && itr.err != nil {
		return nil, itr.err
	}
	return itr, nil
}

// OpenLTXFile reads a file from offset; size 0 reads to the end. A
// broken stream is resumed where it stopped, a few times.
func (c *ReplicaClient) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key := c.key(level, minTXID, maxTXID)
	resp, err := c.cc.NewBlobClient(key).DownloadStream(ctx, &blob.DownloadStreamOptions{
		Range: blob.HTTPRange{Offset: offset, Count: size},
	})
	if err != nil {
		return nil, c.errorf("open", key, err)
	}
	return resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: downloadRetries}), nil
}

// WriteLTXFile uploads a file as one block blob with the LTX header
// timestamp in its metadata. The blob appears only when the upload
// commits, so readers never see part of a file.
func (c *ReplicaClient) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key := c.key(level, minTXID, maxTXID)
	hdr, r, err := ltx.PeekHeader(r)
	if err != nil {
		return nil, c.errorf("read LTX header for", key, err)
	}
	createdAt := time.UnixMilli(hdr.Timestamp).UTC()
	stamp := createdAt.Format(time.RFC3339Nano)
	contentType := "application/octet-stream"
	tier := blob.AccessTierHot
	cr := &countingReader{r: r}
	_, err = c.cc.NewBlockBlobClient(key).UploadStream(ctx, cr, &blockblob.UploadStreamOptions{
		BlockSize:   uploadBlockSize,
		Concurrency: uploadConcurrency,
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: &contentType},
		Metadata:    map[string]*string{MetadataKeyTimestamp: &stamp},
		AccessTier:  &tier,
	})
	if err != nil {
		return nil, c.errorf("write", key, err)
	}
	return &ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Size: cr.n, CreatedAt: createdAt}, nil
}

// DeleteLTXFiles removes files; missing ones are ignored.
func (c *ReplicaClient) DeleteLTXFiles(ctx context.Context, a []*ltx.FileInfo) error {
	keys := make([]string, len(a))
	for i, info := range a {
		keys[i] = c.key(info.Level, info.MinTXID, info.MaxTXID)
	}
	return c.deleteKeys(ctx, keys)
}

// deleteKeys deletes blobs a few at a time (one request per blob).
func (c *ReplicaClient) deleteKeys(ctx context.Context, keys []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	include := blob.DeleteSnapshotsOptionTypeInclude
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(deleteParallelism)
	for _, key := range keys {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			_, err := c.cc.NewBlobClient(key).Delete(ctx, &blob.DeleteOptions{DeleteSnapshots: &include})
			if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
				return c.errorf("delete", key, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// DeleteAll removes every blob under <path>/ltx/, the replica's tree.
// Other blobs sharing the path prefix are left alone.
func (c *ReplicaClient) DeleteAll(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	prefix := path.Join(c.path, "ltx") + "/"
	pager := c.cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix, MaxResults: &listPageSize})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return c.errorf("list", prefix, err)
		}
		var keys []string
		for _, item := range page.Segment.BlobItems {
			if item.Name != nil {
				keys = append(keys, *item.Name)
			}
		}
		if err := c.deleteKeys(ctx, keys); err != nil {
			return err
		}
	}
	return nil
}

func (c *ReplicaClient) errorf(op, key string, err error) error {
	return newError(op, c.account, c.container, key, err)
}

// countingReader counts the bytes an upload consumed.
type countingReader struct {
	r io.Reader
	n int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += int64(n)
	return n, err
}
