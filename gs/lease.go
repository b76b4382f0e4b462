package gs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"time"

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
	for attempt := 0; attempt < leaseAttempts; attempt++ {
		lease, err := c.putLease(ctx, owner, time.Now().Add(ttl), 0)
		if !isPreconditionFailed(err) {
			return lease, err
		}
		cur, gen, err := c.getLease(ctx, ttl)
		if errors.Is(err, os.ErrNotExist) {
			continue // released meanwhile
		} else if err != nil {
			return nil, err
		}
		if cur.Owner != owner && !cur.Expired(time.Now()) {
			return nil, cur.HeldBy(c.leaseObject())
		}
		lease, err = c.putLease(ctx, owner, time.Now().Add(ttl), gen)
		if !isPreconditionFailed(err) {
			return lease, err
		}
	}
	return nil, c.errorf("acquire lease", c.leaseKey(), errors.New("the lease changed on every attempt"))
}

// RenewLease extends the lease if its generation is still ours.
func (c *ReplicaClient) RenewLease(ctx context.Context, lease *litestream.Lease, ttl time.Duration) (*litestream.Lease, error) {
	gen, err := strconv.ParseInt(lease.Token, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("gs: lease token %q: %w", lease.Token, err)
	}
	next, err := c.putLease(ctx, lease.Owner, time.Now().Add(ttl), gen)
	if isPreconditionFailed(err) {
		cur, _, gerr := c.getLease(ctx, ttl)
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
	gen, err := strconv.ParseInt(lease.Token, 10, 64)
	if err != nil {
		return fmt.Errorf("gs: lease token %q: %w", lease.Token, err)
	}
	if _, err := c.putLeaseBody(ctx, litestream.ReleasedLease(), gen); err != nil && !isPreconditionFailed(err) {
		return err
	}
	return nil
}

func (c *ReplicaClient) putLease(ctx context.Context, owner string, expires time.Time, gen int64) (*litestream.Lease, error) {
	next, err := c.putLeaseBody(ctx, litestream.MarshalLease(owner, expires), gen)
	if err != nil {
		return nil, err
	}
	return &litestream.Lease{Owner: owner, Expires: expires, Token: strconv.FormatInt(next, 10)}, nil
}

// putLeaseBody writes the lease object if its generation is gen (0: if
// it does not exist) and returns the new generation.
func (c *ReplicaClient) putLeaseBody(ctx context.Context, b []byte, gen int64) (int64, error) {
	key := c.leaseKey()
	src, err := newUploadSource(bytes.NewReader(b))
	if err != nil {
		return 0, c.errorf("write lease", key, err)
	}
	obj, err := c.upload(ctx, key, &objectMeta{ContentType: "application/json"}, src, &gen)
	if err != nil {
		return 0, c.errorf("write lease", key, err)
	}
	return obj.Generation, nil
}

// getLease reads the lease object and its generation: first its
// metadata, then the data of that very generation, so that the two
// always match. One that does not parse counts as held by an unknown
// process until its modification time plus ttl.
func (c *ReplicaClient) getLease(ctx context.Context, ttl time.Duration) (*litestream.Lease, int64, error) {
	key := c.leaseKey()
	attrs, err := c.objectAttrs(ctx, key)
	if err != nil {
		return nil, 0, c.errorf("read lease", key, err)
	}
	gen := attrs.Generation
	rc, err := c.download(ctx, key, 0, 0, &gen)
	if err != nil {
		return nil, 0, c.errorf("read lease", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 64<<10))
	if err != nil {
		return nil, 0, c.errorf("read lease", key, err)
	}
	lease, err := litestream.UnmarshalLease(b)
	if err != nil {
		updated, _ := time.Parse(time.RFC3339Nano, attrs.Updated)
		lease = &litestream.Lease{Owner: "an unknown process (lease object unreadable: " + err.Error() + ")", Expires: updated.Add(ttl)}
	}
	lease.Token = strconv.FormatInt(gen, 10)
	return lease, gen, nil
}

// objectAttrs GETs an object's JSON resource.
func (c *ReplicaClient) objectAttrs(ctx context.Context, key string) (*objectMeta, error) {
	ep, err := c.endpoint(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := c.send(ctx, http.MethodGet, ep.objectURL(c.cfg.Bucket, key, url.Values{"projection": {"noAcl"}}), nil)
	var ae *APIError
	if errors.As(err, &ae) && ae.Code == http.StatusNotFound {
		ae.objectMissing = true
	}
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var obj objectMeta
	if err := json.NewDecoder(resp.Body).Decode(&obj); err != nil {
		return nil, fmt.Errorf("decode object resource: %w", err)
	}
	return &obj, nil
}

func isPreconditionFailed(err error) bool {
	return err != nil && httpCode(err) == http.StatusPreconditionFailed
}
