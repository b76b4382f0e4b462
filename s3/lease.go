package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/sqlitebackup/litestream"
)

// The single-writer lease is the object <path>/lock.json, changed only by
// conditional PutObject requests the server checks atomically:
//
//   - acquire: If-None-Match: * (no lease yet), or If-Match: <ETag> of an
//     expired lease read just before (takeover);
//   - renew: If-Match: <ETag of our lease>;
//   - release: If-Match: <ETag of our lease>, writing a lease with no owner
//     that is already expired.
//
// Release does not delete the object: MinIO ignores If-Match on
// DeleteObject and would delete a lease another process had just taken.
// AWS S3, MinIO and versitygw all honour the PutObject conditions.

var _ litestream.Leaser = (*ReplicaClient)(nil)

// leaseAttempts bounds the retries when the lease changes between our
// read and our conditional write.
const leaseAttempts = 5

func (c *ReplicaClient) leaseKey() string {
	if c.cfg.Path == "" {
		return litestream.LeaseObjectName
	}
	return c.cfg.Path + "/" + litestream.LeaseObjectName
}

func (c *ReplicaClient) leaseObject() string {
	return fmt.Sprintf("s3 bucket %q key %q", c.cfg.Bucket, c.leaseKey())
}

// AcquireLease creates the lease, takes over an expired one, or renews
// one owner already holds.
func (c *ReplicaClient) AcquireLease(ctx context.Context, owner string, ttl time.Duration) (*litestream.Lease, error) {
	api, err := c.client(ctx)
	if err != nil {
		return nil, err
	}
	for attempt := 0; attempt < leaseAttempts; attempt++ {
		lease, err := c.putLease(ctx, api, owner, time.Now().Add(ttl), "")
		if !isLeaseConflict(err) {
			return lease, err
		}
		cur, err := c.getLease(ctx, api, ttl)
		if isNotExist(err) {
			continue // released meanwhile
		} else if err != nil {
			return nil, err
		}
		if cur.Owner != owner && !cur.Expired(time.Now()) {
			return nil, cur.HeldBy(c.leaseObject())
		}
		lease, err = c.putLease(ctx, api, owner, time.Now().Add(ttl), cur.Token)
		if !isLeaseConflict(err) && !isNotExist(err) {
			return lease, err
		}
	}
	return nil, c.opError("acquire lease", c.leaseKey(), errors.New("the lease changed on every attempt"))
}

// RenewLease extends the lease if its ETag is still ours.
func (c *ReplicaClient) RenewLease(ctx context.Context, lease *litestream.Lease, ttl time.Duration) (*litestream.Lease, error) {
	api, err := c.client(ctx)
	if err != nil {
		return nil, err
	}
	next, err := c.putLease(ctx, api, lease.Owner, time.Now().Add(ttl), lease.Token)
	if isLeaseConflict(err) || isNotExist(err) {
		return nil, c.lostLease(ctx, api, ttl)
	}
	return next, err
}

// ReleaseLease overwrites our lease with an expired one if its ETag is
// still ours.
func (c *ReplicaClient) ReleaseLease(ctx context.Context, lease *litestream.Lease) error {
	api, err := c.client(ctx)
	if err != nil {
		return err
	}
	_, err = c.putLeaseBody(ctx, api, litestream.ReleasedLease(), lease.Token)
	if isLeaseConflict(err) || isNotExist(err) {
		return nil // no longer ours: nothing to release
	}
	return err
}

// lostLease describes who holds the lease now that ours was refused.
func (c *ReplicaClient) lostLease(ctx context.Context, api *s3.Client, ttl time.Duration) error {
	cur, err := c.getLease(ctx, api, ttl)
	if err != nil {
		return &litestream.LeaseHeldError{Object: c.leaseObject(), Owner: fmt.Sprintf("another process (lease unreadable: %v)", err)}
	}
	return cur.HeldBy(c.leaseObject())
}

func (c *ReplicaClient) putLease(ctx context.Context, api *s3.Client, owner string, expires time.Time, ifMatch string) (*litestream.Lease, error) {
	etag, err := c.putLeaseBody(ctx, api, litestream.MarshalLease(owner, expires), ifMatch)
	if err != nil {
		return nil, err
	}
	return &litestream.Lease{Owner: owner, Expires: expires, Token: etag}, nil
}

// putLeaseBody writes the lease object if it does not exist (ifMatch
// empty) or still has ETag ifMatch, and returns the new ETag.
func (c *ReplicaClient) putLeaseBody(ctx context.Context, api *s3.Client, b []byte, ifMatch string) (string, error) {
	key := c.leaseKey()
	in := &s3.PutObjectInput{
		Bucket:        aws.String(c.cfg.Bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(b),
		ContentLength: aws.Int64(int64(len(b))),
		ContentType:   aws.String("application/json"),
	}
	if ifMatch == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(ifMatch)
	}
	if sse := c.cfg.sse; sse != nil {
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = &sse.algorithm, &sse.key, &sse.keyMD5
	} else if c.cfg.SSEKMSKeyID != "" {
		in.ServerSideEncryption, in.SSEKMSKeyId = types.ServerSideEncryptionAwsKms, aws.String(c.cfg.SSEKMSKeyID)
	}
	out, err := api.PutObject(ctx, in)
	if err != nil {
		return "", c.opError("PutObject (lease)", key, err)
	}
	if aws.ToString(out.ETag) == "" {
		return "", c.opError("PutObject (lease)", key, errors.New("server returned no ETag: conditional writes are not supported"))
	}
	return aws.ToString(out.ETag), nil
}

// getLease reads the lease object. One that does not parse counts as
// held by an unknown process until its modification time plus ttl.
func (c *ReplicaClient) getLease(ctx context.Context, api *s3.Client, ttl time.Duration) (*litestream.Lease, error) {
	key := c.leaseKey()
	in := &s3.GetObjectInput{Bucket: aws.String(c.cfg.Bucket), Key: aws.String(key)}
	if sse := c.cfg.sse; sse != nil {
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = &sse.algorithm, &sse.key, &sse.keyMD5
	}
	out, err := api.GetObject(ctx, in)
	if err != nil {
		return nil, c.opError("GetObject (lease)", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, 64<<10))
	if err != nil {
		return nil, c.opError("GetObject (lease)", key, err)
	}
	lease, err := litestream.UnmarshalLease(b)
	if err != nil {
		lease = &litestream.Lease{Owner: "an unknown process (lease object unreadable: " + err.Error() + ")", Expires: aws.ToTime(out.LastModified).Add(ttl)}
	}
	lease.Token = aws.ToString(out.ETag)
	return lease, nil
}

// isLeaseConflict reports a refused condition: 412 Precondition Failed,
// or AWS's 409 ConditionalRequestConflict for concurrent conditional
// writes to one key.
func isLeaseConflict(err error) bool {
	if err == nil {
		return false
	}
	switch apiErrorCode(err) {
	case "PreconditionFailed", "ConditionalRequestConflict":
		return true
	case "":
		s := httpStatus(err)
		return s == http.StatusPreconditionFailed || s == http.StatusConflict
	}
	return false
}
