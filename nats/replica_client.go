// Package nats implements a replica in a NATS JetStream object store
// bucket. Objects are named <path>/ltx/<level>/<min>-<max>.ltx; with no
// path they are ltx/<level>/<min>-<max>.ltx exactly as Litestream v0.5
// names them, so one bucket can hold several databases under different
// paths or one database the upstream way.
//
// The bucket must already exist: the client never creates one, because
// its settings (replicas, storage, limits) are the operator's choice.
//
// An object store has no ranged reads, so OpenLTXFile with an offset
// downloads and discards the bytes before it.
package nats

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
)

// ReplicaClientType is the backend name used in config and URLs.
const ReplicaClientType = "nats"

// TimestampHeader is the object header holding the LTX header timestamp
// (RFC 3339 with nanoseconds), the same key upstream writes.
const TimestampHeader = "Litestream-Timestamp"

// Connection defaults, the same as upstream's.
const (
	DefaultMaxReconnects    = -1 // unlimited
	DefaultReconnectWait    = 2 * time.Second
	DefaultTimeout          = 10 * time.Second
	DefaultPingInterval     = 2 * time.Minute
	DefaultReconnectBufSize = 8 * 1024 * 1024
)

// requestTimeout bounds the metadata calls (bucket lookup, list, delete)
// whose ctx has no deadline, so an unresponsive server cannot hang them.
// Object transfers are bounded by ctx only: their length varies.
const requestTimeout = 30 * time.Second

// Config describes the server, the bucket and the credentials.
type Config struct {
	// URL is the server URL, or several separated by commas;
	// nats.DefaultURL when empty. Credentials belong in the fields
	// below, not in the URL.
	URL    string
	Bucket string
	Path   string // optional object-name prefix

	// Authentication, first one set wins: JWT+Seed, Creds (a .creds
	// file), NKey (a seed, or a file holding one), Username+Password,
	// Token.
	JWT      string
	Seed     string
	Creds    string
	NKey     string
	Username string
	Password string
	Token    string

	// TLS is implied by RootCAs or ClientCert.
	TLS        bool
	RootCAs    []string // PEM files
	ClientCert string   // both or neither
	ClientKey  string

	MaxReconnects *int          // DefaultMaxReconnects when nil
	ReconnectWait time.Duration // DefaultReconnectWait when 0
	Timeout       time.Duration // connect timeout; DefaultTimeout when 0
}

// ReplicaClient stores LTX files as objects. The connection is made on
// first use; the NATS library reconnects by itself, and a connection it
// gave up on is replaced on the next call.
type ReplicaClient struct {
	cfg    Config
	prefix string // cleaned Path

	mu    sync.Mutex
	nc    *nats.Conn
	store jetstream.ObjectStore
}

var _ litestream.ReplicaClient = (*ReplicaClient)(nil)

// NewReplicaClient checks cfg and returns a client; it does not connect.
func NewReplicaClient(cfg Config) (*ReplicaClient, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("nats replica: bucket required")
	}
	if (cfg.ClientCert == "") != (cfg.ClientKey == "") {
		return nil, errors.New("nats replica: client-cert and client-key must be set together")
	}
	if (cfg.JWT == "") != (cfg.Seed == "") {
		return nil, errors.New("nats replica: jwt and seed must be set together")
	}
	if cfg.URL == "" {
		cfg.URL = nats.DefaultURL
	}
	if cfg.MaxReconnects == nil {
		n := DefaultMaxReconnects
		cfg.MaxReconnects = &n
	}
	if cfg.ReconnectWait <= 0 {
		cfg.ReconnectWait = DefaultReconnectWait
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &ReplicaClient{cfg: cfg, prefix: strings.Trim(cfg.Path, "/")}, nil
}

// Type returns "nats".
func (c *ReplicaClient) Type() string { return ReplicaClientType }

// Bucket returns the object store bucket name.
func (c *ReplicaClient) Bucket() string { return c.cfg.Bucket }

// Path returns the object-name prefix ("" for none).
func (c *ReplicaClient) Path() string { return c.prefix }

// Close closes the connection; a later call connects again.
func (c *ReplicaClient) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nc != nil {
		c.nc.Close()
		c.nc, c.store = nil, nil
	}
	return nil
}

// errorf prefixes errors with the backend, server and bucket.
func (c *ReplicaClient) errorf(format string, args ...any) error {
	return fmt.Errorf("nats replica %s bucket %q: "+format, append([]any{redactURLs(c.cfg.URL), c.cfg.Bucket}, args...)...)
}

// objectStore returns the bucket handle, connecting first if needed.
func (c *ReplicaClient) objectStore(ctx context.Context) (jetstream.ObjectStore, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nc != nil && c.nc.IsClosed() {
		c.nc, c.store = nil, nil // the library gave up reconnecting
	}
	if c.store != nil {
		return c.store, nil
	}
	if c.nc == nil {
		opts, err := c.options()
		if err != nil {
			return nil, c.errorf("%w", err)
		}
		nc, err := nats.Connect(c.cfg.URL, opts...)
		if err != nil {
			return nil, c.errorf("connect: %w", err)
		}
		c.nc = nc
	}
	js, err := jetstream.New(c.nc)
	if err != nil {
		return nil, c.errorf("jetstream: %w", err)
	}
	ctx, cancel := withRequestTimeout(ctx)
	defer cancel()
	store, err := js.ObjectStore(ctx, c.cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, c.errorf("bucket does not exist; create it first (for example `nats object add %s`): "+
			"the replica never creates buckets so that their storage and replication settings stay yours", c.cfg.Bucket)
	} else if err != nil {
		return nil, c.errorf("open bucket: %w", err)
	}
	c.store = store
	return store, nil
}

// options translates the config into connection options.
func (c *ReplicaClient) options() ([]nats.Option, error) {
	cfg := &c.cfg
	opts := []nats.Option{
		nats.Name("litestream"),
		nats.MaxReconnects(*cfg.MaxReconnects),
		nats.ReconnectWait(cfg.ReconnectWait),
		nats.Timeout(cfg.Timeout),
		nats.PingInterval(DefaultPingInterval),
		nats.ReconnectBufSize(DefaultReconnectBufSize),
	}
	auth, err := authOption(cfg)
	if err != nil {
		return nil, err
	}
	if auth != nil {
		opts = append(opts, auth)
	}
	if cfg.TLS || len(cfg.RootCAs) > 0 || cfg.ClientCert != "" {
		opts = append(opts, nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	if len(cfg.RootCAs) > 0 {
		opts = append(opts, nats.RootCAs(cfg.RootCAs...))
	}
	if cfg.ClientCert != "" {
		opts = append(opts, nats.ClientCert(cfg.ClientCert, cfg.ClientKey))
	}
	return opts, nil
}

// objectName is the object holding one file.
func (c *ReplicaClient) objectName(level int, minTXID, maxTXID ltx.TXID) string {
	return litestream.LTXFilePath(c.prefix, level, minTXID, maxTXID)
}

// LTXFiles lists a level. The object store can only list the whole
// bucket, so the level is picked out by name. CreatedAt is exact either
// way: the timestamp header comes with the listing.
func (c *ReplicaClient) LTXFiles(ctx context.Context, level int, seek ltx.TXID, useMetadata bool) (ltx.FileIterator, error) {
	objs, err := c.list(ctx)
	if err != nil {
		return nil, err
	}
	dir := litestream.LTXLevelDir(c.prefix, level) + "/"
	var infos []*ltx.FileInfo
	for _, o := range objs {
		name, ok := strings.CutPrefix(o.Name, dir)
		if !ok {
			continue
		}
		minTXID, maxTXID, err := ltx.ParseFilename(name)
		if err != nil || minTXID < seek {
			continue
		}
		infos = append(infos, &ltx.FileInfo{
			Level: level, MinTXID: minTXID, MaxTXID: maxTXID,
			Size: int64(o.Size), CreatedAt: createdAt(o),
		})
	}
	return ltx.NewFileInfoSliceIterator(infos), nil
}

// list returns every live object of the bucket.
func (c *ReplicaClient) list(ctx context.Context) ([]*jetstream.ObjectInfo, error) {
	store, err := c.objectStore(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := withRequestTimeout(ctx)
	defer cancel()
	objs, err := store.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	} else if err != nil {
		return nil, c.errorf("list objects: %w", err)
	}
	return objs, nil
}

// createdAt is the timestamp header, or the object's mtime for objects
// written without it.
func createdAt(o *jetstream.ObjectInfo) time.Time {
	v := o.Headers.Get(TimestampHeader)
	if v == "" {
		for k, vs := range o.Headers { // headers are case-sensitive; be lenient
			if strings.EqualFold(k, TimestampHeader) && len(vs) > 0 {
				v = vs[0]
			}
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC()
	}
	return o.ModTime.UTC()
}

// OpenLTXFile opens a file at offset; size 0 reads to the end. The object
// store has no ranged reads: the bytes before offset are downloaded and
// discarded.
func (c *ReplicaClient) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	store, err := c.objectStore(ctx)
	if err != nil {
		return nil, err
	}
	name := c.objectName(level, minTXID, maxTXID)
	obj, err := store.Get(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, c.errorf("get %s: %w", name, os.ErrNotExist)
	} else if err != nil {
		return nil, c.errorf("get %s: %w", name, err)
	}
	if offset > 0 {
		if _, err := io.CopyN(io.Discard, obj, offset); err != nil && !errors.Is(err, io.EOF) {
			obj.Close()
			return nil, c.errorf("skip to offset %d of %s: %w", offset, name, err)
		}
	}
	if size > 0 {
		return struct {
			io.Reader
			io.Closer
		}{io.LimitReader(obj, size), obj}, nil
	}
	return obj, nil
}

// WriteLTXFile stores the file with its header timestamp as an object
// header. A Put becomes visible only when its metadata is written after
// the last chunk, so readers see the old object or the whole new one.
func (c *ReplicaClient) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	name := c.objectName(level, minTXID, maxTXID)
	hdr, r, err := ltx.PeekHeader(r)
	if err != nil {
		return nil, c.errorf("read header of %s: %w", name, err)
	}
	store, err := c.objectStore(ctx)
	if err != nil {
		return nil, err
	}
	ts := time.UnixMilli(hdr.Timestamp).UTC()
	meta := jetstream.ObjectMeta{Name: name, Headers: nats.Header{}}
	meta.Headers.Set(TimestampHeader, ts.Format(time.RFC3339Nano))
	info, err := store.Put(ctx, meta, contextReader{ctx, r})
	if err != nil {
		return nil, c.errorf("put %s: %w", name, err)
	}
	return &ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Size: int64(info.Size), CreatedAt: ts}, nil
}

// DeleteLTXFiles removes files; missing ones are ignored.
func (c *ReplicaClient) DeleteLTXFiles(ctx context.Context, a []*ltx.FileInfo) error {
	if len(a) == 0 {
		return ctx.Err()
	}
	store, err := c.objectStore(ctx)
	if err != nil {
		return err
	}
	for _, info := range a {
		if err := c.delete(ctx, store, c.objectName(info.Level, info.MinTXID, info.MaxTXID)); err != nil {
			return err
		}
	}
	return nil
}

// DeleteAll removes every object under <path>/ltx/ (ltx/ without a path),
// leaving other databases' objects in a shared bucket alone.
func (c *ReplicaClient) DeleteAll(ctx context.Context) error {
	objs, err := c.list(ctx)
	if err != nil {
		return err
	}
	store, err := c.objectStore(ctx)
	if err != nil {
		return err
	}
	root := path.Join(c.prefix, "ltx") + "/"
	for _, o := range objs {
		if strings.HasPrefix(o.Name, root) {
			if err := c.delete(ctx, store, o.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *ReplicaClient) delete(ctx context.Context, store jetstream.ObjectStore, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ctx, cancel := withRequestTimeout(ctx)
	defer cancel()
	if err := store.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return c.errorf("delete %s: %w", name, err)
	}
	return nil
}

// withRequestTimeout bounds a metadata call whose ctx has no deadline.
func withRequestTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, requestTimeout)
}

// redactURLs hides passwords in a comma-separated server list.
func redactURLs(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			u.User = url.User("redacted")
			parts[i] = u.String()
		} else if err != nil && strings.Contains(p, "@") {
			parts[i] = "(unparsable URL)"
		}
	}
	return strings.Join(parts, ",")
}

// contextReader stops a long upload when ctx is cancelled.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (r contextReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
