// Package webdav implements a replica on a WebDAV server, laid out as
// <path>/ltx/<level>/<min>-<max>.ltx like Litestream v0.5.
//
// Two things differ from upstream, both fixes:
//   - Writes are atomic: a file is uploaded under a temporary name and then
//     MOVEd to its final name, so a reader never sees half a file.
//   - WebDAV cannot set a file's mtime portably, so with useMetadata the
//     creation time is read from the LTX header at the start of each file
//     (a ranged GET of its first bytes) instead of being approximated by
//     the server's upload time.
package webdav

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/studio-b12/gowebdav"
	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/internal/ltxheader"
)

// ReplicaClientType is the backend name used in config and in webdav://
// URLs; webdavs:// is the same backend over HTTPS.
const ReplicaClientType = "webdav"

// DefaultTimeout bounds the wait for a response's headers. It does not
// bound transfers: a large snapshot may take longer than any fixed limit.
const DefaultTimeout = 30 * time.Second

// headerReadConcurrency bounds the parallel header reads of a listing
// with useMetadata.
const headerReadConcurrency = 8

// Config describes the server and the replica's place on it.
type Config struct {
	URL      string // http(s)://host[:port][/base]
	Username string // HTTP Basic or Digest, negotiated with the server
	Password string
	Path     string        // replica root below URL
	Timeout  time.Duration // response-header timeout; DefaultTimeout when 0
}

// ReplicaClient stores LTX files on a WebDAV server.
type ReplicaClient struct {
	cfg       Config
	root      string // "/"-rooted, cleaned Path
	redacted  string // URL safe for messages
	auth      gowebdav.Authorizer
	transport http.RoundTripper
}

var _ litestream.ReplicaClient = (*ReplicaClient)(nil)

// NewReplicaClient checks cfg and returns a client; it does not connect.
// Credentials embedded in the URL move to Username and Password (unless
// those are set) so they never appear in messages.
func NewReplicaClient(cfg Config) (*ReplicaClient, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || cfg.URL == "" {
		return nil, errors.New("webdav replica: webdav-url must be an http:// or https:// URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("webdav replica: webdav-url %s must be an http:// or https:// URL with a host", u.Redacted())
	}
	if u.User != nil {
		if cfg.Username == "" {
			cfg.Username = u.User.Username()
		}
		if pw, ok := u.User.Password(); ok && cfg.Password == "" {
			cfg.Password = pw
		}
		u.User = nil
		cfg.URL = u.String()
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = cfg.Timeout
	return &ReplicaClient{
		cfg:       cfg,
		root:      path.Join("/", cfg.Path),
		redacted:  u.String(),
		auth:      gowebdav.NewAutoAuth(cfg.Username, cfg.Password),
		transport: t,
	}, nil
}

// Type returns "webdav".
func (c *ReplicaClient) Type() string { return ReplicaClientType }

// URL returns the server URL (without credentials).
func (c *ReplicaClient) URL() string { return c.redacted }

// Path returns the replica root on the server.
func (c *ReplicaClient) Path() string { return c.root }

// call is one operation's WebDAV client. Its requests carry the
// operation's ctx, so cancelling ctx aborts them: gowebdav has no context
// support of its own, and its request interceptor is the one hook that
// sees each request. A client per call is cheap because the authorizer
// (with the negotiated auth scheme) and the connection pool are shared.
type call struct {
	*gowebdav.Client
	c   *ReplicaClient
	ctx context.Context

	mu     sync.Mutex
	netErr error // last transport error; gowebdav hides some behind a bare status
}

func (c *ReplicaClient) begin(ctx context.Context) *call {
	cl := &call{Client: gowebdav.NewAuthClient(c.cfg.URL, c.auth), c: c, ctx: ctx}
	cl.SetTransport(errRecorder{c.transport, cl})
	cl.SetInterceptor(func(_ string, rq *http.Request) { *rq = *rq.WithContext(ctx) })
	return cl
}

// errRecorder remembers the transport errors of one call.
type errRecorder struct {
	base http.RoundTripper
	cl   *call
}

func (t errRecorder) RoundTrip(rq *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(rq)
	if err != nil {
		t.cl.mu.Lock()
		t.cl.netErr = err
		t.cl.mu.Unlock()
	}
	return resp, err
}

// fail turns a gowebdav error into one that names the backend, server and
// path; it wraps os.ErrNotExist for 404, the real transport error (so
// also ctx's) where gowebdav reported a bare status, and explains
// authentication failures.
func (cl *call) fail(op, p string, err error) error {
	cl.mu.Lock()
	netErr := cl.netErr
	cl.mu.Unlock()
	var se gowebdav.StatusError
	switch {
	case netErr != nil && !errors.Is(err, netErr):
		err = netErr
	case errors.As(err, &se) && se.Status == http.StatusNotFound:
		err = os.ErrNotExist
	case errors.As(err, &se) && se.Status == http.StatusUnauthorized:
		err = errors.New("access denied (HTTP 401): check webdav-username and webdav-password")
	case errors.As(err, &se) && se.Status == http.StatusForbidden:
		err = errors.New("forbidden (HTTP 403): the server refused this for webdav-username; check its permissions on the path")
	case errors.As(err, &se):
		err = fmt.Errorf("server answered HTTP %d %s", se.Status, http.StatusText(se.Status))
	}
	if ctxErr := cl.ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = fmt.Errorf("%w (%v)", ctxErr, err)
	}
	return fmt.Errorf("webdav replica %s: %s %s: %w", cl.c.redacted, op, p, err)
}

func (c *ReplicaClient) levelDir(level int) string {
	return litestream.LTXLevelDir(c.root, level)
}

func (c *ReplicaClient) filePath(level int, minTXID, maxTXID ltx.TXID) string {
	return litestream.LTXFilePath(c.root, level, minTXID, maxTXID)
}

// LTXFiles lists a level. CreatedAt is the server's mtime (the upload
// time), or with useMetadata the exact header timestamp.
func (c *ReplicaClient) LTXFiles(ctx context.Context, level int, seek ltx.TXID, useMetadata bool) (ltx.FileIterator, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir := c.levelDir(level)
	cl := c.begin(ctx)
	fis, err := cl.ReadDir(dir)
	if gowebdav.IsErrNotFound(err) {
		return ltx.NewFileInfoSliceIterator(nil), nil
	} else if err != nil {
		return nil, cl.fail("list", dir, err)
	}
	infos := make([]*ltx.FileInfo, 0, len(fis))
	for _, fi := range fis {
		minTXID, maxTXID, err := ltx.ParseFilename(fi.Name())
		if err != nil || fi.IsDir() || minTXID < seek {
			continue
		}
		infos = append(infos, &ltx.FileInfo{
			Level: level, MinTXID: minTXID, MaxTXID: maxTXID,
			Size: fi.Size(), CreatedAt: fi.ModTime().UTC(),
		})
	}
	if useMetadata {
		if infos, err = ltxheader.FillCreatedAt(ctx, infos, headerReadConcurrency, c.readHeader); err != nil {
			return nil, err
		}
	}
	return ltx.NewFileInfoSliceIterator(infos), nil
}

// readHeader fetches the first bytes of a file with a ranged GET.
func (c *ReplicaClient) readHeader(ctx context.Context, info *ltx.FileInfo) ([]byte, error) {
	rc, err := c.OpenLTXFile(ctx, info.Level, info.MinTXID, info.MaxTXID, 0, ltxheader.Size)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("webdav replica %s: read header of %s: %w", c.redacted, c.filePath(info.Level, info.MinTXID, info.MaxTXID), err)
	}
	return b, nil
}

// Opens that fail in the network (connection reset or refused, no
// answer) are tried openAttempts times, waiting openRetryDelay, then
// twice as long each time. The engine resumes a read cut mid-file, but an
// open that fails ends a restore: on a link that drops connections, the
// next open often comes while it is down.
const (
	openAttempts   = 4
	openRetryDelay = 100 * time.Millisecond
)

// OpenLTXFile opens a file at offset; size 0 reads to the end. Reads from
// an offset use an HTTP Range request; gowebdav falls back to skipping
// bytes when a server ignores ranges.
func (c *ReplicaClient) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	delay := openRetryDelay
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		cl := c.begin(ctx)
		rc, err := c.openLTXFile(cl, level, minTXID, maxTXID, offset, size)
		if err == nil || attempt == openAttempts || !cl.networkFailed() || ctx.Err() != nil {
			return rc, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (%w)", ctx.Err(), err)
		case <-time.After(delay):
		}
		delay *= 2
	}
}

// networkFailed reports whether a request of the call failed in the
// network rather than with an answer from the server.
func (cl *call) networkFailed() bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.netErr != nil
}

func (c *ReplicaClient) openLTXFile(cl *call, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	p := c.filePath(level, minTXID, maxTXID)
	var rc io.ReadCloser
	var err error
	switch {
	case offset == 0 && size == 0:
		rc, err = cl.ReadStream(p)
	case size == 0:
		// An open-ended range: gowebdav's fallback for servers that
		// ignore ranges would cap a zero length at zero bytes.
		rc, err = cl.ReadStreamRange(p, offset, math.MaxInt64-offset)
	default:
		rc, err = cl.ReadStreamRange(p, offset, size)
	}
	if gowebdav.IsErrCode(err, http.StatusRequestedRangeNotSatisfiable) {
		return io.NopCloser(strings.NewReader("")), nil // offset at or past the end
	} else if err != nil {
		return nil, cl.fail("read", p, err)
	}
	return rc, nil
}

// WriteLTXFile uploads the file under a temporary name and MOVEs it to
// its final name. The data is spooled to a local temp file first: the
// upload needs its length (some servers refuse chunked PUTs) and a body
// it can rewind if the server asks to authenticate again.
func (c *ReplicaClient) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	final := c.filePath(level, minTXID, maxTXID)
	cl := c.begin(ctx)
	hdr, r, err := ltx.PeekHeader(r)
	if err != nil {
		return nil, cl.fail("read header of", final, err)
	}
	spool, n, err := spoolToTemp(ctx, r)
	if err != nil {
		return nil, cl.fail("buffer", final, err)
	}
	defer func() { spool.Close(); os.Remove(spool.Name()) }()

	tmp := final + "." + randomSuffix() + litestream.TempSuffix
	if err := c.upload(cl, tmp, spool, n); err != nil {
		c.removeQuietly(ctx, tmp)
		return nil, cl.fail("upload", tmp, err)
	}
	if err := cl.Rename(tmp, final, true); err != nil {
		c.removeQuietly(ctx, tmp)
		return nil, cl.fail("move into place", final, err)
	}
	createdAt := time.UnixMilli(hdr.Timestamp).UTC()
	return &ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Size: n, CreatedAt: createdAt}, nil
}

// upload PUTs the spooled file. WriteStreamWithLength first creates the
// parent collections (MKCOL); when two writers create the same one at
// once, the loser gets an error (Apache: 403) although the collection now
// exists, so a failed MKCOL is retried a bounded number of times. The
// body stays an *os.File: gowebdav rewinds a seekable body for an auth
// retry, where it would buffer any other reader in memory.
func (c *ReplicaClient) upload(cl *call, p string, f *os.File, n int64) error {
	const attempts = 3
	var err error
	for range attempts {
		if _, err = f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		err = cl.WriteStreamWithLength(p, f, n, 0o644)
		var pe *os.PathError
		if err == nil || cl.ctx.Err() != nil || !errors.As(err, &pe) || pe.Op != "MkdirAll" {
			return err
		}
	}
	return err
}

// cleanupTimeout bounds the deletion of a temp file after a failed write.
const cleanupTimeout = 5 * time.Second

// removeQuietly deletes a temp file after a failed write; listings ignore
// temp files if this fails too. While ctx is live the caller waits for it
// (at most cleanupTimeout). Once ctx has ended the caller must not wait on
// a server that may be hanging, so the deletion runs in the background,
// still bounded by cleanupTimeout.
func (c *ReplicaClient) removeQuietly(ctx context.Context, p string) {
	remove := func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
		defer cancel()
		_ = c.begin(ctx).Remove(p)
	}
	if ctx.Err() != nil {
		go remove(context.WithoutCancel(ctx))
		return
	}
	remove(ctx)
}

// spoolToTemp copies r into a new local temp file and rewinds it.
func spoolToTemp(ctx context.Context, r io.Reader) (*os.File, int64, error) {
	f, err := os.CreateTemp("", "litestream-webdav-*"+litestream.TempSuffix)
	if err != nil {
		return nil, 0, err
	}
	n, err := io.Copy(f, contextReader{ctx, r})
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, 0, err
	}
	return f, n, nil
}

// DeleteLTXFiles removes files; missing ones are ignored.
func (c *ReplicaClient) DeleteLTXFiles(ctx context.Context, a []*ltx.FileInfo) error {
	cl := c.begin(ctx)
	for _, info := range a {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := c.filePath(info.Level, info.MinTXID, info.MaxTXID)
		if err := cl.Remove(p); err != nil { // 404 is success for gowebdav
			return cl.fail("delete", p, err)
		}
	}
	return nil
}

// DeleteAll removes the replica's ltx collection.
func (c *ReplicaClient) DeleteAll(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := path.Join(c.root, "ltx")
	cl := c.begin(ctx)
	if err := cl.RemoveAll(dir); err != nil {
		return cl.fail("delete", dir, err)
	}
	return nil
}

// randomSuffix makes temp names unique across processes and hosts.
func randomSuffix() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// contextReader stops a long copy when ctx is cancelled.
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
