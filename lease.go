package litestream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// The single-writer lease. Two replicate processes on different hosts
// writing one replica would interleave TXIDs and corrupt it, and the flock
// on the meta directory (lock.go) only protects one host. So before any
// write a Replica takes a lease stored in the replica itself, through
// conditional writes the storage checks atomically (S3 If-None-Match /
// If-Match, an O_EXCL lock file, ...), renews it at a third of its TTL and
// releases it on Stop. A lease whose expiry has passed may be taken over.
//
// Safety rests on the holder stopping its writes before its lease can
// expire anywhere: the holder counts its lease from the moment it sent the
// request and stops writing a quarter of the TTL before that runs out, so
// clocks that differ by less than that are harmless. Backends without
// conditional writes do not implement Leaser and are not protected.

// LeaseObjectName is the lease object's name at the replica root
// (<root>/lock.json, <path>/lock.json in a bucket). Listings of LTX files
// never see it.
const LeaseObjectName = "lock.json"

// DefaultLeaseTTL is how long a lease lasts without renewal.
const DefaultLeaseTTL = 30 * time.Second

// MinLeaseTTL is the shortest TTL accepted: renewals every TTL/3 must
// have time to reach the storage.
const MinLeaseTTL = time.Second

// ErrLeaseHeld means another process holds the replica's lease: this one
// must not write. Errors matching it are usually *LeaseHeldError.
var ErrLeaseHeld = errors.New("replica lease is held by another process")

// LeaseHeldError says who holds a replica's lease, and until when.
type LeaseHeldError struct {
	Owner   string    // the holder's description: host, pid, database, instance id
	Expires time.Time // when the holder's lease runs out unless renewed
	Object  string    // the lease object, e.g. "file /backups/app/lock.json"
}

func (e *LeaseHeldError) Error() string {
	owner := e.Owner
	if owner == "" {
		owner = "an unknown process"
	}
	return fmt.Sprintf("replica lease %s is held by %s until %s", e.Object, owner, e.Expires.UTC().Format(time.RFC3339Nano))
}

// Is makes errors.Is(err, ErrLeaseHeld) true.
func (e *LeaseHeldError) Is(target error) bool { return target == ErrLeaseHeld }

// Lease is one holder's claim on a replica.
type Lease struct {
	Owner   string
	Expires time.Time
	// Token identifies the stored version of the lease object (an ETag,
	// an object generation, a content hash): renewals and the release are
	// conditional on it, so they fail if anyone else wrote in between.
	Token string
}

// Expired reports whether the lease may be taken over at now.
func (l *Lease) Expired(now time.Time) bool { return !now.Before(l.Expires) }

// Leaser is implemented by replica clients that can hold a single-writer
// lease. Every method is atomic with respect to other processes using
// the same replica.
type Leaser interface {
	// AcquireLease creates the lease for owner, takes over an expired one,
	// or renews one owner already holds. It returns a *LeaseHeldError
	// when someone else holds an unexpired lease.
	AcquireLease(ctx context.Context, owner string, ttl time.Duration) (*Lease, error)
	// RenewLease extends a held lease to now+ttl, failing with a
	// *LeaseHeldError if the stored lease is no longer exactly lease.
	RenewLease(ctx context.Context, lease *Lease, ttl time.Duration) (*Lease, error)
	// ReleaseLease gives the lease up so another process can take it at
	// once; it does nothing if the stored lease is no longer lease.
	ReleaseLease(ctx context.Context, lease *Lease) error
}

// asLeaser finds the Leaser under any wrappers (metrics, encryption).
func asLeaser(c ReplicaClient) (Leaser, bool) {
	for i := 0; c != nil && i < 16; i++ {
		if l, ok := c.(Leaser); ok {
			return l, true
		}
		u, ok := c.(interface{ Unwrap() ReplicaClient })
		if !ok {
			return nil, false
		}
		c = u.Unwrap()
	}
	return nil, false
}

// leaseDoc is the stored form of a lease, shared by every backend.
type leaseDoc struct {
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
}

// MarshalLease encodes the lease object's content: {"owner","expires"}.
// A released lease has an empty owner and an expiry in the past.
func MarshalLease(owner string, expires time.Time) []byte {
	b, _ := json.Marshal(leaseDoc{Owner: owner, Expires: expires.UTC()})
	return append(b, '\n')
}

// UnmarshalLease decodes a lease object's content; Token is left empty
// for the caller to fill in.
func UnmarshalLease(b []byte) (*Lease, error) {
	var d leaseDoc
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("invalid lease object: %w", err)
	}
	if d.Expires.IsZero() {
		return nil, errors.New("invalid lease object: no expiry")
	}
	return &Lease{Owner: d.Owner, Expires: d.Expires}, nil
}

// ReleasedLease is the content a backend that cannot delete conditionally
// stores on release: no owner, already expired.
func ReleasedLease() []byte { return MarshalLease("", time.Unix(0, 0)) }

// HeldBy returns the error for a lease held by someone else.
func (l *Lease) HeldBy(object string) *LeaseHeldError {
	return &LeaseHeldError{Owner: l.Owner, Expires: l.Expires, Object: object}
}
