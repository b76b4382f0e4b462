package gs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strconv"
	"time"

	"cloud.google.com/go/storage"

	"github.com/sqlitebackup/litestream"
)

// The single-writer lease is the object <path>/lock.json, written only
// with generation preconditions GCS checks atomically: ifGenerationMatch=0
// (the object must not exist) to create it, ifGenerationMatch=<gen> to
// take over an expired lease, renew, or release it. The token is the
// object's generation. Release overwrites the lease with an expired one
// that has no owner rather than deleting it, as the S3 backend does.

var _ litestream.Leaser = (*ReplicaClient)(nil)

const leaseAttempts = 5

func (c *ReplicaClient) leaseKey() string { return path.Join(c.cfg.Path, litestream.LeaseObjectName) }

func (c *ReplicaClient) leaseObject() string {
	return fmt.Sprintf("gs://%s/%s", c.cfg.Bucket, c.leaseKey())
}

// AcquireLease creates the lease, takes over an expired one, or renews
// one owner already holds.
func (c *ReplicaClient) AcquireLease(ctx context.Context, owner string, ttl time.Duration) (*litestream.Lease, error) {
	bkt, err := c.bucket(ctx)
	if err != nil {
		return nil, err
	}
	for attempt := 0; attempt < leaseAttempts; attempt++ {
		lease, err := c.putLease(ctx, bkt, owner, time.Now().Add(ttl), 0)
		if !isPreconditionFailed(err) {
			return lease, err
		}
		cur, gen, err := c.getLease(ctx, bkt, ttl)
		if errors.Is(err, storage.ErrObjectNotExist) {
			continue // released meanwhile
		} else if err != nil {
			return nil, err
		}
		if cur.Owner != owner && !cur.Expired(time.Now()) {
			return nil, cur.HeldBy(c.leaseObject())
		}
		lease, err = c.putLease(ctx, bkt, owner, time.Now().Add(ttl), gen)
		if !isPreconditionFailed(err) {
			return lease, err
		}
	}
	return nil, c.errorf("acquire lease", c.leaseKey(), errors.New("the lease changed on every attempt"))
}

// RenewLease extends the lease if its generation is still ours.
func (c *ReplicaClient) RenewLease(ctx context.Context, lease *litestream.Lease, ttl time.Duration) (*litestream.Lease, error) {
	bkt, err := c.bucket(ctx)
	if err != nil {
		return nil, err
	}
	gen, err := strconv.ParseInt(lease.Token, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("gs: lease token %q: %w", lease.Token, err)
	}
	next, err := c.putLease(ctx, bkt, lease.Owner, time.Now().Add(ttl), gen)
	if isPreconditionFailed(err) {
		cur, _, gerr := c.getLease(ctx, bkt, ttl)
		if gerr != nil {
			return nil, &litestream.LeaseHeldError{Object: c.leaseObject(), Owner: fmt.Sprintf("another process (lease unreadable: %v)", gerr)}
		}
		return nil, cur.HeldBy(c.leaseObject())
	}
	return next, err
}

// ReleaseLease overwrites our lease with an expired one if its generation
// is still ours.
func (c *ReplicaClient) ReleaseLease(ctx context.Context, lease *litestream.Lease) error {
	bkt, err := c.bucket(ctx)
	if err != nil {
		return err
	}
	gen, err := strconv.ParseInt(lease.Token, 10, 64)
	if err != nil {
		return fmt.Errorf("gs: lease token %q: %w", lease.Token, err)
	}
	if _, err := c.putLeaseBody(ctx, bkt, litestream.ReleasedLease(), gen); err != nil && !isPreconditionFailed(err) {
		return err
	}
	return nil
}

func (c *ReplicaClient) putLease(ctx context.Context, bkt *storage.BucketHandle, owner string, expires time.Time, gen int64) (*litestream.Lease, error) {
	next, err := c.putLeaseBody(ctx, bkt, litestream.MarshalLease(owner, expires), gen)
	if err != nil {
		return nil, err
	}
	return &litestream.Lease{Owner: owner, Expires: expires, Token: strconv.FormatInt(next, 10)}, nil
}

// putLeaseBody writes the lease object if its generation is gen (0: if
// it does not exist) and returns the new generation.
func (c *ReplicaClient) putLeaseBody(ctx context.Context, bkt *storage.BucketHandle, b []byte, gen int64) (int64, error) {
	key := c.leaseKey()
	cond := storage.Conditions{GenerationMatch: gen}
	if gen == 0 {
		cond = storage.Conditions{DoesNotExist: true}
	}
	w := bkt.Object(key).If(cond).NewWriter(ctx)
	w.ContentType = "application/json"
	w.ChunkSize = 0 // one request
	if _, err := w.Write(b); err != nil {
		_ = w.Close()
		return 0, c.errorf("write lease", key, err)
	}
	if err := w.Close(); err != nil {
		return 0, c.errorf("write lease", key, err)
	}
	return w.Attrs().Generation, nil
}

// getLease reads the lease object and its generation. One that does not
// parse counts as held by an unknown process until its modification time
// plus ttl.
func (c *ReplicaClient) getLease(ctx context.Context, bkt *storage.BucketHandle, ttl time.Duration) (*litestream.Lease, int64, error) {
	key := c.leaseKey()
	r, err := bkt.Object(key).NewReader(ctx)
	if err != nil {
		return nil, 0, c.errorf("read lease", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, 64<<10))
	if err != nil {
		return nil, 0, c.errorf("read lease", key, err)
	}
	gen := r.Attrs.Generation
	lease, err := litestream.UnmarshalLease(b)
	if err != nil {
		lease = &litestream.Lease{Owner: "an unknown process (lease object unreadable: " + err.Error() + ")", Expires: r.Attrs.LastModified.Add(ttl)}
	}
	lease.Token = strconv.FormatInt(gen, 10)
	return lease, gen, nil
}

func isPreconditionFailed(err error) bool {
	return err != nil && httpCode(err) == http.StatusPreconditionFailed
}
