// Package sftp implements a replica on an SFTP server, laid out as
// <path>/ltx/<level>/<min>-<max>.ltx like Litestream v0.5.
//
// Unlike upstream, the server's host key is always verified unless the
// config explicitly opts out (see Config).
package sftp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"github.com/superfly/ltx"
	"golang.org/x/crypto/ssh"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/internal/ltxheader"
)

// ReplicaClientType is the backend name used in config and URLs.
const ReplicaClientType = "sftp"

// Defaults for the connection.
const (
	DefaultPort              = "22"
	DefaultDialTimeout       = 30 * time.Second
	DefaultKeepAliveInterval = 30 * time.Second
)

// headerReadConcurrency bounds the parallel header reads of a listing with
// useMetadata: they share one connection, so a few in flight hide the
// round trips without flooding the server.
const headerReadConcurrency = 8

// Config describes the server and the replica's place on it.
type Config struct {
	Host     string // host[:port]; port 22 when absent
	User     string
	Password string // optional when KeyPath is set

	// Path is the replica root. A relative path is relative to the
	// login directory of User.
	Path string

	KeyPath       string // private key file (OpenSSH or PEM)
	KeyPassphrase string // for an encrypted KeyPath

	// Host key verification, first match wins: HostKey pins one key
	// (authorized_keys format), HostKeyPath names a known_hosts file,
	// else ~/.ssh/known_hosts is used. An unknown key is refused unless
	// InsecureIgnoreHostKey is set (and neither HostKey nor HostKeyPath).
	HostKey               string
	HostKeyPath           string
	InsecureIgnoreHostKey bool

	// ConcurrentWrites pipelines the write requests of an upload. The
	// config layer turns it on by default, like upstream; it is safe
	// here because a failed upload only ever leaves a temp file.
	ConcurrentWrites bool

	DialTimeout       time.Duration // connect + handshake; DefaultDialTimeout when 0
	KeepAliveInterval time.Duration // dead-connection detection; DefaultKeepAliveInterval when 0
}

// ReplicaClient stores LTX files on an SFTP server. It holds one SSH
// connection, dialled on first use and redialled on the next call after
// it is lost.
type ReplicaClient struct {
	cfg  Config
	addr string // host:port

	mu   sync.Mutex
	conn *connection      // nil until dialled or after it was lost
	auth []ssh.AuthMethod // loaded on the first dial: decrypting a key is slow
}

var _ litestream.ReplicaClient = (*ReplicaClient)(nil)

// NewReplicaClient checks cfg and returns a client; it does not connect.
func NewReplicaClient(cfg Config) (*ReplicaClient, error) {
	if cfg.Host == "" {
		return nil, errors.New("sftp replica: host required")
	}
	if cfg.User == "" {
		return nil, errors.New("sftp replica: user required")
	}
	if cfg.KeyPath == "" && cfg.Password == "" {
		return nil, errors.New("sftp replica: key-path or password required")
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.KeepAliveInterval <= 0 {
		cfg.KeepAliveInterval = DefaultKeepAliveInterval
	}
	addr := cfg.Host
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, DefaultPort)
	}
	return &ReplicaClient{cfg: cfg, addr: addr}, nil
}

// Type returns "sftp".
func (c *ReplicaClient) Type() string { return ReplicaClientType }

// Path returns the replica root on the server.
func (c *ReplicaClient) Path() string { return c.cfg.Path }

// Addr returns the server address as host:port.
func (c *ReplicaClient) Addr() string { return c.addr }

// Close drops the connection; a later call dials again.
func (c *ReplicaClient) Close() error {
	c.mu.Lock()
	conn := c.conn
	c.conn = nil
	c.mu.Unlock()
	if conn != nil {
		conn.close()
	}
	return nil
}

// errorf prefixes errors with the backend and server so a user can tell
// which replica failed.
func (c *ReplicaClient) errorf(format string, args ...any) error {
	return fmt.Errorf("sftp replica %s@%s: "+format, append([]any{c.cfg.User, c.addr}, args...)...)
}

// session returns the live connection, dialling if there is none.
func (c *ReplicaClient) session(ctx context.Context) (*connection, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		return c.conn, nil
	}
	if c.auth == nil {
		auth, err := authMethods(&c.cfg)
		if err != nil {
			return nil, c.errorf("%w", err)
		}
		c.auth = auth
	}
	conn, err := dial(ctx, &c.cfg, c.addr, c.auth, c.forget)
	if err != nil {
		return nil, c.errorf("connect: %w", err)
	}
	c.conn = conn
	return conn, nil
}

// forget drops conn once it has died so the next call redials.
func (c *ReplicaClient) forget(conn *connection) {
	c.mu.Lock()
	if c.conn == conn {
		c.conn = nil
	}
	c.mu.Unlock()
	conn.close()
}

// withConn runs op on the live connection. When op fails because the
// connection was lost, the connection is dropped so the next call
// redials; an idempotent op is run once more on a fresh connection right
// away, so a connection that died while idle costs no failed call.
//
// When ctx ends while op waits on a connection that hangs, the connection
// is closed under it (closeWhenDone), so op returns soon after ctx ends
// with an error wrapping ctx.Err().
func (c *ReplicaClient) withConn(ctx context.Context, idempotent bool, op func(*connection) error) error {
	for attempt := 0; ; attempt++ {
		conn, err := c.session(ctx)
		if err != nil {
			return err
		}
		stop := conn.closeWhenDone(ctx)
		err = op(conn)
		stop()
		if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w: %w", err, ctx.Err())
		}
		if err == nil || !isConnLost(err) {
			return err
		}
		c.forget(conn)
		if !idempotent || attempt > 0 || ctx.Err() != nil {
			return err
		}
	}
}

// isConnLost reports whether err means the SSH connection is gone rather
// than that one request failed. A request racing the loss can see the
// closed channel as EOF before the library reports the loss itself.
func isConnLost(err error) bool {
	return errors.Is(err, sftp.ErrSSHFxConnectionLost) ||
		errors.Is(err, net.ErrClosed) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrClosedPipe)
}

func (c *ReplicaClient) levelDir(level int) string {
	return litestream.LTXLevelDir(c.cfg.Path, level)
}

func (c *ReplicaClient) filePath(level int, minTXID, maxTXID ltx.TXID) string {
	return litestream.LTXFilePath(c.cfg.Path, level, minTXID, maxTXID)
}

// LTXFiles lists a level. CreatedAt is the file's mtime, which the writer
// set to the header timestamp; SFTP keeps only whole seconds, so with
// useMetadata the exact time is read from each file's header.
func (c *ReplicaClient) LTXFiles(ctx context.Context, level int, seek ltx.TXID, useMetadata bool) (ltx.FileIterator, error) {
	var infos []*ltx.FileInfo
	err := c.withConn(ctx, true, func(conn *connection) (err error) {
		infos, err = c.listLevel(ctx, conn, level, seek, useMetadata)
		return err
	})
	if err != nil {
		return nil, err
	}
	return ltx.NewFileInfoSliceIterator(infos), nil
}

func (c *ReplicaClient) listLevel(ctx context.Context, conn *connection, level int, seek ltx.TXID, useMetadata bool) ([]*ltx.FileInfo, error) {
	dir := c.levelDir(level)
	fis, err := conn.sftp.ReadDirContext(ctx, dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, c.errorf("list %s: %w", dir, err)
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
	if !useMetadata {
		return infos, nil
	}
	return ltxheader.FillCreatedAt(ctx, infos, headerReadConcurrency, func(ctx context.Context, info *ltx.FileInfo) ([]byte, error) {
		return c.readHeader(ctx, conn, info)
	})
}

// readHeader returns the first bytes of a file, up to the LTX header size.
func (c *ReplicaClient) readHeader(ctx context.Context, conn *connection, info *ltx.FileInfo) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := c.filePath(info.Level, info.MinTXID, info.MaxTXID)
	f, err := conn.sftp.Open(p)
	if err != nil {
		return nil, c.errorf("open %s: %w", p, err)
	}
	defer f.Close()
	buf := make([]byte, ltxheader.Size)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !(errors.Is(err, io.EOF) && n < len(buf)) {
		return nil, c.errorf("read header of %s: %w", p, err)
	}
	return buf[:n], nil
}

// Opens that fail for want of a connection (reset, refused, or lost
// while redialling) are tried openAttempts times, waiting openRetryDelay,
// then twice as long each time. The engine resumes a read cut mid-file,
// but an open that fails ends a restore: on a link that drops
// connections, the next open often comes while it is down.
const (
	openAttempts   = 4
	openRetryDelay = 100 * time.Millisecond
)

// OpenLTXFile opens a file at offset; size 0 reads to the end.
func (c *ReplicaClient) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	delay := openRetryDelay
	for attempt := 1; ; attempt++ {
		rc, err := c.openLTXFile(ctx, level, minTXID, maxTXID, offset, size)
		if err == nil || attempt == openAttempts || !isNetworkFailure(err) || ctx.Err() != nil {
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

// isNetworkFailure reports whether err means the server could not be
// reached or the connection failed, rather than that it refused the
// request (a missing file, a denied login, an unknown host key).
func isNetworkFailure(err error) bool {
	var opErr *net.OpError
	return isConnLost(err) || errors.As(err, &opErr)
}

func (c *ReplicaClient) openLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	p := c.filePath(level, minTXID, maxTXID)
	var f *sftp.File
	var conn *connection
	err := c.withConn(ctx, true, func(cn *connection) (err error) {
		conn = cn
		f, err = cn.sftp.Open(p)
		return err
	})
	if err != nil {
		return nil, c.errorf("open %s: %w", p, err)
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, c.errorf("seek %s to %d: %w", p, offset, err)
		}
	}
	return newFileReader(ctx, conn, f, size), nil
}

// WriteLTXFile uploads to <name>.<random>.tmp, sets its mtime to the
// header timestamp, then renames it over the final name, so readers see
// either no file or the whole file with its final mtime.
func (c *ReplicaClient) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	hdr, r, err := ltx.PeekHeader(r)
	if err != nil {
		return nil, c.errorf("read header of level %d file %s: %w", level, ltx.FormatFilename(minTXID, maxTXID), err)
	}
	dir, final := c.levelDir(level), c.filePath(level, minTXID, maxTXID)
	createdAt := time.UnixMilli(hdr.Timestamp).UTC()
	var n int64
	// Not retried on a lost connection: r is already partly consumed.
	err = c.withConn(ctx, false, func(conn *connection) error {
		tmp := final + "." + randomSuffix() + litestream.TempSuffix
		var err error
		if n, err = c.upload(ctx, conn, dir, tmp, r, createdAt); err == nil {
			err = c.rename(conn, tmp, final)
		}
		if err != nil {
			_ = conn.sftp.Remove(tmp) // best effort: listings ignore *.tmp anyway
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Size: n, CreatedAt: createdAt}, nil
}

// upload writes r to a new file p in dir and stamps its mtime. dir is
// created only when missing, which saves a round trip on every write but
// the first of a level.
func (c *ReplicaClient) upload(ctx context.Context, conn *connection, dir, p string, r io.Reader, mtime time.Time) (int64, error) {
	const flags = os.O_WRONLY | os.O_CREATE | os.O_EXCL
	f, err := conn.sftp.OpenFile(p, flags)
	if errors.Is(err, os.ErrNotExist) {
		if err := conn.sftp.MkdirAll(dir); err != nil {
			return 0, c.errorf("create directory %s: %w", dir, err)
		}
		f, err = conn.sftp.OpenFile(p, flags)
	}
	if err != nil {
		return 0, c.errorf("create %s: %w", p, err)
	}
	cr := contextReader{ctx, r}
	var n int64
	if c.cfg.ConcurrentWrites {
		n, err = f.ReadFromWithConcurrency(cr, 0) // 0: the library's default request window
	} else {
		n, err = io.Copy(f, cr)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, c.errorf("write %s: %w", p, err)
	}
	if err := conn.sftp.Chtimes(p, mtime, mtime); err != nil {
		return 0, c.errorf("set mtime of %s: %w", p, err)
	}
	return n, nil
}

// rename moves tmp over final. posix-rename replaces atomically; plain
// SFTP rename refuses an existing target, so without the extension an
// existing final file (a re-upload of the same range) is removed first.
func (c *ReplicaClient) rename(conn *connection, tmp, final string) error {
	if _, ok := conn.sftp.HasExtension("posix-rename@openssh.com"); ok {
		if err := conn.sftp.PosixRename(tmp, final); err != nil {
			return c.errorf("rename %s to %s: %w", tmp, final, err)
		}
		return nil
	}
	err := conn.sftp.Rename(tmp, final)
	if err == nil {
		return nil
	}
	if _, serr := conn.sftp.Stat(final); serr != nil {
		return c.errorf("rename %s to %s: %w", tmp, final, err)
	}
	if err := conn.sftp.Remove(final); err != nil && !errors.Is(err, os.ErrNotExist) {
		return c.errorf("replace %s: %w", final, err)
	}
	if err := conn.sftp.Rename(tmp, final); err != nil {
		return c.errorf("rename %s to %s: %w", tmp, final, err)
	}
	return nil
}

// DeleteLTXFiles removes files; missing ones are ignored.
func (c *ReplicaClient) DeleteLTXFiles(ctx context.Context, a []*ltx.FileInfo) error {
	if len(a) == 0 {
		return ctx.Err()
	}
	return c.withConn(ctx, true, func(conn *connection) error {
		for _, info := range a {
			if err := ctx.Err(); err != nil {
				return err
			}
			p := c.filePath(info.Level, info.MinTXID, info.MaxTXID)
			if err := conn.sftp.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return c.errorf("delete %s: %w", p, err)
			}
		}
		return nil
	})
}

// DeleteAll removes the replica's ltx tree.
func (c *ReplicaClient) DeleteAll(ctx context.Context) error {
	return c.withConn(ctx, true, func(conn *connection) error {
		return c.removeTree(ctx, conn, path.Join(c.cfg.Path, "ltx"))
	})
}

// removeTree deletes dir and everything below it. Unlike the library's
// RemoveAll it tolerates entries vanishing meanwhile (retention running
// concurrently) and stops when ctx is cancelled.
func (c *ReplicaClient) removeTree(ctx context.Context, conn *connection, dir string) error {
	fis, err := conn.sftp.ReadDirContext(ctx, dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return c.errorf("list %s: %w", dir, err)
	}
	for _, fi := range fis {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := path.Join(dir, fi.Name())
		if fi.IsDir() {
			if err := c.removeTree(ctx, conn, p); err != nil {
				return err
			}
		} else if err := conn.sftp.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return c.errorf("delete %s: %w", p, err)
		}
	}
	if err := conn.sftp.RemoveDirectory(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return c.errorf("delete directory %s: %w", dir, err)
	}
	return nil
}

// randomSuffix makes temp names unique across processes and hosts.
func randomSuffix() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
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
