package nats

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"path"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sqlitebackup/litestream"
)

// The single-writer lease of a NATS replica is one message in the object
// store bucket's own stream (OBJ_<bucket>), on the subject
//
//	$O.<bucket>.C.litestream-lease-<base64url("<path>/lock.json")>
//
// Every change is a publish conditional on the subject's last sequence
// (Nats-Expected-Last-Subject-Sequence), which the server checks
// atomically — the compare-and-set a KV bucket's Create and Update use:
//
//   - acquire: expected sequence 0 (no lease yet), or the sequence of an
//     expired lease read just before (takeover);
//   - renew: the sequence of our lease, which is the lease's token;
//   - release: the same, publishing a lease with no owner that has
//     already expired.
//
// Each publish carries Nats-Rollup: sub, so the subject keeps only the
// newest lease. The subject lies in the chunk space of the object store
// (which object stores allow rollups on) under a name no chunk can have
// (chunks use 22-character NUIDs without '-'), so object listings never
// see it, and no bucket has to be created besides the replica's own.

var _ litestream.Leaser = (*ReplicaClient)(nil)

// leaseAttempts bounds the retries when the lease changes between our
// read and our conditional publish.
const leaseAttempts = 5

// leaseSubject is the subject holding the lease.
func (c *ReplicaClient) leaseSubject() string {
	name := path.Join(c.prefix, litestream.LeaseObjectName)
	return fmt.Sprintf("$O.%s.C.litestream-lease-%s", c.cfg.Bucket, base64.URLEncoding.EncodeToString([]byte(name)))
}

func (c *ReplicaClient) leaseObject() string {
	return fmt.Sprintf("nats bucket %q lease %q", c.cfg.Bucket, path.Join(c.prefix, litestream.LeaseObjectName))
}

// AcquireLease creates the lease, takes over an expired one, or renews
// one owner already holds.
func (c *ReplicaClient) AcquireLease(ctx context.Context, owner string, ttl time.Duration) (*litestream.Lease, error) {
	s, err := c.leaseStream(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := withRequestTimeout(ctx)
	defer cancel()
	var expect uint64 // 0: no lease stored yet
	for attempt := 0; attempt < leaseAttempts; attempt++ {
		lease, err := c.publishLease(ctx, s, litestream.MarshalLease(owner, time.Now().Add(ttl)), expect)
		if !isWrongLastSequence(err) {
			return lease, err
		}
		cur, err := c.readLease(ctx, s, ttl)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			expect = 0 // purged meanwhile
			continue
		} else if err != nil {
			return nil, err
		}
		if cur.Owner != owner && !cur.Expired(time.Now()) {
			return nil, cur.HeldBy(c.leaseObject())
		}
		expect = cur.sequence
	}
	return nil, c.errorf("acquire lease %s: the lease changed on every attempt", c.leaseSubject())
}

// RenewLease extends the lease if it is still the last message on the
// subject.
func (c *ReplicaClient) RenewLease(ctx context.Context, lease *litestream.Lease, ttl time.Duration) (*litestream.Lease, error) {
	s, err := c.leaseStream(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := withRequestTimeout(ctx)
	defer cancel()
	seq, err := strconv.ParseUint(lease.Token, 10, 64)
	if err != nil || seq == 0 { // not a token of ours: only say who holds the lease
		return nil, c.lostLease(ctx, s, ttl)
	}
	next, err := c.publishLease(ctx, s, litestream.MarshalLease(lease.Owner, time.Now().Add(ttl)), seq)
	if isWrongLastSequence(err) {
		return nil, c.lostLease(ctx, s, ttl)
	}
	return next, err
}

// ReleaseLease replaces our lease with an expired one if it is still the
// last message on the subject.
func (c *ReplicaClient) ReleaseLease(ctx context.Context, lease *litestream.Lease) error {
	seq, err := strconv.ParseUint(lease.Token, 10, 64)
	if err != nil || seq == 0 {
		return nil // not a token of ours: nothing to release
	}
	s, err := c.leaseStream(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := withRequestTimeout(ctx)
	defer cancel()
	_, err = c.publishLease(ctx, s, litestream.ReleasedLease(), seq)
	if isWrongLastSequence(err) {
		return nil // no longer ours: nothing to release
	}
	return err
}

// leaseStream connects and returns the bucket's stream.
func (c *ReplicaClient) leaseStream(ctx context.Context) (*leaseStream, error) {
	if _, err := c.objectStore(ctx); err != nil { // connects, checks the bucket
		return nil, err
	}
	c.mu.Lock()
	nc := c.nc
	c.mu.Unlock()
	if nc == nil {
		return nil, c.errorf("lease: connection closed")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, c.errorf("jetstream: %w", err)
	}
	rctx, cancel := withRequestTimeout(ctx)
	defer cancel()
	stream, err := js.Stream(rctx, "OBJ_"+c.cfg.Bucket)
	if err != nil {
		return nil, c.errorf("lease: open the bucket's stream OBJ_%s: %w", c.cfg.Bucket, err)
	}
	return &leaseStream{js: js, stream: stream}, nil
}

type leaseStream struct {
	js     jetstream.JetStream
	stream jetstream.Stream
}

// storedLease is a lease read back, with its stream sequence.
type storedLease struct {
	*litestream.Lease
	sequence uint64
}

// publishLease publishes b as the lease if the subject's last sequence
// is expect (0: no message), and returns the lease with its new sequence
// as token.
func (c *ReplicaClient) publishLease(ctx context.Context, s *leaseStream, b []byte, expect uint64) (*litestream.Lease, error) {
	msg := &nats.Msg{Subject: c.leaseSubject(), Data: b, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	ack, err := s.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(expect))
	if err != nil {
		return nil, c.errorf("publish lease %s: %w", c.leaseSubject(), err)
	}
	lease, err := litestream.UnmarshalLease(b)
	if err != nil {
		return nil, err
	}
	lease.Token = strconv.FormatUint(ack.Sequence, 10)
	return lease, nil
}

// readLease reads the lease message. One that does not parse counts as
// held by an unknown process until its publication time plus ttl.
func (c *ReplicaClient) readLease(ctx context.Context, s *leaseStream, ttl time.Duration) (*storedLease, error) {
	m, err := s.stream.GetLastMsgForSubject(ctx, c.leaseSubject())
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, err
	} else if err != nil {
		return nil, c.errorf("read lease %s: %w", c.leaseSubject(), err)
	}
	lease, err := litestream.UnmarshalLease(m.Data)
	if err != nil {
		lease = &litestream.Lease{Owner: "an unknown process (lease message unreadable: " + err.Error() + ")", Expires: m.Time.Add(ttl)}
	}
	lease.Token = strconv.FormatUint(m.Sequence, 10)
	return &storedLease{Lease: lease, sequence: m.Sequence}, nil
}

// lostLease describes who holds the lease now that ours was refused.
func (c *ReplicaClient) lostLease(ctx context.Context, s *leaseStream, ttl time.Duration) error {
	cur, err := c.readLease(ctx, s, ttl)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return &litestream.LeaseHeldError{Object: c.leaseObject(), Owner: "nobody (no lease stored)"}
	} else if err != nil {
		return &litestream.LeaseHeldError{Object: c.leaseObject(), Owner: fmt.Sprintf("another process (lease unreadable: %v)", err)}
	}
	return cur.HeldBy(c.leaseObject())
}

// isWrongLastSequence reports a refused condition: 10071, or 10164 from
// a replicated stream.
func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}
