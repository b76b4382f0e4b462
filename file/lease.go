package file

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/internal/leasefile"
)

// The single-writer lease of a file replica is <root>/lock.json, changed
// only under <root>/lock.json.mutex, created with O_EXCL (package
// internal/leasefile has the protocol).

var _ litestream.Leaser = (*ReplicaClient)(nil)

func (c *ReplicaClient) lease() *leasefile.Lease {
	return &leasefile.Lease{
		Storage: leaseStorage{c},
		Dir:     c.root,
		Object:  "file " + filepath.Join(c.root, litestream.LeaseObjectName),
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

// leaseStorage gives the lease the client's filesystem (and its fault
// injection in tests).
type leaseStorage struct{ c *ReplicaClient }

func (s leaseStorage) Join(elem ...string) string { return filepath.Join(elem...) }

func (s leaseStorage) MkdirAll(ctx context.Context, dir string) error {
	if err := s.c.fs.MkdirAll(dir, s.c.DirMode); err != nil {
		return fmt.Errorf("file replica: lease: %w", err)
	}
	return nil
}

func (s leaseStorage) CreateExclusive(ctx context.Context, name string, data []byte) error {
	f, err := s.c.fs.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, s.c.FileMode)
	if err != nil {
		return fmt.Errorf("file replica: create: %w", err) // *PathError names the file
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = s.c.fs.Remove(name)
		return fmt.Errorf("file replica: write %s: %w", name, err)
	}
	return nil
}

func (s leaseStorage) ReadFile(ctx context.Context, name string) ([]byte, time.Time, error) {
	f, err := s.c.fs.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("file replica: read: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("file replica: stat %s: %w", name, err)
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("file replica: read %s: %w", name, err)
	}
	return b, fi.ModTime(), nil
}

func (s leaseStorage) Replace(ctx context.Context, tmp, name string) error {
	if err := s.c.fs.Rename(tmp, name); err != nil {
		return fmt.Errorf("file replica: replace lease: %w", err)
	}
	return nil
}

func (s leaseStorage) Remove(ctx context.Context, name string) error {
	if err := s.c.fs.Remove(name); err != nil {
		return fmt.Errorf("file replica: remove: %w", err)
	}
	return nil
}
