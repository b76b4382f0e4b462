// Package gs implements a replica in a Google Cloud Storage bucket, laid
// out as <path>/ltx/<level>/<min>-<max>.ltx exactly as Litestream v0.5
// does. Each object carries the LTX header timestamp in its
// "litestream-timestamp" metadata, which GCS returns with every listing.
//
// Authentication is Google's Application Default Credentials only
// (GOOGLE_APPLICATION_CREDENTIALS, gcloud's user credentials, or the
// metadata server), as upstream. With STORAGE_EMULATOR_HOST set, the
// client talks plain HTTP to that emulator without authentication.
package gs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"
	"google.golang.org/api/option"

	"github.com/sqlitebackup/litestream"
)

// ReplicaClientType is the backend name used in config and URLs.
const ReplicaClientType = "gs"

// MetadataKeyTimestamp is the object metadata key holding the LTX header
// timestamp (RFC 3339 with nanoseconds, UTC), as upstream writes it.
const MetadataKeyTimestamp = "litestream-timestamp"

// Retry defaults: the storage package retries forever (until the context
// ends) unless told otherwise; a replica must give up and report instead.
const (
	DefaultMaxAttempts    = 6
	DefaultInitialBackoff = 250 * time.Millisecond
	DefaultMaxBackoff     = 10 * time.Second
)

// listPageSize is the number of objects fetched per LIST request (a
// variable so tests can force several pages).
var listPageSize = 1000

// deleteParallelism bounds concurrent DELETE requests.
const deleteParallelism = 16

// Config describes one GCS replica.
type Config struct {
	Bucket string // required
	Path   string // key prefix inside the bucket; may be empty

	// MaxAttempts bounds the tries of each request that fails with a
	// retryable error (429, 5xx, connection errors); 0 = default.
	MaxAttempts int
	// InitialBackoff is the first pause between tries; 0 = default.
	InitialBackoff time.Duration
}

// ReplicaClient stores LTX files as GCS objects. The storage client is
// created on first use, so building a replica from config needs neither
// credentials nor network.
type ReplicaClient struct {
	cfg Config

	mu     sync.Mutex
	client *storage.Client
}

var _ litestream.ReplicaClient = (*ReplicaClient)(nil)

// NewReplicaClient validates cfg and returns a client for it.
func NewReplicaClient(cfg Config) (*ReplicaClient, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("gs: bucket required")
	}
	cfg.Path = strings.Trim(cfg.Path, "/")
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.InitialBackoff <= 0 {
		cfg.InitialBackoff = DefaultInitialBackoff
	}
	return &ReplicaClient{cfg: cfg}, nil
}

// Type returns "gs".
func (c *ReplicaClient) Type() string { return ReplicaClientType }

// Bucket returns the bucket name.
func (c *ReplicaClient) Bucket() string { return c.cfg.Bucket }

// Path returns the key prefix.
func (c *ReplicaClient) Path() string { return c.cfg.Path }

// Close releases the storage client, if one was created.
func (c *ReplicaClient) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client == nil {
		return nil
	}
	err := c.client.Close()
	c.client = nil
	return err
}

// bucket returns the bucket handle, creating the storage client once.
// Application Default Credentials are used; when STORAGE_EMULATOR_HOST
// is set the emulator needs (and gets) no authentication.
func (c *ReplicaClient) bucket(ctx context.Context) (*storage.BucketHandle, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client == nil {
		var opts []option.ClientOption
		if os.Getenv("STORAGE_EMULATOR_HOST") != "" {
			opts = append(opts, option.WithoutAuthentication())
		}
		// The credentials may keep this context for token refreshes, so
		// it must outlive the call that happened to create the client.
		client, err := storage.NewClient(context.WithoutCancel(ctx), opts...)
		if err != nil {
			return nil, fmt.Errorf("gs: create client for bucket %q: %w", c.cfg.Bucket, err)
		}
		// Every write names an immutable file with fixed content, so
		// retrying writes and deletes is as safe as retrying reads.
		client.SetRetry(
			storage.WithPolicy(storage.RetryAlways),
			storage.WithMaxAttempts(c.cfg.MaxAttempts),
			storage.WithBackoff(gax.Backoff{Initial: c.cfg.InitialBackoff, Max: DefaultMaxBackoff, Multiplier: 2}),
		)
		c.client = client
	}
	return c.client.Bucket(c.cfg.Bucket), nil
}

func (c *ReplicaClient) levelPrefix(level int) string {
	return litestream.LTXLevelDir(c.cfg.Path, level) + "/"
}

func (c *ReplicaClient) key(level int, minTXID, maxTXID ltx.TXID) string {
	return litestream.LTXFilePath(c.cfg.Path, level, minTXID, maxTXID)
}

func (c *ReplicaClient) errorf(op, key string, err error) error {
	return &Error{Op: op, Bucket: c.cfg.Bucket, Key: key, Err: err}
}

// LTXFiles lists a level lazily, one LIST page at a time. The first page
// is fetched here so that a missing bucket or a permission problem is
// reported by this call rather than looking like an empty level.
// Object names sort in (minTXID, maxTXID) order because both are fixed
// width hex, so StartOffset at the seek file's name skips every file
// below seek on the server.
func (c *ReplicaClient) LTXFiles(ctx context.Context, level int, seek ltx.TXID, useMetadata bool) (ltx.FileIterator, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	bkt, err := c.bucket(ctx)
	if err != nil {
		return nil, err
	}
	prefix := c.levelPrefix(level)
	q := &storage.Query{Prefix: prefix}
	if seek > 0 {
		q.StartOffset = prefix + ltx.FormatFilename(seek, 0)
	}
	if err := q.SetAttrSelection([]string{"Name", "Size", "Created", "Metadata"}); err != nil {
		return nil, c.errorf("list", prefix, err)
	}
	itr := &fileIterator{
		client: c,
		level:  level,
		seek:   seek,
		prefix: prefix,
		pager:  newPager(bkt.Objects(ctx, q)),
	}
	if !itr.fetch() && itr.err != nil {
		return nil, itr.err
	}
	return itr, nil
}

// OpenLTXFile reads a file from offset; size 0 reads to the end.
func (c *ReplicaClient) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	bkt, err := c.bucket(ctx)
	if err != nil {
		return nil, err
	}
	key := c.key(level, minTXID, maxTXID)
	length := size
	if length <= 0 {
		length = -1 // storage's "to the end"
	}
	r, err := bkt.Object(key).NewRangeReader(ctx, offset, length)
	if err != nil {
		return nil, c.errorf("open", key, err)
	}
	return r, nil
}

// WriteLTXFile uploads a file in one atomic object write, with the LTX
// header timestamp in its metadata.
func (c *ReplicaClient) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key := c.key(level, minTXID, maxTXID)
	hdr, r, err := ltx.PeekHeader(r)
	if err != nil {
		return nil, c.errorf("read LTX header for", key, err)
	}
	bkt, err := c.bucket(ctx)
	if err != nil {
		return nil, err
	}
	createdAt := time.UnixMilli(hdr.Timestamp).UTC()

	// Cancelling the writer's context is the only way to abandon an
	// upload: Close would otherwise commit the partial object.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := bkt.Object(key).NewWriter(wctx)
	w.ContentType = "application/octet-stream"
	w.Metadata = map[string]string{MetadataKeyTimestamp: createdAt.Format(time.RFC3339Nano)}
	n, err := io.Copy(w, r)
	if err != nil {
		cancel()
		_ = w.Close()
		return nil, c.errorf("write", key, err)
	}
	if err := w.Close(); err != nil {
		return nil, c.errorf("write", key, err)
	}
	return &ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Size: n, CreatedAt: createdAt}, nil
}

// DeleteLTXFiles removes files; missing ones are ignored.
func (c *ReplicaClient) DeleteLTXFiles(ctx context.Context, a []*ltx.FileInfo) error {
	if len(a) == 0 {
		return ctx.Err()
	}
	bkt, err := c.bucket(ctx)
	if err != nil {
		return err
	}
	keys := make([]string, len(a))
	for i, info := range a {
		keys[i] = c.key(info.Level, info.MinTXID, info.MaxTXID)
	}
	return c.deleteKeys(ctx, bkt, keys)
}

// deleteKeys deletes objects a few at a time: GCS has no multi-object
// delete in its JSON API, and one request per object in sequence is slow
// for retention runs that drop thousands of files.
func (c *ReplicaClient) deleteKeys(ctx context.Context, bkt *storage.BucketHandle, keys []string) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(deleteParallelism)
	for _, key := range keys {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			err := bkt.Object(key).Delete(ctx)
			if err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
				return c.errorf("delete", key, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// DeleteAll removes every object under <path>/ltx/, the replica's tree.
// Other objects sharing the path prefix are left alone.
func (c *ReplicaClient) DeleteAll(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	bkt, err := c.bucket(ctx)
	if err != nil {
		return err
	}
	prefix := path.Join(c.cfg.Path, "ltx") + "/"
	q := &storage.Query{Prefix: prefix}
	if err := q.SetAttrSelection([]string{"Name"}); err != nil {
		return c.errorf("list", prefix, err)
	}
	pager := newPager(bkt.Objects(ctx, q))
	for {
		objs, done, err := pager.next()
		if err != nil {
			return c.errorf("list", prefix, err)
		}
		keys := make([]string, len(objs))
		for i, o := range objs {
			keys[i] = o.Name
		}
		if err := c.deleteKeys(ctx, bkt, keys); err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}
