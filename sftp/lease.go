package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"time"

	"github.com/pkg/sftp"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/internal/leasefile"
)

// The single-writer lease of an SFTP replica is <path>/lock.json, changed
// only under <path>/lock.json.mutex, created with SSH_FXF_EXCL (package
// internal/leasefile has the protocol). SFTP version 3 answers a failed
// exclusive create with a generic failure, so an existing file is
// recognised by a stat.

var _ litestream.Leaser = (*ReplicaClient)(nil)

func (c *ReplicaClient) lease() *leasefile.Lease {
	return &leasefile.Lease{
		Storage: leaseStorage{c},
		Dir:     c.cfg.Path,
		Object:  fmt.Sprintf("sftp %s@%s:%s", c.cfg.User, c.addr, path.Join(c.cfg.Path, litestream.LeaseObjectName)),
	}
}

// AcquireLease creates the lease, takes over an expired one, or renews
// one owner already holds.
func (c *ReplicaClient) AcquireLease(ctx context.Context, owner string, ttl time.Duration) (*litestream.Lease, error) {
	return c.lease().AcquireLease(ctx, owner, ttl)
}

// RenewLease extends the lease if it is still exactly the one we hold.
func (c *ReplicaClient) RenewLease(ctx context.Context, lease *litestream.Lease, ttl time.Duration) (*litestream.Lease, error) {
	return c.lease().RenewLease(ctx, lease, ttl)
}

// ReleaseLease removes the lease if it is still the one we hold.
func (c *ReplicaClient) ReleaseLease(ctx context.Context, lease *litestream.Lease) error {
	return c.lease().ReleaseLease(ctx, lease)
}

type leaseStorage struct{ c *ReplicaClient }

func (s leaseStorage) Join(elem ...string) string { return path.Join(elem...) }

func (s leaseStorage) MkdirAll(ctx context.Context, dir string) error {
	return s.c.withConn(ctx, true, func(conn *connection) error {
		if err := conn.sftp.MkdirAll(dir); err != nil {
			return s.c.errorf("create directory %s: %w", dir, err)
		}
		return nil
	})
}

func (s leaseStorage) CreateExclusive(ctx context.Context, name string, data []byte) error {
	return s.c.withConn(ctx, false, func(conn *connection) error {
		f, err := s.createExclusive(conn, name)
		if err != nil {
			return err
		}
		_, err = f.Write(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = conn.sftp.Remove(name)
			return s.c.errorf("write %s: %w", name, err)
		}
		return nil
	})
}

func (s leaseStorage) ReadFile(ctx context.Context, name string) (b []byte, mtime time.Time, err error) {
	err = s.c.withConn(ctx, true, func(conn *connection) error {
		f, err := conn.sftp.Open(name)
		if err != nil {
			return s.c.errorf("read %s: %w", name, err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return s.c.errorf("stat %s: %w", name, err)
		}
		if b, err = io.ReadAll(io.LimitReader(f, 64<<10)); err != nil {
			return s.c.errorf("read %s: %w", name, err)
		}
		mtime = fi.ModTime()
		return nil
	})
	return b, mtime, err
}

func (s leaseStorage) Replace(ctx context.Context, tmp, name string) error {
	return s.c.withConn(ctx, false, func(conn *connection) error { return s.c.rename(conn, tmp, name) })
}

func (s leaseStorage) Remove(ctx context.Context, name string) error {
	return s.c.withConn(ctx, true, func(conn *connection) error {
		if err := conn.sftp.Remove(name); err != nil {
			return s.c.errorf("remove %s: %w", name, err)
		}
		return nil
	})
}

// createExclusive creates name with SSH_FXF_EXCL. A generic failure is an
// existing file if a stat finds one; if the file is gone by then (removed
// in between), the create is tried again.
func (s leaseStorage) createExclusive(conn *connection, name string) (*sftp.File, error) {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var f *sftp.File
		if f, err = conn.sftp.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL); err == nil {
			return f, nil
		} else if errors.Is(err, fs.ErrNotExist) {
			return nil, s.c.errorf("create %s: %w", name, err)
		}
		if _, serr := conn.sftp.Stat(name); serr == nil {
			return nil, s.c.errorf("create %s: %w", name, fs.ErrExist)
		} else if !errors.Is(serr, fs.ErrNotExist) {
			break
		}
	}
	return nil, s.c.errorf("create %s: %w", name, err)
}
