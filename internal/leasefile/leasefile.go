// Package leasefile implements the single-writer lease (litestream.Leaser)
// as a file, for backends that store files rather than objects with
// conditional writes: a local directory and SFTP.
//
// The lease is <dir>/lock.json. Every change to it (create, renew, take
// over, release) happens while holding <dir>/lock.json.mutex, a file
// created exclusively (O_EXCL) and removed right after: of several
// processes only one can be between reading the lease and replacing it,
// so two waiters taking over an expired lease at the same moment cannot
// both win. The lease itself is always written to a temporary file and
// renamed into place, so readers see whole contents.
//
// A mutex file left by a process that died within its few milliseconds
// of use is removed once its modification time is older than the TTL
// (at least MutexStale). That time comes from the storage's clock, so a
// client whose clock runs ahead of it by more than that could remove a
// live mutex; keep clocks in sync.
//
// The token of a lease is a hash of the file's content, which includes
// the expiry to the nanosecond, so any rewrite changes it.
package leasefile

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/sqlitebackup/litestream"
)

const (
	// MutexWait is how long a change waits for the mutex before failing.
	MutexWait = 2 * time.Second
	// MutexStale is the minimum age of a mutex file before it counts as
	// abandoned.
	MutexStale = 5 * time.Second

	mutexPoll     = 5 * time.Millisecond
	mutexSuffix   = ".mutex"
	unknownHolder = "an unknown process"
)

// Storage is the little a lease needs from a backend. Paths are the
// backend's own (slash-separated for SFTP, OS paths for a local
// directory). Errors must satisfy errors.Is(err, fs.ErrExist) for an
// existing file on CreateExclusive and errors.Is(err, fs.ErrNotExist)
// for a missing file or directory.
type Storage interface {
	MkdirAll(ctx context.Context, dir string) error
	// CreateExclusive creates name with data only if it does not exist,
	// and makes it durable as far as the backend can.
	CreateExclusive(ctx context.Context, name string, data []byte) error
	ReadFile(ctx context.Context, name string) (data []byte, modTime time.Time, err error)
	// Replace renames tmp over name atomically.
	Replace(ctx context.Context, tmp, name string) error
	Remove(ctx context.Context, name string) error
	// Join joins path elements the backend's way.
	Join(elem ...string) string
}

// Lease is a Leaser over a Storage.
type Lease struct {
	Storage Storage
	Dir     string // the replica root
	Object  string // how errors name the lease, e.g. "file /backups/app/lock.json"
}

var _ litestream.Leaser = (*Lease)(nil)

func (l *Lease) path() string { return l.Storage.Join(l.Dir, litestream.LeaseObjectName) }

func token(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// AcquireLease creates the lease, takes over an expired one, or renews
// one owner already holds.
func (l *Lease) AcquireLease(ctx context.Context, owner string, ttl time.Duration) (*litestream.Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := l.Storage.MkdirAll(ctx, l.Dir); err != nil {
		return nil, err
	}
	var lease *litestream.Lease
	err := l.withMutex(ctx, ttl, func() error {
		cur, err := l.read(ctx, ttl)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return err
		case cur.Owner != owner && !cur.Expired(time.Now()):
			return cur.HeldBy(l.Object)
		}
		lease, err = l.write(ctx, owner, time.Now().Add(ttl))
		return err
	})
	return lease, err
}

// RenewLease rewrites the lease with a new expiry if it is still exactly
// the one we hold.
func (l *Lease) RenewLease(ctx context.Context, lease *litestream.Lease, ttl time.Duration) (*litestream.Lease, error) {
	var next *litestream.Lease
	err := l.withMutex(ctx, ttl, func() error {
		if err := l.checkHeld(ctx, lease, ttl); err != nil {
			return err
		}
		var err error
		next, err = l.write(ctx, lease.Owner, time.Now().Add(ttl))
		return err
	})
	return next, err
}

// ReleaseLease removes the lease if it is still the one we hold.
func (l *Lease) ReleaseLease(ctx context.Context, lease *litestream.Lease) error {
	err := l.withMutex(ctx, 0, func() error {
		if err := l.checkHeld(ctx, lease, 0); err != nil {
			return err
		}
		return l.Storage.Remove(ctx, l.path())
	})
	if errors.Is(err, litestream.ErrLeaseHeld) {
		return nil // no longer ours: nothing to release
	}
	return err
}

// checkHeld fails with a *LeaseHeldError unless the stored lease is lease.
func (l *Lease) checkHeld(ctx context.Context, lease *litestream.Lease, ttl time.Duration) error {
	cur, err := l.read(ctx, ttl)
	if errors.Is(err, fs.ErrNotExist) {
		return &litestream.LeaseHeldError{Object: l.Object, Owner: "nobody (the lease file was removed)"}
	} else if err != nil {
		return err
	}
	if cur.Token != lease.Token {
		return cur.HeldBy(l.Object)
	}
	return nil
}

// read reads the lease file. A file that does not parse (damaged or
// edited by hand) counts as held by an unknown process until its
// modification time plus ttl.
func (l *Lease) read(ctx context.Context, ttl time.Duration) (*litestream.Lease, error) {
	b, mtime, err := l.Storage.ReadFile(ctx, l.path())
	if err != nil {
		return nil, err
	}
	lease, err := litestream.UnmarshalLease(b)
	if err != nil {
		lease = &litestream.Lease{Owner: unknownHolder + " (lease file unreadable: " + err.Error() + ")", Expires: mtime.Add(ttl)}
	}
	lease.Token = token(b)
	return lease, nil
}

// write replaces the lease file through a temporary file.
func (l *Lease) write(ctx context.Context, owner string, expires time.Time) (*litestream.Lease, error) {
	b := litestream.MarshalLease(owner, expires)
	tmp := l.path() + "." + randomSuffix() + litestream.TempSuffix
	err := l.Storage.CreateExclusive(ctx, tmp, b)
	if err == nil {
		err = l.Storage.Replace(ctx, tmp, l.path())
	}
	if err != nil {
		_ = l.Storage.Remove(context.WithoutCancel(ctx), tmp)
		return nil, err
	}
	return &litestream.Lease{Owner: owner, Expires: expires, Token: token(b)}, nil
}

// withMutex runs fn while holding the mutex file.
func (l *Lease) withMutex(ctx context.Context, ttl time.Duration, fn func() error) error {
	m := l.path() + mutexSuffix
	deadline := time.Now().Add(MutexWait)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := l.Storage.CreateExclusive(ctx, m, nil)
		if err == nil {
			defer func() { _ = l.Storage.Remove(context.WithoutCancel(ctx), m) }()
			return fn()
		} else if errors.Is(err, fs.ErrNotExist) {
			// No replica directory, so no lease (acquiring creates it).
			return &litestream.LeaseHeldError{Object: l.Object, Owner: "nobody (the replica directory is missing)"}
		} else if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("lease mutex: %w", err)
		}
		if _, mtime, err := l.Storage.ReadFile(ctx, m); err == nil && time.Since(mtime) > max(ttl, MutexStale) {
			_ = l.Storage.Remove(ctx, m) // left by a process that died holding it
			continue
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lease mutex %s: still taken after %s (remove it if no litestream process is running)", m, MutexWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(mutexPoll):
		}
	}
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
