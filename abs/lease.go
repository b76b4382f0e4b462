package abs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/sqlitebackup/litestream"
)

// The single-writer lease is the blob <path>/lock.json, written only with
// ETag conditions the service checks atomically: If-None-Match: * to
// create it, If-Match: <ETag> to take over an expired lease, renew, or
// release it. Release overwrites the lease with an expired one that has
// no owner, as the other object-store backends do. (Azure's own blob
// leases last at most 60 s and would block readers' tooling; the ETag
// scheme gives any TTL.)

var _ litestream.Leaser = (*ReplicaClient)(nil)

const leaseAttempts = 5

func (c *ReplicaClient) leaseKey() string { return path.Join(c.path, litestream.LeaseObjectName) }

func (c *ReplicaClient) leaseObject() string {
	return fmt.Sprintf("abs account %q container %q blob %q", c.account, c.container, c.leaseKey())
}

// AcquireLease creates the lease, takes over an expired one, or renews
// one owner already holds.
func (c *ReplicaClient) AcquireLease(ctx context.Context, owner string, ttl time.Duration) (*litestream.Lease, error) {
	for attempt := 0; attempt < leaseAttempts; attempt++ {
		lease, err := c.putLease(ctx, owner, time.Now().Add(ttl), "")
		if !isConditionFailed(err) {
			return lease, err
		}
		cur, err := c.getLease(ctx, ttl)
		if errors.Is(err, os.ErrNotExist) {
			continue // released meanwhile
		} else if err != nil {
			return nil, err
		}
		if cur.Owner != owner && !cur.Expired(time.Now()) {
			return nil, cur.HeldBy(c.leaseObject())
		}
		lease, err = c.putLease(ctx, owner, time.Now().Add(ttl), cur.Token)
		if !isConditionFailed(err) && !errors.Is(err, os.ErrNotExist) {
			return lease, err
		}
	}
	return nil, c.errorf("acquire lease", c.leaseKey(), errors.New("the lease changed on every attempt"))
}

// RenewLease extends the lease if its ETag is still ours.
func (c *ReplicaClient) RenewLease(ctx context.Context, lease *litestream.Lease, ttl time.Duration) (*litestream.Lease, error) {
	next, err := c.putLease(ctx, lease.Owner, time.Now().Add(ttl), lease.Token)
	if isConditionFailed(err) || errors.Is(err, os.ErrNotExist) {
		cur, gerr := c.getLease(ctx, ttl)
		if gerr != nil {
			return nil, &litestream.LeaseHeldError{Object: c.leaseObject(), Owner: fmt.Sprintf("another process (lease unreadable: %v)", gerr)}
		}
		return nil, cur.HeldBy(c.leaseObject())
	}
	return next, err
}

// ReleaseLease overwrites our lease with an expired one if its ETag is
// still ours.
func (c *ReplicaClient) ReleaseLease(ctx context.Context, lease *litestream.Lease) error {
	_, err := c.putLeaseBody(ctx, litestream.ReleasedLease(), lease.Token)
	if err != nil && !isConditionFailed(err) && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (c *ReplicaClient) putLease(ctx context.Context, owner string, expires time.Time, etag string) (*litestream.Lease, error) {
	next, err := c.putLeaseBody(ctx, litestream.MarshalLease(owner, expires), etag)
	if err != nil {
		return nil, err
	}
	return &litestream.Lease{Owner: owner, Expires: expires, Token: next}, nil
}

// putLeaseBody writes the lease blob in one request if its ETag is etag
// (empty: if it does not exist) and returns the new ETag.
func (c *ReplicaClient) putLeaseBody(ctx context.Context, b []byte, etag string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	key := c.leaseKey()
	cond := &blob.ModifiedAccessConditions{}
	if etag == "" {
		anyTag := azcore.ETagAny
		cond.IfNoneMatch = &anyTag
	} else {
		e := azcore.ETag(etag)
		cond.IfMatch = &e
	}
	contentType := "application/json"
	resp, err := c.cc.NewBlockBlobClient(key).Upload(ctx, streaming.NopCloser(bytes.NewReader(b)), &blockblob.UploadOptions{
		HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: &contentType},
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: cond},
	})
	if err != nil {
		return "", c.errorf("write lease", key, err)
	}
	if resp.ETag == nil {
		return "", c.errorf("write lease", key, errors.New("service returned no ETag"))
	}
	return string(*resp.ETag), nil
}

// getLease reads the lease blob. One that does not parse counts as held
// by an unknown process until its modification time plus ttl.
func (c *ReplicaClient) getLease(ctx context.Context, ttl time.Duration) (*litestream.Lease, error) {
	key := c.leaseKey()
	resp, err := c.cc.NewBlobClient(key).DownloadStream(ctx, nil)
	if err != nil {
		return nil, c.errorf("read lease", key, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, c.errorf("read lease", key, err)
	}
	lease, err := litestream.UnmarshalLease(b)
	if err != nil {
		var modified time.Time
		if resp.LastModified != nil {
			modified = *resp.LastModified
		}
		lease = &litestream.Lease{Owner: "an unknown process (lease blob unreadable: " + err.Error() + ")", Expires: modified.Add(ttl)}
	}
	if resp.ETag != nil {
		lease.Token = string(*resp.ETag)
	}
	return lease, nil
}

// isConditionFailed reports a refused ETag condition: 412, or 409
// BlobAlreadyExists for If-None-Match on an existing blob.
func isConditionFailed(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	return e.StatusCode == http.StatusPreconditionFailed ||
		(e.StatusCode == http.StatusConflict && e.Code == "BlobAlreadyExists")
}
