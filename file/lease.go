package file

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/sqlitebackup/litestream"
)

// The single-writer lease of a file replica is <root>/lock.json. Every
// change to it (create, renew, take over, release) happens while holding
// <root>/lock.json.mutex, a file created with O_EXCL and removed right
// after: of several processes only one can be between reading the lease
// and replacing it, so two waiters taking over an expired lease at the
// same moment cannot both win. The lease itself is always written to a
// temporary file and renamed into place, so readers see whole contents.
//
// A mutex file left by a process that died within its few microseconds
// of use is removed once it is older than the TTL (at least 5 s).
//
// The token of a lease is a hash of the file's content, which includes
// the expiry to the nanosecond, so any rewrite changes it.

var _ litestream.Leaser = (*ReplicaClient)(nil)

const (
	leaseMutexSuffix = ".mutex"
	leaseMutexWait   = 2 * time.Second      // give up waiting for the mutex
	leaseMutexPoll   = 5 * time.Millisecond // retry interval while it is taken
	leaseMutexStale  = 5 * time.Second      // minimum age of an abandoned mutex
	leaseMaxSize     = 64 << 10             // a lease file is ~150 bytes
	leaseAnonymous   = "an unknown process" // holder of an unreadable lease file
)

func (c *ReplicaClient) leasePath() string {
	return filepath.Join(c.root, litestream.LeaseObjectName)
}

func (c *ReplicaClient) leaseObject() string { return "file " + c.leasePath() }

func leaseToken(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// AcquireLease creates the lease, takes over an expired one, or renews
// one owner already holds.
func (c *ReplicaClient) AcquireLease(ctx context.Context, owner string, ttl time.Duration) (*litestream.Lease, error) {
	if err := c.fs.MkdirAll(c.root, c.DirMode); err != nil {
		return nil, fmt.Errorf("file replica: lease: %w", err)
	}
	var lease *litestream.Lease
	err := c.withLeaseMutex(ctx, ttl, func() error {
		cur, err := c.readLease(ttl)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return err
		case cur.Owner != owner && !cur.Expired(time.Now()):
			return cur.HeldBy(c.leaseObject())
		}
		lease, err = c.writeLease(owner, time.Now().Add(ttl))
		return err
	})
	return lease, err
}

// RenewLease rewrites the lease with a new expiry if it is still exactly
// the one we hold.
func (c *ReplicaClient) RenewLease(ctx context.Context, lease *litestream.Lease, ttl time.Duration) (*litestream.Lease, error) {
	var next *litestream.Lease
	err := c.withLeaseMutex(ctx, ttl, func() error {
		if err := c.checkHeld(lease, ttl); err != nil {
			return err
		}
		var err error
		next, err = c.writeLease(lease.Owner, time.Now().Add(ttl))
		return err
	})
	return next, err
}

// ReleaseLease removes the lease if it is still the one we hold.
func (c *ReplicaClient) ReleaseLease(ctx context.Context, lease *litestream.Lease) error {
	err := c.withLeaseMutex(ctx, 0, func() error {
		if err := c.checkHeld(lease, 0); err != nil {
			return err
		}
		if err := c.fs.Remove(c.leasePath()); err != nil {
			return fmt.Errorf("file replica: release lease: %w", err)
		}
		return nil
	})
	if errors.Is(err, litestream.ErrLeaseHeld) {
		return nil // no longer ours: nothing to release
	}
	return err
}

// checkHeld fails with a *LeaseHeldError unless the stored lease is lease.
func (c *ReplicaClient) checkHeld(lease *litestream.Lease, ttl time.Duration) error {
	cur, err := c.readLease(ttl)
	if errors.Is(err, fs.ErrNotExist) {
		return &litestream.LeaseHeldError{Object: c.leaseObject(), Owner: "nobody (the lease file was removed)"}
	} else if err != nil {
		return err
	}
	if cur.Token != lease.Token {
		return cur.HeldBy(c.leaseObject())
	}
	return nil
}

// readLease reads the lease file. A file that does not parse (damaged or
// edited by hand) counts as held by an unknown process until its
// modification time plus ttl.
func (c *ReplicaClient) readLease(ttl time.Duration) (*litestream.Lease, error) {
	p := c.leasePath()
	f, err := c.fs.OpenFile(p, os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("file replica: read lease: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, leaseMaxSize))
	if err != nil {
		return nil, fmt.Errorf("file replica: read lease %s: %w", p, err)
	}
	lease, err := litestream.UnmarshalLease(b)
	if err != nil {
		fi, serr := f.Stat()
		if serr != nil {
			return nil, fmt.Errorf("file replica: stat lease %s: %w", p, serr)
		}
		lease = &litestream.Lease{Owner: leaseAnonymous + " (lease file unreadable: " + err.Error() + ")", Expires: fi.ModTime().Add(ttl)}
	}
	lease.Token = leaseToken(b)
	return lease, nil
}

// writeLease replaces the lease file atomically: temporary file, fsync,
// rename.
func (c *ReplicaClient) writeLease(owner string, expires time.Time) (*litestream.Lease, error) {
	b := litestream.MarshalLease(owner, expires)
	p := c.leasePath()
	tmp := p + "." + randomSuffix() + litestream.TempSuffix
	f, err := c.fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, c.FileMode)
	if err != nil {
		return nil, fmt.Errorf("file replica: write lease: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = c.fs.Rename(tmp, p)
	}
	if err != nil {
		_ = c.fs.Remove(tmp)
		return nil, fmt.Errorf("file replica: write lease %s: %w", p, err)
	}
	return &litestream.Lease{Owner: owner, Expires: expires, Token: leaseToken(b)}, nil
}

// withLeaseMutex runs fn while holding the lease mutex file.
func (c *ReplicaClient) withLeaseMutex(ctx context.Context, ttl time.Duration, fn func() error) error {
	m := c.leasePath() + leaseMutexSuffix
	deadline := time.Now().Add(leaseMutexWait)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := c.fs.OpenFile(m, os.O_WRONLY|os.O_CREATE|os.O_EXCL, c.FileMode)
		if err == nil {
			_ = f.Close()
			defer func() { _ = c.fs.Remove(m) }()
			return fn()
		} else if errors.Is(err, fs.ErrNotExist) {
			// No replica directory, so no lease (acquiring creates it).
			return &litestream.LeaseHeldError{Object: c.leaseObject(), Owner: "nobody (the replica directory is missing)"}
		} else if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("file replica: lease mutex: %w", err)
		}
		if fi, err := c.fs.Stat(m); err == nil && time.Since(fi.ModTime()) > max(ttl, leaseMutexStale) {
			_ = c.fs.Remove(m) // left by a process that died holding it
			continue
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("file replica: lease mutex %s: still taken after %s (remove it if no litestream process is running)", m, leaseMutexWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(leaseMutexPoll):
		}
	}
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
