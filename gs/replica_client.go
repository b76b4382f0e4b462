// Package gs implements a replica in a Google Cloud Storage bucket, laid
// out as <path>/ltx/<level>/<min>-<max>.ltx exactly as Litestream v0.5
// does. Each object carries the LTX header timestamp in its
// "litestream-timestamp" metadata, which GCS returns with every listing.
//
// Authentication is Google's Application Default Credentials only
// (GOOGLE_APPLICATION_CREDENTIALS, gcloud's user credentials, or the
// metadata server), as upstream. With STORAGE_EMULATOR_HOST set, the
// client talks plain HTTP to that emulator without authentication.
//
// Requests go to GCS's JSON API through net/http rather than Google's
// storage library, which would link gRPC, OpenTelemetry and the xDS
// protobuf registries into every binary (about 17 MB of resident memory
// in each process, GCS used or not). Files up to replayLimit are uploaded
// from memory and retried like any request; larger ones are streamed in
// one request and retried only if the failed attempt had not read past
// that prefix.
package gs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"

	"github.com/sqlitebackup/litestream"
)

// ReplicaClientType is the backend name used in config and URLs.
const ReplicaClientType = "gs"

// MetadataKeyTimestamp is the object metadata key holding the LTX header
// timestamp (RFC 3339 with nanoseconds, UTC), as upstream writes it.
const MetadataKeyTimestamp = "litestream-timestamp"

// Retry defaults: a replica must give up and report rather than retry
// until its context ends.
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
	// retryable error (408, 429, 5xx, connection errors); 0 = default.
	MaxAttempts int
	// InitialBackoff is the first pause between tries; 0 = default.
	InitialBackoff time.Duration
}

// ReplicaClient stores LTX files as GCS objects through the JSON API.
// The HTTP client and credentials are set up on first use, so building a
// replica from config needs neither credentials nor network.
type ReplicaClient struct {
	cfg Config

	mu sync.Mutex
	ep *endpoint
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

// Close drops the HTTP client's idle connections; a later call sets
// the client up again.
func (c *ReplicaClient) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ep != nil {
		c.ep.hc.CloseIdleConnections()
		c.ep = nil
	}
	return nil
}

// endpoint returns the HTTP client, setting it up once. Application
// Default Credentials are used; when STORAGE_EMULATOR_HOST is set the
// emulator needs (and gets) no authentication.
func (c *ReplicaClient) endpoint(ctx context.Context) (*endpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ep == nil {
		// The credentials keep this context for token refreshes, so it
		// must outlive the call that happened to create the client.
		ep, err := newEndpoint(context.WithoutCancel(ctx))
		if err != nil {
			return nil, fmt.Errorf("gs: create client for bucket %q: %w", c.cfg.Bucket, err)
		}
		c.ep = ep
	}
	return c.ep, nil
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

// send sends a request without a body to u, with retries.
func (c *ReplicaClient) send(ctx context.Context, method, u string, header http.Header) (*http.Response, error) {
	ep, err := c.endpoint(ctx)
	if err != nil {
		return nil, err
	}
	return c.do(ctx, ep.hc, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, method, u, nil)
		if err != nil {
			return nil, err
		}
		for k, v := range header {
			req.Header[k] = v
		}
		return req, nil
	})
}

// listPage is one page of an object listing.
type listPage struct {
	Items         []objectMeta `json:"items"`
	NextPageToken string       `json:"nextPageToken"`
}

// listFields asks GCS for only what the client reads from a listing.
const listFields = "items(name,size,generation,timeCreated,updated,metadata),nextPageToken"

// list fetches one page of the objects under prefix, from startOffset
// (an object name; "" for the start) or where pageToken says.
func (c *ReplicaClient) list(ctx context.Context, prefix, startOffset, pageToken string) (*listPage, error) {
	ep, err := c.endpoint(ctx)
	if err != nil {
		return nil, err
	}
	q := url.Values{"prefix": {prefix}, "maxResults": {strconv.Itoa(listPageSize)}, "projection": {"noAcl"}, "fields": {listFields}}
	if startOffset != "" {
		q.Set("startOffset", startOffset)
	}
	if pageToken != "" {
		q.Set("pageToken", pageToken)
	}
	resp, err := c.send(ctx, http.MethodGet, ep.listURL(c.cfg.Bucket, q), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var page listPage
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		return nil, fmt.Errorf("decode listing: %w", err)
	}
	return &page, nil
}

// LTXFiles lists a level lazily, one LIST page at a time. The first page
// is fetched here so that a missing bucket or a permission problem is
// reported by this call rather than looking like an empty level.
// Object names sort in (minTXID, maxTXID) order because both are fixed
// width hex, so startOffset at the seek file's name skips every file
// below seek on the server.
func (c *ReplicaClient) LTXFiles(ctx context.Context, level int, seek ltx.TXID, useMetadata bool) (ltx.FileIterator, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	prefix := c.levelPrefix(level)
	start := ""
	if seek > 0 {
		start = prefix + ltx.FormatFilename(seek, 0)
	}
	itr := &fileIterator{
		client: c,
		level:  level,
		seek:   seek,
		prefix: prefix,
		pager:  &pager{ctx: ctx, client: c, prefix: prefix, startOffset: start},
	}
	if !itr.fetch() && itr.err != nil {
		return nil, itr.err
	}
	return itr, nil
}

// OpenLTXFile reads a file from offset; size 0 reads to the end. An
// offset at or past the end gives an empty reader, as a file would.
func (c *ReplicaClient) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key := c.key(level, minTXID, maxTXID)
	rc, err := c.download(ctx, key, offset, size, nil)
	if err != nil {
		return nil, c.errorf("open", key, err)
	}
	return &objectReader{rc: rc, client: c, key: key}, nil
}

// download GETs an object's data from offset (size bytes; 0: to the
// end). generation, when not nil, selects that generation.
func (c *ReplicaClient) download(ctx context.Context, key string, offset, size int64, generation *int64) (io.ReadCloser, error) {
	ep, err := c.endpoint(ctx)
	if err != nil {
		return nil, err
	}
	q := url.Values{"alt": {"media"}}
	if generation != nil {
		q.Set("generation", strconv.FormatInt(*generation, 10))
	}
	header := http.Header{}
	switch {
	case size > 0:
		header.Set("Range", fmt.Sprintf("bytes=%d-%d", offset, offset+size-1))
	case offset > 0:
		header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := c.send(ctx, http.MethodGet, ep.objectURL(c.cfg.Bucket, key, q), header)
	if code := httpCode(err); code == http.StatusRequestedRangeNotSatisfiable {
		return io.NopCloser(strings.NewReader("")), nil // the object exists; offset >= its size
	} else if code == http.StatusNotFound {
		var ae *APIError
		if errors.As(err, &ae) {
			ae.objectMissing = true
		}
		return nil, err
	} else if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusPartialContent || header.Get("Range") == "" {
		return resp.Body, nil
	}
	// A 200 to a ranged request carries the whole object.
	if _, err := io.CopyN(io.Discard, resp.Body, offset); err != nil && err != io.EOF {
		resp.Body.Close()
		return nil, err
	}
	if size <= 0 {
		return resp.Body, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(resp.Body, size), resp.Body}, nil
}

// objectReader names the bucket and key in errors that happen while the
// body is read.
type objectReader struct {
	rc     io.ReadCloser
	client *ReplicaClient
	key    string
}

func (r *objectReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if err != nil && err != io.EOF {
		err = r.client.errorf("read", r.key, err)
	}
	return n, err
}

func (r *objectReader) Close() error { return r.rc.Close() }

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
	src, err := newUploadSource(r)
	if err != nil {
		return nil, c.errorf("read LTX data for", key, err)
	}
	createdAt := time.UnixMilli(hdr.Timestamp).UTC()
	meta := &objectMeta{
		ContentType: "application/octet-stream",
		Metadata:    map[string]string{MetadataKeyTimestamp: createdAt.Format(time.RFC3339Nano)},
	}
	obj, err := c.upload(ctx, key, meta, src, nil)
	if err != nil {
		return nil, c.errorf("write", key, err)
	}
	return &ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Size: obj.Size, CreatedAt: createdAt}, nil
}

// DeleteLTXFiles removes files; missing ones are ignored.
func (c *ReplicaClient) DeleteLTXFiles(ctx context.Context, a []*ltx.FileInfo) error {
	if err := ctx.Err(); err != nil || len(a) == 0 {
		return err
	}
	keys := make([]string, len(a))
	for i, info := range a {
		keys[i] = c.key(info.Level, info.MinTXID, info.MaxTXID)
	}
	return c.deleteKeys(ctx, keys)
}

// deleteKeys deletes objects a few at a time: GCS has no multi-object
// delete in its JSON API (only batch requests), and one request per
// object in sequence is slow for retention runs that drop thousands of
// files.
func (c *ReplicaClient) deleteKeys(ctx context.Context, keys []string) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(deleteParallelism)
	for _, key := range keys {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := c.deleteObject(ctx, key); err != nil {
				return c.errorf("delete", key, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// deleteObject deletes one object; a missing one is not an error.
func (c *ReplicaClient) deleteObject(ctx context.Context, key string) error {
	ep, err := c.endpoint(ctx)
	if err != nil {
		return err
	}
	resp, err := c.send(ctx, http.MethodDelete, ep.objectURL(c.cfg.Bucket, key, nil), nil)
	if httpCode(err) == http.StatusNotFound {
		return nil
	} else if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// DeleteAll removes every object under <path>/ltx/, the replica's tree.
// Other objects sharing the path prefix are left alone.
func (c *ReplicaClient) DeleteAll(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	prefix := path.Join(c.cfg.Path, "ltx") + "/"
	p := &pager{ctx: ctx, client: c, prefix: prefix}
	for {
		objs, done, err := p.next()
		if err != nil {
			return c.errorf("list", prefix, err)
		}
		keys := make([]string, len(objs))
		for i, o := range objs {
			keys[i] = o.Name
		}
		if err := c.deleteKeys(ctx, keys); err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}
